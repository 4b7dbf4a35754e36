"""Exact backups and restores to a time through the state machines, on the local stack (issue 14).

The local stack enforces the SAM-expanded roles, so these also prove the
plan, finalize and restore-finalize functions may read the streams, store
the changes and apply them.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.changes import archive, gather
from ddb_backup.changes.lambda_event import handle
from devkit.emulator import LocalStack
from devkit.strict import iam
from tests.changes.test_model import TABLE, Writer, create_table, end_of_this_second
from tests.conftest import backup_items, backup_summaries, canonical, restore_report, table_items

STREAM: dict[str, str] = {}


def _create_table(stream: str | None = "NEW_AND_OLD_IMAGES", name: str = TABLE) -> None:
    ddb = client("dynamodb")
    create_table(ddb, name, stream)
    if stream:
        STREAM[name] = ddb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def _items(table: str) -> list[str]:
    return sorted(map(canonical, table_items(client("dynamodb"), table)))


def _model(state: dict[Any, dict[str, Any]]) -> list[str]:
    return sorted(map(canonical, state.values()))


def _manifest(bucket: str, key: str) -> dict[str, Any]:
    return dict(json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


class PausingWriter(Writer):
    """The model writer, run in a thread; ``paused`` holds it between two writes (``idle`` says it is held)."""

    def __init__(self, ddb: Any, seed: int) -> None:
        super().__init__(ddb, seed)
        self.paused, self.idle = threading.Event(), threading.Event()

    def loop(self) -> None:
        while not self.stop.is_set():
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.001)
                continue
            self.one()
            time.sleep(0.001)

    def hold(self) -> dict[Any, dict[str, Any]]:
        """Stop the writes (a write under way finishes first); the model as it then is."""
        self.idle.clear()
        self.paused.set()
        assert self.idle.wait(10)
        return dict(self.model)


@pytest.fixture
def slow_scan(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The stack with 20-item scan pages, each a new invocation: writes land between them."""
    monkeypatch.setenv("SCAN_TIME_BUDGET_SECONDS", "0")
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "20")
    monkeypatch.setenv("STREAM_SETTLE_SECONDS", "0")  # moto's stream holds a write as soon as it is made
    with LocalStack(env={"PART_BYTES": str(16 * 1024)}) as stack:
        yield stack


