"""The disaster-recovery copy in template.yaml: S3 Replication's role is least privilege, restore reads the replica.

As in test_template_security: the roles as SAM expands them, resolved for one deployment, asked action
by action (every action of S3 and KMS, from parliament's IAM definitions) what they allow.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from devkit import permissions
from devkit.cfn import Resolver
from devkit.strict.iam import Roles
from tests.unit.test_template_security import BUCKET, KEY, READS, TEMPLATE, all_actions

REPLICA = "arn:aws:s3:::dr-copy"
REPLICA_KEY = "arn:aws:kms:eu-west-1:210987654321:key/5678efab-0000-0000-0000-000000000000"
ROLE = "ReplicationRole"
PLAN_R, PART, FIN_R = "PlanRestoreFunction", "RestorePartFunction", "FinalizeRestoreFunction"
BASE = {"TableNamePattern": "mystack-*", "RestoreTableNamePattern": "restore-*"}
#: Cross-account, customer keys on both sides, locked backups: every optional permission on.
ALL = {**BASE, "KmsKeyArn": KEY, "ReplicaBucketArn": REPLICA, "ReplicaAccountId": "210987654321",
       "ReplicaKmsKeyArn": REPLICA_KEY, "ObjectLockMode": "GOVERNANCE"}  # fmt: skip
SAME_ACCOUNT = {**BASE, "ReplicaBucketArn": REPLICA}
READ_VERSIONS = {"s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"}
REPLICATE = {"s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"}


@cache
def roles(which: str) -> Roles:
    return permissions.deployment_roles({"all": ALL, "same": SAME_ACCOUNT, "off": BASE}[which])


def allowed(which: str, resource: str, service: str) -> dict[str, set[str]]:
    """principal -> the actions of ``service`` its role allows on ``resource`` (principals allowed nothing left out)."""
    r = roles(which)
    got = {p: {a for a in all_actions(service) if r.allows(p, a, resource)} for p in r.policies}
    return {p: actions for p, actions in got.items() if actions}


@pytest.mark.parametrize(
    ("resource", "want"),
    [
        (BUCKET, {"s3:GetReplicationConfiguration", "s3:ListBucket"}),
        (f"{BUCKET}/backups/mystack-T/20261122T030000Z-1a2b3c4d/data/000000-000000.json.gz",
         READ_VERSIONS | {"s3:GetObjectRetention", "s3:GetObjectLegalHold"}),
        (f"{BUCKET}/elsewhere.txt", set()),  # outside BackupPrefix: not replicated, not readable
        (f"{REPLICA}/backups/mystack-T/x.json.gz", REPLICATE | {"s3:ObjectOwnerOverrideToBucketOwner"}),
        (f"{REPLICA}/elsewhere.txt", set()),
        (REPLICA, set()),  # the replica bucket itself: nothing (no versioning, policy or lifecycle change)
        ("arn:aws:s3:::other/backups/x", set()),
    ],
)  # fmt: skip
def test_the_replication_role_may_do_exactly_what_replication_needs(resource: str, want: set[str]) -> None:
    assert allowed("all", resource, "s3").get(ROLE, set()) == want


def test_the_replication_role_uses_each_key_for_one_thing_only() -> None:
    assert allowed("all", KEY, "kms")[ROLE] == {"kms:Decrypt"}  # the backups' key: read them
    assert allowed("all", REPLICA_KEY, "kms")[ROLE] == {"kms:Encrypt"}  # the replica's key: write replicas
    assert allowed("all", KEY.replace("1234abcd", "9999ffff"), "kms").get(ROLE) is None


def test_only_the_replication_role_replicates_and_restore_only_reads_the_replica() -> None:
    obj = f"{REPLICA}/backups/mystack-T/20261122T030000Z-1a2b3c4d/manifest.json"
    got = allowed("all", obj, "s3")
    assert {p for p, actions in got.items() if actions & REPLICATE} == {ROLE}
    assert {p: a for p, a in got.items() if p != ROLE} == {PLAN_R: READS, PART: READS, FIN_R: {"s3:GetObject"}}
    assert {p: a for p, a in allowed("all", REPLICA, "s3").items()} == {PLAN_R: READS, PART: READS}
    assert {p for p, a in allowed("all", REPLICA_KEY, "kms").items() if a == {"kms:Decrypt"}} == {PLAN_R, PART, FIN_R}


def test_in_the_same_account_without_keys_the_role_has_no_ownership_override_and_no_key() -> None:
    obj = f"{REPLICA}/backups/x"
    assert allowed("same", obj, "s3")[ROLE] == REPLICATE
    assert allowed("same", f"{BUCKET}/backups/x", "s3")[ROLE] == READ_VERSIONS  # no Object Lock: no retention
    assert ROLE not in allowed("same", KEY, "kms")


def test_without_a_replica_nothing_replicates_and_nothing_reads_a_replica() -> None:
    assert roles("off").policies[ROLE] == []
    assert allowed("off", f"{REPLICA}/backups/x", "s3") == {}
    assert allowed("off", BUCKET, "s3").get(ROLE) is None


def _bucket() -> dict[str, Any]:
    return dict(permissions.template()["Resources"]["BackupBucket"]["Properties"])


def test_the_replicated_bucket_is_versioned_and_its_noncurrent_versions_expire() -> None:
    """Replication needs versioning; a versioned bucket's old versions must expire too, or storage only grows."""
    props = permissions.resolver(ALL)(_bucket())
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    expire, markers = props["LifecycleConfiguration"]["Rules"]
    assert expire["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0 and markers["ExpiredObjectDeleteMarker"]
    [rule] = props["ReplicationConfiguration"]["Rules"]
    assert rule["Filter"] == {"Prefix": "backups/"} and rule["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    dest = rule["Destination"]
    assert dest["EncryptionConfiguration"] == {"ReplicaKmsKeyID": REPLICA_KEY}
    assert dest["AccessControlTranslation"] == {"Owner": "Destination"} and dest["Account"] == "210987654321"
    assert "ReplicationConfiguration" not in permissions.resolver(BASE)(_bucket())


def test_the_replication_role_is_assumed_by_s3_of_this_account_only() -> None:
    role = permissions.template()["Resources"][ROLE]
    [statement] = permissions.resolver(ALL)(role["Properties"]["AssumeRolePolicyDocument"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert role["Condition"] == "Replicates"


def _refusals(parameters: dict[str, str]) -> list[str]:
    """The template Rules' assertions CloudFormation would refuse these parameters with (their descriptions)."""
    return Resolver(TEMPLATE, parameters, "ddb-backup", "us-east-1", checked=False).refusals()


def test_the_replica_key_goes_with_the_bucket_key_and_replica_settings_need_a_replica() -> None:
    assert _refusals(ALL) == _refusals(SAME_ACCOUNT) == _refusals(BASE) == []
    no_replica_key = {k: v for k, v in ALL.items() if k != "ReplicaKmsKeyArn"}
    assert [r.split(",")[0] for r in _refusals(no_replica_key)] == ["With KmsKeyArn"]
    no_bucket_key = {k: v for k, v in ALL.items() if k != "KmsKeyArn"}
    assert [r.split(":")[0] for r in _refusals(no_bucket_key)] == ["ReplicaKmsKeyArn needs KmsKeyArn"]
    assert _refusals({**BASE, "ReplicaAccountId": "210987654321"}) == [
        "ReplicaAccountId and ReplicaKmsKeyArn need ReplicaBucketArn (the bucket to replicate to)."
    ]
