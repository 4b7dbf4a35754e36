"""Every path of the stack under least privilege: the roles as SAM expands them, narrow name patterns,
with SSE-S3 and with a customer managed KMS key (issue 11 findings 2, 4, 5 and the template items of 8).

The local stack checks every call a function or state machine makes against its own role; a call its
role does not allow fails with AccessDenied, as on AWS.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.errors import DdbBackupError
from ddb_backup.format import sources as readers
from ddb_backup.restore.deadletters import dead_letter_home
from devkit import sample
from devkit.emulator import LocalStack
from devkit.strict import iam
from tests.conftest import FIXTURES, canonical, expected_items, table_items

EXPORTS = "exports-bucket"  # a bucket outside the stack: a DynamoDB native export lands in one like it
PARAMETERS = {
    "TableNamePattern": "mystack-*",
    "RestoreTableNamePattern": "restore-*",
    "ManagedCumulusPrefix": "mystack-",
    "ManagedCumulusTables": "Granules,Files",
    "RestoreSourceArns": f"arn:aws:s3:::{EXPORTS},arn:aws:s3:::{EXPORTS}/granules/*",
}
MAP = [{"from": "mystack-", "to": "restore-"}]


@pytest.fixture(params=["sse-s3", "customer-key"])
def least(request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    """The stack with narrow patterns; with a customer key for the bucket and the restored tables, or SSE-S3."""
    keyed = ("KmsKeyArn", "TableKmsKeyArns") if request.param == "customer-key" else ()
    with LocalStack(parameters=PARAMETERS, env={"PART_BYTES": str(64 * 1024)}, customer_key=keyed) as local:
        yield local


def _same_tables(ddb: Any, source: str, target: str) -> None:
    assert Counter(map(canonical, table_items(ddb, source))) == Counter(map(canonical, table_items(ddb, target)))


def _encrypted_table(ddb: Any, name: str, key: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key},
    )
    sample.fill(ddb, name, sample.items([("id", "HASH")], 80))


def test_backup_and_restore_run_under_least_privilege(least):
    ddb = client("dynamodb")
    bucket = least.outputs["BackupBucketName"]
    assert iam.bucket_kms_key(bucket) == least.customer_key_arn  # the template's BucketEncryption, applied
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 150, "Files": 60})
    if least.customer_key_arn:
        _encrypted_table(ddb, "mystack-SecretTable", least.customer_key_arn)
    backup = least.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": 2})
    assert backup["status"] == "SUCCEEDED", backup.get("cause")
    restore = least.run("RestoreStateMachine", {"source": "backups/", "map": MAP})
    assert restore["status"] == "SUCCEEDED", restore.get("cause")
    for short in ("Granules", "Files") + (("Secret",) if least.customer_key_arn else ()):
        _same_tables(ddb, f"mystack-{short}Table", f"restore-{short}Table")
    if least.customer_key_arn:  # re-created with the source's customer key (kms:DescribeKey, kms:CreateGrant)
        sse = ddb.describe_table(TableName="restore-SecretTable")["Table"]["SSEDescription"]
        assert sse["KMSMasterKeyArn"] == least.customer_key_arn


def test_pitr_on_demand_backups_and_the_custom_resource_run_under_least_privilege(least):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 5, "Files": 5})
    least.fire("EnsurePitrFunction", "Hourly")
    for table in ("mystack-GranulesTable", "mystack-FilesTable"):
        pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    update = least.custom_resource("EnsurePitrOnDeploy", "Update")
    assert update["Data"] == {"AlreadyOn": "2", "Enabled": "0", "Missing": "0", "Failed": "0"}
    least.fire("OnDemandBackupsFunction", "Weekly")
    made = {b["TableName"] for b in ddb.list_backups()["BackupSummaries"]}
    assert made == {"mystack-GranulesTable", "mystack-FilesTable"}


def test_tables_outside_the_patterns_are_denied(least):
    """The narrow patterns are what the roles grant: a table beyond them is refused, naming the action."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "other-", {"Rules": 5})
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 5})
    desc = least.run("BackupStateMachine", {"tables": ["other-RulesTable"]})
    assert desc["status"] == "FAILED"
    assert "not authorized to perform: dynamodb:DescribeTable" in desc["cause"]
    assert "table/other-RulesTable" in desc["cause"]
    least.run("BackupStateMachine", {"tables": ["mystack-RulesTable"]})
    desc = least.run("RestoreStateMachine", {"source": "backups/", "map": [{"from": "mystack-", "to": "prod-"}]})
    assert desc["status"] == "FAILED"
    assert "not authorized to perform: dynamodb:DescribeTable on resource: " in desc["cause"]
    assert "table/prod-RulesTable" in desc["cause"]


