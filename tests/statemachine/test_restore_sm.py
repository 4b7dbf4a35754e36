"""Restore state machine, real ASL on the local stack: back up, restore, compare item for item.

Faults are injected into the DynamoDB client the handlers share (botocore event
hooks): moto itself never throttles nor leaves items unprocessed.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.format import sources as readers
from devkit import sample
from devkit.emulator import LambdaContext
from tests.conftest import FIXTURES, backup_summaries, canonical, expected_items, restore_report, table_items

EVENTS = Path(__file__).resolve().parents[2] / "events"
MAP = [{"from": "mystack-", "to": "restore-"}]


def _same_tables(ddb: Any, source: str, target: str) -> None:
    a = Counter(canonical(i) for i in table_items(ddb, source))
    b = Counter(canonical(i) for i in table_items(ddb, target))
    assert a == b, f"{target} differs from {source}: {sum((a - b).values())} missing, {sum((b - a).values())} extra"


def _backup(stack: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    desc = stack.run("BackupStateMachine", request)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    return backup_summaries(desc)


def _restore(stack: Any, request: dict[str, Any]) -> dict[str, Any]:
    return stack.run("RestoreStateMachine", request)


def _backup_dir(summary: dict[str, Any]) -> str:
    return summary["manifest"].rsplit("/", 1)[0] + "/"


# ------------------------------------------------------------------ the whole job
def test_backup_then_restore_a_cumulus_set_gives_identical_tables(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    counts = {"Granules": 300, "Collections": 25, "Files": 150, "Rules": 0}
    sample.create_cumulus_tables(ddb, "mystack-", counts)
    summaries = _backup(stack, {"tablePrefix": "mystack-", "segments": 2})
    desc = _restore(stack, {"source": "backups/", "map": MAP})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    report = restore_report(desc)
    assert report["status"] == "SUCCEEDED" and report["deadLettered"] == 0 and report["seconds"] >= 0
    restored = {t["target"]: t for t in report["tables"]}
    assert set(restored) == {sample.table_name("restore-", t) for t in counts}
    for short, count in counts.items():
        target = sample.table_name("restore-", short)
        _same_tables(ddb, sample.table_name("mystack-", short), target)
        assert restored[target]["itemsRestored"] == restored[target]["expectedItems"] == count
        assert restored[target]["created"] is True
    assert report["itemsRestored"] == sum(counts.values())
    assert sum(t["parts"] for t in report["tables"]) > len(counts)  # small parts: several per table
    table = ddb.describe_table(TableName="restore-GranulesTable")["Table"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "status-index"
    tags = ddb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert tags == [{"Key": "stack", "Value": "mystack"}]
    bucket = stack.outputs["BackupBucketName"]
    saved = json.loads(
        s3.get_object(Bucket=bucket, Key=f"backups/@ddb-backup/restores/{report['runId']}/report.json")["Body"].read()
    )
    assert saved["status"] == "SUCCEEDED"
    assert {s["backupId"] for s in summaries} == {
        json.loads(
            s3.get_object(Bucket=bucket, Key=f"backups/@ddb-backup/restores/{report['runId']}/plan.json")["Body"].read()
        )["backupRun"]
    }


def test_one_backup_restores_by_its_s3_url_into_a_named_table(stack):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Collections": 40})
    (summary,) = _backup(stack, {"tables": ["mystack-CollectionsTable"]})
    source = f"s3://{stack.outputs['BackupBucketName']}/{summary['manifest']}"
    desc = _restore(stack, {"source": source, "table": "copy-CollectionsTable"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    _same_tables(ddb, "mystack-CollectionsTable", "copy-CollectionsTable")


def test_an_empty_backup_restores_to_an_empty_table(stack):
    ddb = client("dynamodb")
    sample.create_table(ddb, "mystack-UsersTable", sample.CUMULUS_TABLES["Users"])
    _backup(stack, {"tables": ["mystack-UsersTable"]})
    desc = _restore(stack, {"source": "backups/", "map": MAP})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert desc["output"]["itemsRestored"] == 0 and restore_report(desc)["tables"][0]["parts"] == 0
    assert ddb.describe_table(TableName="restore-UsersTable")["Table"]["TableStatus"] == "ACTIVE"


def test_a_part_that_spans_several_invocations_is_restored_whole(stack, monkeypatch):
    """A zero time budget: every invocation hands over after one 25-item request."""
    monkeypatch.setenv("RESTORE_TIME_BUDGET_SECONDS", "0")
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Executions": 130})
    _backup(stack, {"tables": ["mystack-ExecutionsTable"]})
    desc = _restore(stack, {"source": "backups/", "map": MAP})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    _same_tables(ddb, "mystack-ExecutionsTable", "restore-ExecutionsTable")


# ------------------------------------------------------------------ faults
class _Faults:
    """UnprocessedItems and throttling for BatchWriteItem, injected through botocore's event hooks."""

    def __init__(self, ddb: Any, *, every: int = 3, hold: int = 7, throttle_every: int = 5, stuck=frozenset()):
        self.calls = 0
        self.every, self.hold, self.throttle_every, self.stuck = every, hold, throttle_every, stuck
        self.lock = threading.Lock()
        self.local = threading.local()
        events = ddb.meta.events
        events.register("provide-client-params.dynamodb.BatchWriteItem", self.hold_back)
        events.register("before-call.dynamodb.BatchWriteItem", self.throttle)
        events.register("after-call.dynamodb.BatchWriteItem", self.report_unprocessed)

    def hold_back(self, params: dict[str, Any], **_: Any) -> None:
        """Take some requests out of the call; they come back as UnprocessedItems."""
        with self.lock:
            self.calls += 1
            n = self.calls
        held: dict[str, list[Any]] = {}
        kept: dict[str, list[Any]] = {}
        for table, requests in params["RequestItems"].items():
            for i, r in enumerate(requests):
                key = next(iter(r["PutRequest"]["Item"].values()))
                late = n % self.every == 0 and i >= len(requests) - self.hold
                (held if key.get("S") in self.stuck or late else kept).setdefault(table, []).append(r)
        self.local.n = n
        self.local.held = held
        self.local.all_held = bool(held) and not kept
        if held and kept:
            params["RequestItems"] = kept

    def throttle(self, **_: Any) -> Any:
        """Answer without calling DynamoDB: all held back, or throttled."""
        if self.local.all_held:
            held, self.local.held = self.local.held, {}
            return _Http(200), {"UnprocessedItems": held, "ResponseMetadata": {"HTTPStatusCode": 200}}
        if self.local.n % self.throttle_every == 0:
            self.local.held = {}
            return _Http(400), {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        return None

    def report_unprocessed(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.local.held and "Error" not in parsed:
            parsed.setdefault("UnprocessedItems", {}).update(self.local.held)
        self.local.held = {}


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


def test_unprocessed_items_and_throttling_still_give_identical_tables(stack):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 250, "Files": 120})
    _backup(stack, {"tablePrefix": "mystack-", "segments": 2})
    faults = _Faults(ddb)
    desc = _restore(stack, {"source": "backups/", "map": MAP})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert faults.calls > 10
    assert sum(t["retries"] for t in restore_report(desc)["tables"]) > 0
    _same_tables(ddb, "mystack-GranulesTable", "restore-GranulesTable")
    _same_tables(ddb, "mystack-FilesTable", "restore-FilesTable")


