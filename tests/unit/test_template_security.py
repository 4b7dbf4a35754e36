"""Least privilege and storage security: what each role ALLOWS, as SAM expands template.yaml.

The roles are expanded by aws-sam-translator (policy templates, separate ``AWS::IAM::Policy`` and
managed-policy resources included) and resolved for one deployment, then asked, action by action
(every action of the service, from parliament's IAM definitions) and resource by resource, what
they permit (``Roles.allows``: moto's policy engine). A name does not pass for a permission.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult

from ddb_backup.changes.mappings import MAXIMUM_RECORD_AGE_SECONDS
from devkit import permissions
from devkit.strict.iam import Roles

TEMPLATE = permissions.template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-0000-0000-0000-000000000000"
EXPORTS = "exports-bucket"
PARAMETERS = {
    "TableNamePattern": "mystack-*",
    "RestoreTableNamePattern": "restore-*",
    "KmsKeyArn": KEY,
    "TableKmsKeyArns": KEY,
    "RestoreSourceArns": f"arn:aws:s3:::{EXPORTS},arn:aws:s3:::{EXPORTS}/granules/*",
    "ManagedCumulusPrefix": "mystack-",
    "ChangeArchiveTables": "mystack-GranulesTable,other-*",
}
BUCKET = "arn:aws:s3:::ddb-backup-backupbucket"
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/"
SOURCE, TARGET = TABLE + "mystack-GranulesTable", TABLE + "restore-GranulesTable"
BACKUP = SOURCE + "/backup/01700000000000-abcdef12"
#: Reads (ListBucket on an object ARN means nothing to S3, but a statement over [bucket, bucket/*] grants it).
READS = {"s3:GetObject", "s3:ListBucket"}

PLAN_B, SCAN, FIN_B = "PlanBackupFunction", "ScanSegmentFunction", "FinalizeBackupFunction"
PLAN_R, PART, FIN_R = "PlanRestoreFunction", "RestorePartFunction", "FinalizeRestoreFunction"
PITR, ON_DEMAND = "EnsurePitrFunction", "OnDemandBackupsFunction"
BACKUP_SM, RESTORE_SM = "BackupStateMachine", "RestoreStateMachine"
ARCHIVE, STREAMS = "ArchiveChangesFunction", "ChangeArchiveStreamsFunction"
#: What AWS's own AWSLambdaDynamoDBExecutionRole (SAM attaches it for a stream event source) grants on "*":
#: reading streams only. Stream actions mean nothing on a table's ARN, but "*" matches it.
STREAM_READS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
#: Actions AWS offers no resource-level permission for: "*" is their only possible resource.
UNSCOPED = {
    "dynamodb:ListTables": {PLAN_B, STREAMS},
    "dynamodb:ListBackups": {ON_DEMAND},
    "dynamodb:ListStreams": {ARCHIVE},
    "lambda:ListEventSourceMappings": {STREAMS},
    # No resource for Create; both are conditioned on the archiver's ARN (test below).
    "lambda:CreateEventSourceMapping": {STREAMS},
    "lambda:DeleteEventSourceMapping": {STREAMS},
}


@cache
def roles() -> Roles:
    return permissions.deployment_roles(PARAMETERS)


@cache
def all_actions(service: str) -> list[str]:
    """Every IAM action of ``service`` (parliament's IAM definitions; its package import needs pkg_resources)."""
    spec = importlib.util.find_spec("parliament")
    assert spec and spec.submodule_search_locations
    definitions = json.loads((Path(spec.submodule_search_locations[0]) / "iam_definition.json").read_text())
    (svc,) = [s for s in definitions if s["prefix"] == service]
    return [f"{service}:{p['privilege']}" for p in svc["privileges"]]


def allowed(resource: str, service: str) -> dict[str, set[str]]:
    """principal -> every action of ``service`` its role allows on ``resource``."""
    return {p: {a for a in all_actions(service) if roles().allows(p, a, resource)} for p in sorted(roles().policies)}


def expect(**by_principal: set[str]) -> dict[str, set[str]]:
    """The allowed map with every other principal allowed nothing."""
    return {p: by_principal.get(p, set()) for p in sorted(roles().policies)}


def test_the_principals_are_the_stack_functions_and_state_machines():
    assert set(roles().policies) == {
        PLAN_B, SCAN, FIN_B, PLAN_R, PART, FIN_R, PITR, ON_DEMAND, BACKUP_SM, RESTORE_SM, ARCHIVE, STREAMS,
        "ReplicationRole",  # S3 Replication's, allowed nothing here: no ReplicaBucketArn (test_template_replication)
    }  # fmt: skip
    assert roles().policies["ReplicationRole"] == []


# ------------------------------------------------------------------ DynamoDB
def _unscoped(**extra: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for action, principals in UNSCOPED.items():
        for p in principals:
            if action.startswith("dynamodb:"):
                out.setdefault(p, set()).add(action)
    for p, actions in extra.items():
        out[p] = out.get(p, set()) | actions
    return out


def test_a_source_table_is_read_never_written():
    """Backup reads it; PITR and on-demand backups manage it; nothing writes, deletes or restores over it."""
    describe = {"DescribeTable", "DescribeTimeToLive", "DescribeContinuousBackups", "ListTagsOfResource"}
    want = _unscoped(
        PlanBackupFunction={f"dynamodb:{a}" for a in describe},
        ScanSegmentFunction={"dynamodb:Scan"},
        EnsurePitrFunction={"dynamodb:DescribeTable", "dynamodb:DescribeContinuousBackups",
                            "dynamodb:UpdateContinuousBackups"},
        OnDemandBackupsFunction={"dynamodb:CreateBackup"},
        ChangeArchiveStreamsFunction={"dynamodb:DescribeTable", "dynamodb:UpdateTable"},  # enables its stream
    )  # fmt: skip
    assert allowed(SOURCE, "dynamodb") == expect(**want)


def test_restore_part_may_only_batch_write_and_describe_its_targets():
    want = _unscoped(
        PlanRestoreFunction={
            "dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:Scan", "dynamodb:UpdateTimeToLive",
            "dynamodb:DescribeTimeToLive", "dynamodb:UpdateContinuousBackups", "dynamodb:DescribeContinuousBackups",
            "dynamodb:TagResource", "dynamodb:ListTagsOfResource",
            "dynamodb:UpdateTable",  # loadBilling on-demand: an existing target switched for the load
            "dynamodb:ImportTable",  # method import/auto (issue 13)
            "dynamodb:UntagResource",  # a plan failing after a switch puts the units back and forgets them (issue 24)
        },
        RestorePartFunction={"dynamodb:BatchWriteItem", "dynamodb:DescribeTable"},
        # the restore-in-progress mark; a target loaded on-demand switched back; an exact backup's changes (issue 14);
        # an imported table marked and given what ImportTable cannot set (issue 13)
        FinalizeRestoreFunction={
            "dynamodb:DescribeTable", "dynamodb:UntagResource", "dynamodb:UpdateTable", "dynamodb:BatchWriteItem",
            "dynamodb:TagResource", "dynamodb:UpdateTimeToLive", "dynamodb:DescribeTimeToLive",
            "dynamodb:UpdateContinuousBackups",
            "dynamodb:ListTagsOfResource",  # the tags the units to put back were recorded in (issue 24)
        },
    )  # fmt: skip
    assert allowed(TARGET, "dynamodb") == expect(**want)


def test_only_finalize_describes_imports_and_only_of_restore_targets():
    """DescribeImport is scoped to the imports of tables in the restore pattern (``table/<name>/import/<id>``)."""
    assert {p for p, a in allowed(TARGET + "/import/0123", "dynamodb").items() if "dynamodb:DescribeImport" in a} == {
        "FinalizeRestoreFunction"
    }
    assert not [p for p, a in allowed(SOURCE + "/import/0123", "dynamodb").items() if "dynamodb:DescribeImport" in a]


def test_only_the_on_demand_function_deletes_backups_and_only_of_managed_tables():
    deleters = {p for p, actions in allowed(BACKUP, "dynamodb").items() if "dynamodb:DeleteBackup" in actions}
    assert deleters == {ON_DEMAND}
    assert allowed(BACKUP, "dynamodb")[ON_DEMAND] == {
        "dynamodb:DeleteBackup", "dynamodb:DescribeBackup", "dynamodb:ListBackups",
    }  # fmt: skip
    other = TABLE + "prod-GranulesTable/backup/01700000000000-abcdef12"
    assert allowed(other, "dynamodb") == expect(**_unscoped())


# ------------------------------------------------------------------ S3
KEYS = {
    "backups/mystack-T/20261122T030000Z-1a2b3c4d/plan.json": {PLAN_B},
    "backups/@ddb-backup/runs/20261122T030000Z-1a2b3c4d/segments.json": {PLAN_B},
    "backups/mystack-T/20261122T030000Z-1a2b3c4d/data/000000-000000.json.gz": {SCAN},
    "backups/mystack-T/20261122T030000Z-1a2b3c4d/checkpoints/000000-000000.json": {SCAN},
    "backups/mystack-T/20261122T030000Z-1a2b3c4d/errors/000000.json": {SCAN},
    "backups/mystack-T/20261122T030000Z-1a2b3c4d/manifest.json": {FIN_B},
    "backups/@ddb-backup/restores/run-1/plan.json": {PLAN_R},
    "backups/@ddb-backup/restores/run-1/parts.json": {PLAN_R},
    "backups/@ddb-backup/restores/run-1/results/0000-part.json": {PART},
    "backups/@ddb-backup/restores/run-1/errors/0000-part.json": {PART},
    "backups/@ddb-backup/restores/run-1/dead-letter/run-1/part.json.gz": {PART},
    "backups/mystack-T/20261122T030000Z-1a2b3c4d/dead-letter/run-1/part.json.gz": {PART},
    "backups/@ddb-backup/restores/run-1/report.json": {FIN_R},
    "backups/mystack-T/changes/20261201T100000Z_20261201T100005Z_shard-1_000001.jsonl.gz": {ARCHIVE},
    "backups/mystack-T/changes/_state/shard-1.json": {ARCHIVE},
    "imports/granules/data.json.gz": set(),
    "elsewhere.txt": set(),
}


@pytest.mark.parametrize(("key", "writers"), KEYS.items(), ids=list(KEYS))
def test_each_object_is_written_by_its_one_function(key, writers):
    """Only PutObject, only by the function whose job it is; nobody writes outside the stack's prefix."""
    got = allowed(f"{BUCKET}/{key}", "s3")
    write = {p for p, actions in got.items() if actions - READS - {"s3:DeleteObject"}}
    assert write == writers
    for p in writers:
        assert got[p] - READS - {"s3:DeleteObject"} == {"s3:PutObject"}, (p, got[p])


def test_only_finalize_backup_deletes_and_only_parts_of_a_backup():
    deleters = {
        key: {p for p, actions in allowed(f"{BUCKET}/{key}", "s3").items() if any("Delete" in a for a in actions)}
        for key in KEYS
    }
    assert deleters == {key: ({FIN_B} if "/data/" in key else set()) for key in KEYS}
    part = f"{BUCKET}/backups/T/ID/data/000000-000000.json.gz"
    assert allowed(part, "s3")[FIN_B] == {"s3:GetObject", "s3:DeleteObject"}
    assert not any("Delete" in a or "Lifecycle" in a for p, acts in allowed(BUCKET, "s3").items() for a in acts)


def test_nothing_writes_outside_the_backup_bucket_and_sources_are_read_only():
    for resource in (f"arn:aws:s3:::{EXPORTS}/granules/AWSDynamoDB/data/x.json.gz", "arn:aws:s3:::other/x"):
        got = allowed(resource, "s3")
        # restore's finalize reads an exact backup's manifest and changes there (GetObject alone)
        readers = {PLAN_R: READS, PART: READS, FIN_R: {"s3:GetObject"}} if EXPORTS in resource else {}
        assert got == expect(**readers), resource
    # RestoreSourceArns names the bucket and its objects: GetObject on the bucket ARN itself means nothing
    bucket = expect(PlanRestoreFunction=READS, RestorePartFunction=READS, FinalizeRestoreFunction={"s3:GetObject"})
    assert allowed(f"arn:aws:s3:::{EXPORTS}", "s3") == bucket


def test_the_bucket_itself_is_only_listed():
    """No role changes the bucket: no lifecycle, policy, ACL, encryption or versioning changes."""
    lists = {p: {"s3:ListBucket"} for p in (FIN_B, FIN_R, ARCHIVE)}
    lists[PLAN_R] = READS  # one statement reads [bucket, bucket/*]: GetObject on the bucket ARN means nothing
    assert allowed(BUCKET, "s3") == expect(**lists)


# ------------------------------------------------------------------ KMS, Lambda, Step Functions, the rest
def test_every_role_that_touches_the_bucket_may_use_its_key_and_nothing_more():
    users = {PLAN_B, SCAN, FIN_B, PLAN_R, PART, FIN_R, BACKUP_SM, RESTORE_SM, ARCHIVE}
    want = {p: {"kms:GenerateDataKey", "kms:Decrypt"} for p in users}
    want[PLAN_R] = want[PLAN_R] | {"kms:DescribeKey", "kms:CreateGrant"}  # CreateTable with a customer key
    assert allowed(KEY, "kms") == expect(**want)
    assert allowed(KEY.replace("1234abcd", "9999ffff"), "kms") == expect()


def test_state_machines_invoke_exactly_their_three_functions():
    fns = {BACKUP_SM: (PLAN_B, SCAN, FIN_B), RESTORE_SM: (PLAN_R, PART, FIN_R)}
    arn = "arn:aws:lambda:us-east-1:123456789012:function:ddb-backup-"
    # the mapping maker's "*" (no resource; its Condition, which moto's engine skips, is checked below)
    mappings = {STREAMS: {a for a, p in UNSCOPED.items() if a.startswith("lambda:")}}
    for name in (PLAN_B, SCAN, FIN_B, PLAN_R, PART, FIN_R, PITR, ON_DEMAND):
        got = allowed(arn + name, "lambda")
        assert got == expect(**mappings, **{sm: {"lambda:InvokeFunction"} for sm, own in fns.items() if name in own})
        assert allowed(arn + name + "-other", "lambda") == expect(**mappings), name


def test_the_change_archive_maps_streams_to_the_archiver_only():
    """Create/DeleteEventSourceMapping have no resource to scope: the statement names the archiver by condition."""
    statements = [st for p, st in _statements() if p == STREAMS and "lambda:CreateEventSourceMapping" in st["Action"]]
    assert [sorted(st["Action"]) for st in statements] == [
        ["lambda:CreateEventSourceMapping", "lambda:DeleteEventSourceMapping"]
    ]
    archiver = RESOURCES[ARCHIVE]
    archiver_arn = "arn:aws:lambda:us-east-1:123456789012:function:ddb-backup-" + ARCHIVE
    assert statements[0]["Condition"] == {"StringEquals": {"lambda:FunctionArn": archiver_arn}}
    assert "Stream" not in archiver["Properties"]["Events"]  # no fixed stream: the custom resource maps them


def _statements() -> list[tuple[str, dict[str, Any]]]:
    """Every statement of every role, resolved."""
    out = []
    for principal, policies in roles().policies.items():
        for policy in policies:
            doc = policy._policy_json
            doc = json.loads(doc) if isinstance(doc, str) else doc
            out.extend((principal, st) for st in doc["Statement"])
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_actions_no_pass_role_and_star_resources_only_where_aws_offers_nothing_else():
    logs_and_traces = ("logs:", "xray:")  # what SAM's own managed policies grant (logs, X-Ray)
    for principal, st in _statements():
        assert "NotAction" not in st and "NotResource" not in st, (principal, st)
        if st["Effect"] == "Deny":  # a Deny only takes away
            continue
        for action in _as_list(st["Action"]):
            assert "*" not in action and "?" not in action, f"{principal}: wildcard action {action}"
            assert not action.startswith(("iam:", "sts:")), f"{principal}: {action}"
            if "*" in _as_list(st["Resource"]):
                from_event_source = principal == ARCHIVE and action.startswith("sqs:")  # the failure queue's poller
                assert (
                    principal in UNSCOPED.get(action, ()) or action.startswith(logs_and_traces) or from_event_source
                ), (principal, action)
    assert not any(a == "iam:PassRole" for p in roles().policies for a in ["iam:PassRole"] if roles().allows(p, a, "*"))


def test_table_patterns_and_managed_tables_have_no_default_the_deployer_must_choose():
    params = TEMPLATE["Parameters"]
    for name in ("TableNamePattern", "RestoreTableNamePattern"):
        assert "Default" not in params[name], f"{name} must be chosen at deploy time"
    for name, spec in params.items():
        assert spec.get("Default") not in ("*", "*-*"), f"{name} defaults to {spec.get('Default')!r}"


def test_only_aws_managed_policies_sam_adds_itself():
    expanded = permissions.documents(TEMPLATE)  # raises on any managed policy not defined in the template
    assert set(expanded) == set(roles().policies)
    kinds = {r["Type"] for r in RESOURCES.values()}
    assert "AWS::IAM::Policy" not in kinds and "AWS::IAM::User" not in kinds


# ------------------------------------------------------------------ storage and alarms
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


def test_the_versioned_bucket_removes_expired_delete_markers_in_a_rule_of_their_own():
    rules = RESOURCES["BackupBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (markers,) = [r for r in rules if r.get("ExpiredObjectDeleteMarker")]
    assert markers["Status"] == "Enabled" and markers["Prefix"] == {"Ref": "BackupPrefix"}
    assert "ExpirationInDays" not in markers  # S3 refuses the two in one rule


def test_the_bucket_refuses_plain_http():
    (statement,) = RESOURCES["BackupBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cloudwatch_may_publish_alarms_to_the_encrypted_topic():
    """CloudWatch needs kms:GenerateDataKey and kms:Decrypt on the topic's key, granted by the key's policy."""
    key_id = RESOURCES["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert key_id == {"Ref": "AlarmTopicKey"}, "alias/aws/sns cannot grant CloudWatch: alarms are never delivered"
    resolve = permissions.resolver(PARAMETERS)
    policy = resolve(RESOURCES["AlarmTopicKey"]["Properties"]["KeyPolicy"])
    cloudwatch = [st for st in policy["Statement"] if "cloudwatch.amazonaws.com" in str(st.get("Principal"))]
    doc = IAMPolicy({"policy_document": json.dumps({"Version": "2012-10-17", "Statement": cloudwatch})})
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert doc.is_action_permitted(action, "*") == PermissionResult.PERMITTED, action
    assert doc.is_action_permitted("kms:ScheduleKeyDeletion", "*") != PermissionResult.PERMITTED


def _alarms() -> list[dict[str, Any]]:
    return [r for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"]


def _watched() -> set[tuple[str, str]]:
    """(metric, state machine) of every AWS/States metric an alarm watches, alone or in metric math."""
    out = set()
    for alarm in _alarms():
        props = alarm["Properties"]
        metrics = [props] + [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
        for m in metrics:
            if m.get("Namespace") == "AWS/States":
                out.add((m["MetricName"], m["Dimensions"][0]["Value"]["Ref"]))
    return out


def test_alarms_cover_failed_timed_out_and_aborted_executions_of_both_state_machines():
    for machine in ("BackupStateMachine", "RestoreStateMachine"):
        for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
            assert (metric, machine) in _watched()
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in _alarms())


def test_an_archiver_behind_its_streams_alarms_long_before_its_batches_become_gaps():
    """Lambda's IteratorAge on the archiver, alarmed at an hour: the mapping drops batches at 23 h (issue 23)."""
    [alarm] = [a for a in _alarms() if a["Properties"].get("MetricName") == "IteratorAge"]
    props = alarm["Properties"]
    assert alarm["Condition"] == "ArchivesChanges" and props["Namespace"] == "AWS/Lambda"
    assert props["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ArchiveChangesFunction"}}]
    assert props["Statistic"] == "Maximum" and props["ComparisonOperator"] == "GreaterThanThreshold"
    assert props["Threshold"] * 6 <= MAXIMUM_RECORD_AGE_SECONDS * 1000  # ms, well before the 23 h drop
    archive = RESOURCES["ChangeArchiveStreams"]["Properties"]
    assert archive["MaximumRecordAgeInSeconds"] == MAXIMUM_RECORD_AGE_SECONDS < 24 * 3600


def test_the_stale_backup_alarm_exists_only_while_backups_are_scheduled():
    (stale,) = [a for a in _alarms() if a["Properties"].get("MetricName") == "MaxNewestBackupAgeHours"]
    assert stale["Properties"]["TreatMissingData"] == "breaching"
    assert stale.get("Condition") == "BackupScheduled"
    on = permissions.resolver({**PARAMETERS, "TablePrefix": "mystack-"}).conditions
    assert on["BackupScheduled"]
    for off in ({"TablePrefix": ""}, {"TablePrefix": "mystack-", "ScheduleEnabled": "false"}):
        assert not permissions.resolver({**PARAMETERS, **off}).conditions["BackupScheduled"], off


def test_the_workers_concurrency_can_be_reserved():
    for name in ("ScanSegmentFunction", "RestorePartFunction"):
        reserved = RESOURCES[name]["Properties"]["ReservedConcurrentExecutions"]
        assert reserved == {"Fn::If": ["ReservesConcurrency", {"Ref": "WorkerReservedConcurrency"},
                                       {"Ref": "AWS::NoValue"}]}  # fmt: skip
    assert TEMPLATE["Parameters"]["WorkerReservedConcurrency"]["Default"] == 0


def test_the_readme_permissions_table_is_generated_from_this_template():
    readme = (permissions.ROOT / "docs" / "deploy.md").read_text()
    assert readme == permissions.readme_with_table(readme), "run: python -m devkit.permissions --write"