class _Refused:
    """DynamoDB leaves the items whose granuleId is in ``stuck`` unprocessed, at every try."""

    def __init__(self, ddb: Any, stuck: set[str]) -> None:
        self.stuck = stuck
        self.local = threading.local()
        ddb.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", self.hold)
        ddb.meta.events.register("before-call.dynamodb.BatchWriteItem", self.answer)
        ddb.meta.events.register("after-call.dynamodb.BatchWriteItem", self.report)

    def hold(self, params: dict[str, Any], **_: Any) -> None:
        held: dict[str, list[Any]] = {}
        kept: dict[str, list[Any]] = {}
        for table, requests in params["RequestItems"].items():
            for r in requests:
                stuck = r["PutRequest"]["Item"].get("granuleId", {}).get("S") in self.stuck
                (held if stuck else kept).setdefault(table, []).append(r)
        self.local.held, self.local.none_kept = held, not kept
        if kept:
            params["RequestItems"] = kept

    def answer(self, **_: Any) -> Any:
        if not self.local.none_kept:
            return None
        held, self.local.held = self.local.held, {}
        http = SimpleNamespace(status_code=200, headers={}, content=b"")
        return http, {"UnprocessedItems": held, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def report(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.local.held and "Error" not in parsed:
            parsed.setdefault("UnprocessedItems", {}).update(self.local.held)
        self.local.held = {}


def _upload_export(s3: Any) -> None:
    s3.create_bucket(Bucket=EXPORTS)
    root = FIXTURES / "native-export"
    for path in root.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=EXPORTS, Key=f"granules/{path.relative_to(root)}", Body=path.read_bytes())


def test_a_source_in_another_bucket_is_read_and_its_dead_letters_go_to_the_backup_bucket(least, monkeypatch):
    """RestoreSourceArns lets restore read a native export where AWS wrote it; nothing is written there."""
    monkeypatch.setenv("RESTORE_ATTEMPTS", "2")
    ddb, s3 = client("dynamodb"), client("s3")
    _upload_export(s3)
    expected = expected_items("mystack-GranulesTable")
    stuck = {expected[0]["granuleId"]["S"], expected[-1]["granuleId"]["S"]}
    _Refused(ddb, stuck)
    request = {"source": f"s3://{EXPORTS}/granules/", "table": "restore-GranulesTable", "keys": ["granuleId"]}
    desc = least.run("RestoreStateMachine", request)
    assert desc["status"] == "FAILED" and desc["error"] == "RestoreIncomplete", desc.get("cause")
    bucket = least.outputs["BackupBucketName"]
    home = f"s3://{bucket}/backups/@ddb-backup/restores/"
    urls = {u.split(".json.gz")[0] + ".json.gz" for u in desc["cause"].split("saved in ")[1:]}
    assert urls and all(u.startswith(home) and "/dead-letter/" in u for u in urls), desc["cause"]
    saved = {i["granuleId"]["S"] for u in urls for i in readers.open_source(u, s3).items()}
    assert saved == stuck
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=EXPORTS).get("Contents", [])]
    assert all(k.startswith("granules/AWSDynamoDB/") for k in written), written
    assert len(table_items(ddb, "restore-GranulesTable")) == len(expected) - len(stuck)


@pytest.mark.parametrize(
    ("beside", "expected"),
    [
        ("s3://bkt/backups/T/ID/", "s3://bkt/backups/T/ID/"),  # a backup of the stack: beside it
        (
            "s3://other/exports/T/",
            "s3://bkt/backups/@ddb-backup/restores/run-1/",
        ),  # another bucket: the run's directory
        (
            "s3://bkt/imports/T/",
            "s3://bkt/backups/@ddb-backup/restores/run-1/",
        ),  # the bucket, outside the stack's prefix
        ("", "s3://bkt/backups/@ddb-backup/restores/run-1/"),
    ],
)
def test_dead_letters_stay_in_the_backup_bucket_under_the_stack_prefix(beside, expected):
    assert dead_letter_home(beside, "bkt", "backups/@ddb-backup/restores/run-1/") == expected


def test_the_nightly_backup_is_not_scheduled_without_tables():
    """Empty TableNames and TablePrefix (the defaults) would start a run that fails every night."""
    with LocalStack() as stack, pytest.raises(DdbBackupError, match="Nightly is disabled"):
        stack.fire("BackupStateMachine", "Nightly")
    with LocalStack(parameters={"TablePrefix": "mystack-"}) as stack:
        sample.create_cumulus_tables(client("dynamodb"), "mystack-", {"Rules": 3})
        assert stack.wait(stack.fire("BackupStateMachine", "Nightly"))["status"] == "SUCCEEDED"