def test_items_that_cannot_be_written_fail_the_run_naming_the_dead_letter(stack, monkeypatch):
    monkeypatch.setenv("RESTORE_ATTEMPTS", "3")
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 120})
    (summary,) = _backup(stack, {"tables": ["mystack-GranulesTable"]})
    stuck = frozenset({"granuleId-0000007", "granuleId-0000042", "granuleId-0000099"})
    _Faults(ddb, every=10**9, throttle_every=10**9, stuck=stuck)
    desc = _restore(stack, {"source": "backups/", "map": MAP})
    assert desc["status"] == "FAILED"
    assert desc["error"] == "RestoreIncomplete"
    cause = desc["cause"]
    bucket = stack.outputs["BackupBucketName"]
    dead_dir = f"s3://{bucket}/{_backup_dir(summary)}dead-letter/"
    assert "3 of " in cause and "still unprocessed after 3 tries in a row" in cause and dead_dir in cause
    url = cause[cause.index(dead_dir) :].split(".json.gz")[0] + ".json.gz"
    saved = list(readers.open_source(url, s3).items())
    assert {i["granuleId"]["S"] for i in saved} == stuck
    # Nothing is lost: the table plus the dead letter is the source, item for item.
    restored = Counter(canonical(i) for i in table_items(ddb, "restore-GranulesTable"))
    assert restored + Counter(map(canonical, saved)) == Counter(
        map(canonical, table_items(ddb, "mystack-GranulesTable"))
    )


