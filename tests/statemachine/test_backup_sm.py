"""Backup state machine, real ASL on the local stack: items out equal items in."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from ddb_backup.aws.clients import client
from devkit import sample
from tests.conftest import backup_items, backup_summaries, canonical, table_items

COUNTS = {"Granules": 400, "Collections": 30, "Executions": 120, "Files": 200}


def _check_backup(s3, bucket: str, summary: dict) -> None:
    ddb = client("dynamodb")
    source = Counter(canonical(i) for i in table_items(ddb, summary["table"]))
    saved = Counter(canonical(i) for i in backup_items(s3, bucket, summary["manifest"]))
    assert saved == source, f"{summary['table']}: backup differs from the table"
    assert max(saved.values()) == 1
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=summary["manifest"])["Body"].read())
    directory = summary["manifest"].rsplit("/", 1)[0] + "/"
    assert manifest["totals"]["items"] == sum(source.values()) == sum(p["items"] for p in manifest["parts"])
    for part in manifest["parts"]:
        body = s3.get_object(Bucket=bucket, Key=directory + part["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == part["sha256"]
        assert len(body) == part["bytes"]


def test_backs_up_a_cumulus_set_by_prefix_item_for_item(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", COUNTS)
    sample.create_table(ddb, "other-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    desc = stack.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": 3})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    summaries = {s["table"]: s for s in backup_summaries(desc)}
    assert set(summaries) == {sample.table_name("mystack-", t) for t in COUNTS}
    bucket = stack.outputs["BackupBucketName"]
    for summary in summaries.values():
        _check_backup(s3, bucket, summary)
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=summaries["mystack-GranulesTable"]["manifest"])["Body"].read()
    )
    assert manifest["segments"] == 3
    assert {p["segment"] for p in manifest["parts"]} == {0, 1, 2}
    table = manifest["description"]["Table"]
    assert table["KeySchema"] == [{"AttributeName": "granuleId", "KeyType": "HASH"}]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "status-index"
    assert manifest["description"]["Tags"] == [{"Key": "stack", "Value": "mystack"}]


def test_a_segment_spans_several_invocations(stack, monkeypatch):
    """A zero time budget and 20-item pages: every invocation hands over after one page."""
    monkeypatch.setenv("SCAN_TIME_BUDGET_SECONDS", "0")
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "20")
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 150})
    desc = stack.run("BackupStateMachine", {"tables": ["mystack-GranulesTable"], "segments": 2})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    (summary,) = backup_summaries(desc)
    assert summary["items"] == 150
    assert summary["parts"] >= 150 // 20
    _check_backup(s3, stack.outputs["BackupBucketName"], summary)


def test_an_empty_table_gets_a_manifest_with_no_parts(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_table(ddb, "mystack-UsersTable", sample.CUMULUS_TABLES["Users"])
    desc = stack.run("BackupStateMachine", {"tables": ["mystack-UsersTable"]})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    (summary,) = backup_summaries(desc)
    manifest = json.loads(
        s3.get_object(Bucket=stack.outputs["BackupBucketName"], Key=summary["manifest"])["Body"].read()
    )
    assert manifest["parts"] == [] and manifest["totals"]["items"] == 0 and manifest["segments"] == 1


def test_a_missing_table_fails_the_execution_naming_it(stack):
    desc = stack.run("BackupStateMachine", {"tables": ["mystack-NopeTable"]})
    assert desc["status"] == "FAILED"
    assert "mystack-NopeTable" in desc["cause"]


def test_a_malformed_request_fails_naming_the_field(stack):
    desc = stack.run("BackupStateMachine", {"tables": ["mystack-GranulesTable"], "tablePrefix": "x"})
    assert desc["status"] == "FAILED"
    assert "tablePrefix" in desc["cause"]