def test_a_machine_backup_with_consistent_while_writing_restores_the_table_at_consistent_at(
    slow_scan: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, ddb, s3 = slow_scan, client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    _create_table()
    writer = PausingWriter(ddb, seed=41)
    writer.run(count=400)
    manifests: list[dict[str, Any]] = []  # every manifest.json written, as written

    def seen(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("/manifest.json"):
            manifests.append(json.loads(params["Body"]))

    s3.meta.events.register("provide-client-params.s3.PutObject", seen)
    at_capture: dict[str, Any] = {}
    original = gather.gather

    def capture_after_the_writes(*args: Any, **kwargs: Any) -> Any:  # finalize: the writer holds still around it
        at_capture["model"], at_capture["ops"] = writer.hold(), sum(writer.ops.values())
        try:
            return original(*args, **kwargs)
        finally:
            writer.paused.clear()

    monkeypatch.setattr(gather, "gather", capture_after_the_writes)
    thread = threading.Thread(target=writer.loop)
    thread.start()
    try:
        desc = stack.run("BackupStateMachine", {"tables": [TABLE], "consistent": True, "segments": 4})
    finally:
        writer.stop.set()
        thread.join()
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    expected = _model(at_capture["model"])
    assert at_capture["ops"] > 400  # the writer wrote while the machine scanned
    manifest = _manifest(bucket, summary["manifest"])
    assert manifest["consistentAt"] == summary["consistentAt"]
    assert sum(e["records"] for e in manifest["changes"]) == summary["changes"] > 0
    assert [m.get("consistentAt") for m in manifests] == [manifest["consistentAt"]]  # written once, exact at once
    assert sorted(map(canonical, backup_items(s3, bucket, summary["manifest"]))) != expected  # the scan alone is not

    directory = summary["manifest"].rsplit("/", 1)[0] + "/"
    restored = stack.run("RestoreStateMachine", {"source": f"s3://{bucket}/{directory}", "table": "exact-copy"})
    assert restored["status"] == "SUCCEEDED", restored.get("cause")
    assert _items("exact-copy") == expected
    [row] = restore_report(restored)["tables"]
    assert row["until"] == manifest["consistentAt"] and row["changesApplied"] > 0


def test_consistent_without_a_usable_stream_fails_the_machine_saying_how_to_enable_one(stack: LocalStack) -> None:
    _create_table(stream=None, name="plain-Table")
    desc = stack.run("BackupStateMachine", {"tables": ["plain-Table"], "consistent": True})
    assert desc["status"] == "FAILED"
    assert "plain-Table has no stream" in desc["cause"] and "StreamViewType=NEW_AND_OLD_IMAGES" in desc["cause"]
    # without asking, a table without a stream gets a plain backup (no consistentAt)
    desc = stack.run("BackupStateMachine", {"tables": ["plain-Table"]})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    assert "consistentAt" not in _manifest(stack.outputs["BackupBucketName"], summary["manifest"])


@pytest.fixture
def archiving(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The stack archiving the table's stream (the table exists before the deploy maps it); a restore's changes
    split into partitions of 4 KiB of change files (several Map children)."""
    monkeypatch.setenv("STREAM_SETTLE_SECONDS", "0")
    env = {"PART_BYTES": str(16 * 1024), "CHANGES_PARTITION_BYTES": "4096"}
    stack = LocalStack(env=env, before_deploy=_create_table)
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": TABLE}
    with stack:
        yield stack


def _to_time(stack: LocalStack, source: str, target: str, when: dt.datetime) -> dict[str, Any]:
    return stack.run("RestoreStateMachine", {"source": source, "table": target, "toTime": when.isoformat()})


def test_machine_restores_to_a_time_equal_the_model_and_refuse_gaps_and_beyond_reach(
    archiving: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack, ddb, s3 = archiving, client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    prefix = stack.functions[next(iter(stack.functions))].environment.get("BACKUP_PREFIX", "")
    writer = Writer(ddb, seed=7)
    writer.run(count=200)
    desc = stack.run("BackupStateMachine", {"tables": [TABLE]})  # a table with a stream: exact by default
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    assert "consistentAt" in _manifest(bucket, summary["manifest"])
    writer.snapshots.clear()
    writer.run(count=300, snapshot_every=60)
    source = f"s3://{bucket}/{prefix}{TABLE}/"

    stack.streams.deliver()  # the mapping feeds the archiver: per shard, concurrently, in batches, some twice
    monkeypatch.setenv("CHANGES_TIME_BUDGET_SECONDS", "0")  # a file a split, 25 changes an apply: both resume
    when, state = writer.snapshots[1]
    restored = _to_time(stack, source, "pit-0", when)
    assert restored["status"] == "SUCCEEDED", restored.get("cause")
    assert _items("pit-0") == _model(state)
    [row] = restore_report(restored)["tables"]
    assert row["until"] == when.isoformat() and row["changesApplied"] > 25 * 2 and row["partitions"] > 1
    monkeypatch.delenv("CHANGES_TIME_BUDGET_SECONDS")
    when, state = writer.snapshots[3]
    assert _to_time(stack, source, "pit-1", when)["status"] == "SUCCEEDED"
    assert _items("pit-1") == _model(state)

    # a batch the event source mapping dropped between two moments: a restore inside it is refused by name
    first, last = writer.snapshots[2][0], writer.snapshots[3][0]
    info = {
        "shardId": "shardId-dropped",
        "streamArn": STREAM[TABLE],
        "startSequenceNumber": "1",
        "endSequenceNumber": "2",
        "approximateArrivalOfFirstRecord": first.isoformat(),
        "approximateArrivalOfLastRecord": last.isoformat(),
    }
    handle(
        s3,
        None,
        bucket,
        prefix,
        {"Records": [{"eventSource": "aws:sqs", "body": json.dumps({"DDBStreamBatchInfo": info})}]},
    )
    refused = _to_time(stack, source, "pit-gap", first + (last - first) / 2)
    assert refused["status"] == "FAILED"
    assert "may be missing" in refused["cause"] and "shardId-dropped" in refused["cause"]
    beyond = _to_time(stack, source, "pit-late", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert beyond["status"] == "FAILED" and "is not yet past on DynamoDB's clock" in beyond["cause"]
    writer.run(count=20)  # changes the archiver has not received: a restore past them is refused, by shard
    behind = _to_time(stack, source, "pit-behind", end_of_this_second())
    assert behind["status"] == "FAILED" and "has not received yet" in behind["cause"]
    tables = ddb.list_tables()["TableNames"]
    assert not {"pit-gap", "pit-late", "pit-behind"} & set(tables)  # refused before any target was made
    assert archive.gaps(s3, bucket, f"{prefix}{TABLE}/")


def test_an_exact_backup_in_another_allowed_bucket_restores_with_its_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """RestoreSourceArns opens a bucket to restore: finalize reads the exact backup's manifest and changes there."""
    monkeypatch.setenv("SCAN_TIME_BUDGET_SECONDS", "0")
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "20")
    monkeypatch.setenv("STREAM_SETTLE_SECONDS", "0")
    parameters = {"RestoreSourceArns": "arn:aws:s3:::copies,arn:aws:s3:::copies/*"}
    with LocalStack(parameters=parameters, env={"PART_BYTES": str(16 * 1024)}) as stack:
        ddb, s3 = client("dynamodb"), client("s3")
        bucket = stack.outputs["BackupBucketName"]
        _create_table()
        writer = Writer(ddb, seed=43)
        writer.run(count=300)
        original = gather.gather

        def capture_after_more_writes(*args: Any, **kwargs: Any) -> Any:  # writes after the scan: its changes
            with iam.acting_as(None):  # the application writing, not finalize's role
                writer.run(count=60)
            return original(*args, **kwargs)

        monkeypatch.setattr(gather, "gather", capture_after_more_writes)
        desc = stack.run("BackupStateMachine", {"tables": [TABLE], "consistent": True, "segments": 2})
        assert desc["status"] == "SUCCEEDED", desc.get("cause")
        [summary] = backup_summaries(desc)
        assert summary["changes"] > 0
        directory = summary["manifest"].rsplit("/", 1)[0] + "/"
        s3.create_bucket(Bucket="copies")
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=directory)["Contents"]:  # moved, not copied
            s3.copy_object(Bucket="copies", Key=obj["Key"], CopySource={"Bucket": bucket, "Key": obj["Key"]})
            s3.delete_object(Bucket=bucket, Key=obj["Key"])

        restored = stack.run("RestoreStateMachine", {"source": f"s3://copies/{directory}", "table": "exact-copy"})
        assert restored["status"] == "SUCCEEDED", restored.get("cause")
        assert _items("exact-copy") == _model(writer.model)
        [row] = restore_report(restored)["tables"]
        assert row["changesApplied"] > 0


def test_the_backup_machine_calls_finalize_again_until_every_change_is_gathered(
    slow_scan: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exact backup's finalize out of time answers done: false; the machine calls it again, and each call
    goes on from the checkpoint in S3 (issue 23 point 8). Budget 0: each call reads one page or file."""
    monkeypatch.setenv("FINALIZE_TIME_BUDGET_SECONDS", "0")
    monkeypatch.setenv("CHANGE_FILE_RECORDS", "15")
    stack, ddb = slow_scan, client("dynamodb")
    bucket = stack.outputs["BackupBucketName"]
    _create_table()
    writer = Writer(ddb, seed=44)
    writer.run(count=200)
    original, calls = gather.gather, []

    def writes_then_gathers(*args: Any, **kwargs: Any) -> Any:  # the first call: changes after the scan
        if not calls:
            with iam.acting_as(None):
                writer.run(count=120)
        calls.append(original(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(gather, "gather", writes_then_gathers)
    desc = stack.run("BackupStateMachine", {"tables": [TABLE], "consistent": True, "segments": 2})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    assert calls.count(None) >= 3 and calls[-1] is not None  # out of time at least three times, then done
    manifest = _manifest(bucket, summary["manifest"])
    assert len(manifest["changes"]) >= 3 and sum(e["records"] for e in manifest["changes"]) == summary["changes"]
    directory = summary["manifest"].rsplit("/", 1)[0] + "/"
    restored = stack.run("RestoreStateMachine", {"source": f"s3://{bucket}/{directory}", "table": "gathered-copy"})
    assert restored["status"] == "SUCCEEDED", restored.get("cause")
    assert _items("gathered-copy") == _model(writer.model)
