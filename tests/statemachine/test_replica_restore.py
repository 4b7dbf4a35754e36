"""The disaster-recovery copy (issue 26 point 2): backups replicated to a replica bucket, restored from it alone.

The local stack deploys with the replica parameters (the replica bucket made by replica.yaml, in
"another account", with its own KMS key and Object Lock), S3 Replication is carried out as its role
and the replica's bucket policy allow, and every object of the primary bucket is then deleted, every
version: S3 replicates no deletion of a version, so every table still restores from the replica, item
for item, through the CLI and through the restore machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample
from devkit.emulator import ACCOUNT, ROOT, LocalStack
from devkit.strict import iam
from devkit.strict.replication import deploy_replica
from tests.conftest import canonical, table_items

STACK = "ddb-backup-local"
OTHER_ACCOUNT = "210987654321"  # the replica's account, as the stack is told (moto holds both in one)
PARAMETERS = {"TableNamePattern": "mystack-*", "RestoreTableNamePattern": "restore-*"}
COUNTS = {"Granules": 60, "Collections": 30, "Rules": 12}  # three Cumulus tables: a GSI, a sort key, a plain key


@pytest.fixture
def replicated() -> Iterator[tuple[LocalStack, dict[str, str]]]:
    """The stack with a customer key, replicating to replica.yaml's bucket (its own key, Object Lock)."""
    stack = LocalStack(parameters=PARAMETERS, env={"PART_BYTES": str(16 * 1024)}, customer_key=("KmsKeyArn",))
    replica: dict[str, str] = {}

    def make_replica() -> None:  # in "account B", before the stack in account A is deployed
        replica.update(deploy_replica(ROOT, {"SourceAccountId": ACCOUNT, "SourceStackName": STACK}))
        stack.parameters.update(
            ReplicaBucketArn=replica["ReplicaBucketArn"],
            ReplicaAccountId=OTHER_ACCOUNT,
            ReplicaKmsKeyArn=replica["ReplicaKmsKeyArn"],
            ReplicationTimeControl="true",
        )

    stack.before_deploy = make_replica
    with stack:
        yield stack, replica


def _keys(s3: Any, bucket: str) -> set[str]:
    return {
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }


def _empty(s3: Any, bucket: str) -> int:
    """Delete every version and delete marker of every object (what S3 Replication never copies)."""
    gone = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            gone += 1
    return gone


def _rows(ddb: Any, table: str) -> list[str]:
    return sorted(canonical(i) for i in table_items(ddb, table))


def test_every_table_restores_from_the_replica_after_the_primary_is_emptied(replicated) -> None:
    stack, replica = replicated
    ddb, s3 = client("dynamodb"), client("s3")
    primary, copy = stack.outputs["BackupBucketName"], replica["ReplicaBucketArn"].split(":::")[1]
    made = sample.create_cumulus_tables(ddb, "mystack-", COUNTS)
    backup = stack.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": 2})
    assert backup["status"] == "SUCCEEDED", backup.get("cause")
    with iam.acting_as(None):  # the CLI's writes (multipart parts, manifests) are replicated too
        assert main(["-q", "backup", "--table", "mystack-RulesTable", "--to", f"s3://{primary}/backups/"]) == 0

    written = _keys(s3, primary)
    deleted = {m["Key"] for page in s3.get_paginator("list_object_versions").paginate(Bucket=primary)
               for m in page.get("DeleteMarkers", [])}  # fmt: skip
    assert written and deleted  # the runs' scratch objects (segments.json) are deleted at their end ...
    assert _keys(s3, copy) == written | deleted  # ... and kept by the replica: no delete marker is replicated
    for key in sorted(written)[:3]:
        head, copied = s3.head_object(Bucket=primary, Key=key), s3.head_object(Bucket=copy, Key=key)
        assert (head["ReplicationStatus"], copied["ReplicationStatus"]) == ("COMPLETED", "REPLICA")
        assert copied["VersionId"] == head["VersionId"]
        assert copied["SSEKMSKeyId"] == replica["ReplicaKmsKeyArn"] != head["SSEKMSKeyId"]
        assert copied["ObjectLockMode"] == "GOVERNANCE"  # replica.yaml's default retention
    log = stack.enforcement.replication.log
    assert {r.status for r in log} == {"COMPLETED"} and {r.owner for r in log} == {OTHER_ACCOUNT}

    assert _empty(s3, primary) >= len(written)
    assert _keys(s3, primary) == set() and _keys(s3, copy) == written | deleted  # nothing of the deletions reached it

    for table in made:  # the CLI, table by table, from the replica alone
        target = "restore-cli-" + table.removeprefix("mystack-")
        assert main(["-q", "restore", f"s3://{copy}/backups/{table}/", "--table", target]) == 0
        assert _rows(ddb, target) == _rows(ddb, table), table
    restore = stack.run(  # the restore machine: every table of the night's backup, from the replica
        "RestoreStateMachine",
        {"source": f"s3://{copy}/backups/", "backupId": backup["output"]["backupId"],
         "map": [{"from": "mystack-", "to": "restore-sm-"}]},
    )  # fmt: skip
    assert restore["status"] == "SUCCEEDED", restore.get("cause")
    for table in made:
        assert _rows(ddb, "restore-sm-" + table.removeprefix("mystack-")) == _rows(ddb, table), table