def test_a_corrupted_part_fails_the_run_naming_it(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 200})
    (summary,) = _backup(stack, {"tables": ["mystack-GranulesTable"]})
    bucket = stack.outputs["BackupBucketName"]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=summary["manifest"])["Body"].read())
    part = manifest["parts"][-1]["key"]
    key = _backup_dir(summary) + part
    source = readers.open_source(f"s3://{bucket}/{_backup_dir(summary)}", s3)
    corrupt_keys = {i["granuleId"]["S"] for i in source.read_part(source.parts[-1])}
    assert len(corrupt_keys) == manifest["parts"][-1]["items"] > 0
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x40
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body))
    desc = _restore(stack, {"source": _backup_dir(summary), "table": "restore-GranulesTable"})
    assert desc["status"] == "FAILED"
    assert desc["error"] == "IntegrityError"
    assert f"part {part}" in desc["cause"] and "is corrupt: sha256" in desc["cause"]
    # Not one item of the corrupt part was written (it was verified before its first item).
    restored = {i["granuleId"]["S"] for i in table_items(ddb, "restore-GranulesTable")}
    assert not restored & corrupt_keys
    assert restored <= {i["granuleId"]["S"] for i in table_items(ddb, "mystack-GranulesTable")}


# ------------------------------------------------------------------ safe targets
def test_unsafe_targets_are_refused_and_overwrite_upserts(stack):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 30})
    (summary,) = _backup(stack, {"tables": ["mystack-RulesTable"]})
    source = _backup_dir(summary)

    desc = _restore(stack, {"source": source})
    assert desc["status"] == "FAILED" and desc["error"] == "TargetRefused"
    assert "table mystack-RulesTable is the backup's own source table" in desc["cause"]

    sample.create_table(ddb, "restore-RulesTable", sample.CUMULUS_TABLES["Rules"])
    ddb.put_item(TableName="restore-RulesTable", Item={"name": {"S": "kept"}})
    desc = _restore(stack, {"source": source, "table": "restore-RulesTable"})
    assert desc["status"] == "FAILED" and "table restore-RulesTable is not empty" in desc["cause"]

    ddb.put_item(TableName="restore-RulesTable", Item={"name": {"S": "name-0000003"}, "stale": {"BOOL": True}})
    desc = _restore(stack, {"source": source, "table": "restore-RulesTable", "mode": "overwrite"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    restored = Counter(canonical(i) for i in table_items(ddb, "restore-RulesTable"))
    expected = Counter(canonical(i) for i in table_items(ddb, "mystack-RulesTable"))
    assert restored - expected == Counter({canonical({"name": {"S": "kept"}}): 1})
    assert expected - restored == Counter()

    desc = _restore(stack, {"source": source, "allowSource": True, "mode": "overwrite"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")


def test_a_set_is_checked_whole_before_any_table_is_created(stack):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 20, "Pdrs": 10})
    _backup(stack, {"tablePrefix": "mystack-"})
    sample.create_table(ddb, "restore-PdrsTable", [("otherKey", "HASH")])
    desc = _restore(stack, {"source": "backups/", "map": MAP})
    assert desc["status"] == "FAILED" and desc["error"] == "TargetRefused"
    assert "table restore-PdrsTable has keys otherKey HASH (S), the backup has pdrName HASH (S)" in desc["cause"]
    assert "restore-GranulesTable" not in ddb.list_tables()["TableNames"]


def test_a_malformed_request_fails_naming_the_field(stack):
    desc = _restore(stack, {"source": "backups/", "table": "restore-X", "map": MAP})
    assert desc["status"] == "FAILED" and "not both" in desc["cause"]
    desc = _restore(stack, {"source": "backups/", "mode": "merge"})
    assert desc["status"] == "FAILED" and "mode" in desc["cause"]


# ------------------------------------------------------------------ foreign formats
def _upload(s3: Any, bucket: str, local: Path, key: str) -> None:
    if local.is_file():
        s3.put_object(Bucket=bucket, Key=key, Body=local.read_bytes())
        return
    for path in local.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{key}{path.relative_to(local)}", Body=path.read_bytes())


def _same_as_expected(ddb: Any, target: str, table: str) -> None:
    got = Counter(canonical(i) for i in table_items(ddb, target))
    assert got == Counter(canonical(i) for i in expected_items(table))


def test_every_foreign_format_restores_exactly(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    _upload(s3, bucket, FIXTURES / "native-export", "imports/granules-export/")
    _upload(
        s3, bucket, FIXTURES / "cumulus-api-1.18.0" / "mystack-ExecutionsTable.json", "imports/1.18/executions.json"
    )
    _upload(
        s3, bucket, FIXTURES / "cumulus-api-1.24.0" / "mystack-CollectionsTable.json", "imports/1.24/collections.json"
    )

    # A native export carries no schema: the keys are given, their types read from the first item.
    desc = _restore(
        stack, {"source": "imports/granules-export/", "table": "restore-GranulesTable", "keys": ["granuleId"]}
    )
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert restore_report(desc)["tables"][0]["format"] == "native-export"
    _same_as_expected(ddb, "restore-GranulesTable", "mystack-GranulesTable")

    # Old cumulus-api, typed lines, with a full key schema given.
    desc = _restore(
        stack,
        {
            "source": "imports/1.18/executions.json",
            "table": "restore-ExecutionsTable",
            "keySchema": [{"AttributeName": "arn", "KeyType": "HASH", "AttributeType": "S"}],
        },
    )
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    _same_as_expected(ddb, "restore-ExecutionsTable", "mystack-ExecutionsTable")

    # Newer cumulus-api, plain JSON, into a table that already exists: checked, then written, with a warning.
    sample.create_table(ddb, "restore-CollectionsTable", [("name", "HASH"), ("version", "RANGE")])
    desc = _restore(stack, {"source": "imports/1.24/collections.json", "table": "restore-CollectionsTable"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert "cannot tell sets from lists" in restore_report(desc)["warnings"][0]
    _same_as_expected(ddb, "restore-CollectionsTable", "mystack-CollectionsTable")


def test_a_foreign_format_without_keys_or_target_is_refused(stack):
    s3 = client("s3")
    bucket = stack.outputs["BackupBucketName"]
    _upload(s3, bucket, FIXTURES / "cumulus-api-1.24.0" / "mystack-GranulesTable.json", "imports/granules.json")
    desc = _restore(stack, {"source": "imports/granules.json", "table": "restore-GranulesTable"})
    assert desc["status"] == "FAILED" and desc["error"] == "TargetRefused"
    assert "restore-GranulesTable does not exist and the backup carries no schema" in desc["cause"]
    sample.create_table(client("dynamodb"), "restore-GranulesTable", [("id", "HASH")])
    desc = _restore(stack, {"source": "imports/granules.json", "table": "restore-GranulesTable"})
    assert desc["status"] == "FAILED" and "key id is S there, the first item has no such attribute" in desc["cause"]


# ------------------------------------------------------------------ the sample events drive the handlers
def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _call(stack: Any, logical_id: str, event: dict[str, Any]) -> Any:
    fn = next(f for f in stack.functions.values() if f.logical_id == logical_id)
    return fn.entry()(event, LambdaContext(fn))


def test_the_sample_events_run_a_restore_by_hand(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 60})
    (summary,) = _backup(stack, {"tables": ["mystack-GranulesTable"]})
    bucket = stack.outputs["BackupBucketName"]
    plan_event = _event("plan_restore.json")
    plan_event["request"]["source"] = _backup_dir(summary)
    run = _call(stack, "PlanRestoreFunction", plan_event)
    assert run["runId"] == plan_event["executionName"] and run["parts"] >= 1
    template = _event("restore_part.json")
    for work in json.loads(s3.get_object(Bucket=bucket, Key=run["workKey"])["Body"].read()):
        task = {**template, **work}
        while not task.get("done"):
            task = _call(stack, "RestorePartFunction", task)
    finalize_event = {**_event("finalize_restore.json"), "bucket": bucket, "runPrefix": run["runPrefix"]}
    report = _call(stack, "FinalizeRestoreFunction", finalize_event)
    assert report["itemsRestored"] == 60
    _same_tables(ddb, "mystack-GranulesTable", "restore-GranulesTable")
    assert _event("restore_execution.json")["map"] == MAP
