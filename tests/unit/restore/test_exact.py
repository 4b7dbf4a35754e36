"""The restore machine's exact restores (ddb_backup.restore.partitioned.machine): changes applied up to the time,
none after it, through the machine's steps (partition, one call per partition, finalize's outcome)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive
from ddb_backup.changes.stream import change_of
from ddb_backup.restore.partitioned.machine import apply_task, changes_outcome, partition_run
from tests.helpers.aws import T0, FakeDynamoDB, FakeS3, record

B, DIR, BACKUP = "bkt", "p/T/", "20261201T100000Z-0123abcd"


def _change(seq: int, seconds: int, key: str, value: str | None) -> dict[str, Any]:
    return change_of(record(seq, T0 + dt.timedelta(seconds=seconds), key, value), "shardId-1")


def _exact_backup_and_archive(s3: FakeS3) -> None:
    """An exact backup consistent at T0, and an archive whose one change file spans T0+60 s to T0+180 s."""
    directory = f"{DIR}{BACKUP}/"
    entry = archive.put_changes(s3, B, f"{directory}changes/000000.jsonl.gz", [_change(1, -1, "a", "backup")])
    entry["key"] = entry["key"][len(directory) :]
    manifest = {"backupId": BACKUP, "consistentAt": T0.isoformat(), "changesFrom": T0.isoformat(), "changes": [entry]}
    put_json(s3, B, f"{directory}manifest.json", manifest)
    archive.start_archive(
        s3, B, DIR, "T", "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/x", T0 - dt.timedelta(hours=1)
    )
    spanning = [_change(10, 60, "b", "before"), _change(11, 180, "b", "after"), _change(12, 180, "c", "after")]
    archive.append(s3, B, DIR, spanning)
    archive.save_state(s3, B, DIR, "shardId-1", coveredUntil=(T0 + dt.timedelta(hours=1)).isoformat())


def _restore(to_time: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Restore the exact backup to ``to_time`` into a fresh table: its items' values by key, and the report's counts."""
    s3, ddb = FakeS3(), FakeDynamoDB()
    _exact_backup_and_archive(s3)
    exact = {"source": f"s3://{B}/{DIR}{BACKUP}/", "consistentAt": T0.isoformat(), "toTime": to_time, "tableDir": DIR}
    table = {"exact": exact, "index": 0, "target": "T2", "writeRate": 0}
    put_json(s3, B, "runs/r/plan.json", {"tables": [table]})
    run = partition_run(s3, B, "runs/r/", concurrency=4, partition_bytes=1)  # a partition per byte: several
    items = json.loads(s3.objects[(B, run["itemsKey"])])
    assert len(items) == run["partitions"] > 1
    for item in items:
        assert apply_task(ddb, s3, B, "runs/r/", item)["done"]
    row, problems = changes_outcome(s3, B, "runs/r/", table)
    assert not problems
    return {k: item["v"]["S"] for k, item in ddb.items.items()}, row


def test_a_restore_to_a_time_inside_a_change_file_applies_none_of_its_later_changes() -> None:
    to_time = (T0 + dt.timedelta(seconds=120)).isoformat()
    items, done = _restore(to_time)
    assert items == {"a": "backup", "b": "before"}
    assert done["changesApplied"] == 2 and done["until"] == to_time


def test_a_change_exactly_at_the_time_that_starts_a_change_file_is_applied() -> None:
    items, _ = _restore((T0 + dt.timedelta(seconds=60)).isoformat())  # the spanning file's first change
    assert items == {"a": "backup", "b": "before"}


def test_a_time_given_with_a_negative_offset_reaches_the_change_files_of_that_utc_moment() -> None:
    eastern = dt.timezone(-dt.timedelta(hours=5))
    items, _ = _restore((T0 + dt.timedelta(seconds=120)).astimezone(eastern).isoformat())  # 05:02:00-05:00
    assert items == {"a": "backup", "b": "before"}
