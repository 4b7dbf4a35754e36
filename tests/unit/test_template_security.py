"""Least privilege and storage security, read from template.yaml itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devkit.cfn import CfnLoader

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = CfnLoader.load((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]

#: Actions AWS offers no resource-level permission for: "*" is the only possible resource.
UNSCOPABLE = {"dynamodb:ListTables", "dynamodb:ListBackups"}
#: SAM policy templates we allow, and what they must be scoped to.
SAM_TEMPLATES = {"S3CrudPolicy": "BucketName", "S3ReadPolicy": "BucketName", "LambdaInvokePolicy": "FunctionName"}
RESTORE = {"PlanRestoreFunction", "RestorePartFunction", "FinalizeRestoreFunction"}
DYNAMODB_WRITES = {
    "dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
    "dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:RestoreTableFromBackup",
    "dynamodb:RestoreTableToPointInTime", "dynamodb:UpdateTimeToLive", "dynamodb:TagResource",
}  # fmt: skip


def _principals() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, r)
        for name, r in RESOURCES.items()
        if r["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
    ]


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for policy in resource["Properties"].get("Policies", []):
        if "Statement" in policy:
            out.extend(policy["Statement"])
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    return json.dumps(value)


def test_every_function_and_state_machine_has_policies():
    assert _principals()
    for name, resource in _principals():
        assert resource["Properties"].get("Policies"), f"{name} has no policies"


@pytest.mark.parametrize(("name", "resource"), _principals(), ids=[n for n, _ in _principals()])
def test_no_wildcard_actions_and_no_wildcard_resources(name, resource):
    for policy in resource["Properties"]["Policies"]:
        if isinstance(policy, str):
            pytest.fail(f"{name}: managed policy {policy} is not allowed")
        if "Statement" in policy:
            continue
        ((template, args),) = policy.items()
        assert template in SAM_TEMPLATES, f"{name}: SAM policy template {template} is not on the allowed list"
        scope = args[SAM_TEMPLATES[template]]
        if template.startswith("S3"):
            assert scope == {"Ref": "BackupBucket"}, f"{name}: {template} must name the backup bucket"
        else:
            assert set(scope) == {"Ref"} and scope["Ref"] in RESOURCES, f"{name}: {template} must name a stack function"
    for st in _statements(resource):
        if st.get("Effect", "Allow") != "Allow":
            continue
        actions = _as_list(st["Action"])
        for action in actions:
            assert action != "*" and not action.endswith(":*"), f"{name}: wildcard action {action}"
        for res in _as_list(st["Resource"]):
            if res == "*":
                assert set(actions) <= UNSCOPABLE, f"{name}: Resource '*' for {actions}"
                continue
            text = _text(res)
            if any(a.startswith("dynamodb:") for a in actions):
                assert "${TableNamePattern}" in text or "${RestoreTableNamePattern}" in text, f"{name}: {text}"
            elif any(a.startswith("states:") for a in actions):
                assert "${AWS::StackName}-" in text, f"{name}: states actions beyond the stack's machines: {text}"
            elif all(a.startswith("s3:") for a in actions):
                assert text.startswith('{"Fn::Sub": "arn:${AWS::Partition}:s3:::${BackupBucket}/${BackupPrefix}_'), (
                    f"{name}: S3 actions beyond the backup bucket's bookkeeping prefixes: {text}"
                )
            else:
                pytest.fail(f"{name}: unexpected resource {text} for {actions}")


def test_restore_writes_only_to_its_allowed_pattern():
    writers = set()
    for name, resource in _principals():
        for st in _statements(resource):
            writes = DYNAMODB_WRITES & set(_as_list(st["Action"]))
            if not writes:
                continue
            writers.add(name)
            for res in _as_list(st["Resource"]):
                if name in RESTORE:
                    assert "${RestoreTableNamePattern}" in _text(res), f"{name} may write {res}"
    assert RESTORE & writers, "restore functions should be able to write their targets"
    # Backup-side functions never write table data.
    for name in ("PlanBackupFunction", "ScanSegmentFunction", "FinalizeBackupFunction"):
        assert name not in writers


def test_the_bucket_is_encrypted_private_versioned_and_lockable():
    bucket = RESOURCES["BackupBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] == {"Fn::If": ["HasKmsKey", "aws:kms", "AES256"]}
    assert rule["KMSMasterKeyID"] == {"Fn::If": ["HasKmsKey", {"Ref": "KmsKeyArn"}, {"Ref": "AWS::NoValue"}]}
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    lock = bucket["ObjectLockConfiguration"]["Fn::If"][1]
    assert lock["Rule"]["DefaultRetention"] == {"Mode": {"Ref": "ObjectLockMode"}, "Days": {"Ref": "ObjectLockDays"}}
    assert TEMPLATE["Parameters"]["ObjectLockMode"]["AllowedValues"] == ["NONE", "GOVERNANCE", "COMPLIANCE"]


def test_the_bucket_refuses_plain_http():
    (statement,) = RESOURCES["BackupBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_alarms_cover_both_state_machines_and_stale_backups():
    alarms = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {
        (a["MetricName"], a["Dimensions"][0]["Value"].get("Ref")) for a in alarms if a["Namespace"] == "AWS/States"
    }
    for machine in ("BackupStateMachine", "RestoreStateMachine"):
        assert ("ExecutionsFailed", machine) in watched and ("ExecutionsTimedOut", machine) in watched
    stale = [a for a in alarms if a["MetricName"] == "MaxNewestBackupAgeHours"]
    assert stale and stale[0]["TreatMissingData"] == "breaching"
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms)
