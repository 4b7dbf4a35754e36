"""Model-based, at scale (issue 23): ``make model`` runs it, CI does not (tests/changes/test_model.py is its small
case). On the strict stream (4 shards that split as they fill), a writer makes MODEL_CHANGES changes (puts,
updates, deletes, a few items near DynamoDB's 400 KB limit) while two exact backups run through the backup
machine; the archiver receives the stream per shard, concurrently, some batches twice. Then at least 20
restore times, given in UTC, with -05:00 and +05:30 offsets, and on a change's whole second, are restored
through the CLI and through the restore machine, each item for item equal to the model at that time.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit.emulator import LocalStack
from tests.changes.test_model import TABLE, Writer, create_table, end_of_this_second
from tests.conftest import backup_summaries, canonical, restore_report, table_items

CHANGES = int(os.environ.get("MODEL_CHANGES", "0"))
pytestmark = pytest.mark.skipif(CHANGES <= 0, reason="make model runs it (MODEL_CHANGES=100000)")
#: Items near DynamoDB's 400 KB limit: every LARGE_EVERY-th call of the writer puts one.
LARGE_EVERY = 1500
TIMES = 20


class ScaleWriter(Writer):
    """The model writer, at scale: most changes in batches of 25 puts and deletes (one BatchWriteItem, 25 stream
    records), single puts, updates and deletes between them, and now and then an item of about 380 KB."""

    calls = large = 0

    def one(self) -> None:
        self.calls += 1
        if self.calls % LARGE_EVERY == 0:
            self.large += 1
            key = self.key()
            item = {**key, "big": {"S": self.rng.randbytes(190_000).hex()}, "n": {"N": str(self.rng.randrange(99))}}
            self.ddb.put_item(TableName=TABLE, Item=item)
            self.model[(key["pk"]["S"], key["sk"]["N"])] = item
            self.ops["put"] += 1
        elif self.rng.random() < 0.7:
            self.batch()
        else:
            super().one()

    def batch(self) -> None:
        keys = {(k["pk"]["S"], k["sk"]["N"]): k for k in (self.key() for _ in range(25))}  # distinct in a batch
        requests, after = [], {}
        for k, key in keys.items():
            if self.rng.random() < 0.25:
                requests.append({"DeleteRequest": {"Key": key}})
                after[k] = None
            else:
                item = {**key, "v": {"S": f"b{self.rng.randrange(10**6)}"}, "ss": {"SS": ["x", f"y{len(requests)}"]}}
                requests.append({"PutRequest": {"Item": item}})
                after[k] = item
        pending = {TABLE: requests}
        while pending:
            pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        for k, item in after.items():
            if item is None:
                self.model.pop(k, None)
                self.ops["delete"] += 1
            else:
                self.model[k] = item
                self.ops["put"] += 1

    def to_total(self, total: int, snapshots: int) -> None:
        """Write until ``total`` changes in all, a snapshot of the model every 1/``snapshots`` of the way."""
        done = sum(self.ops.values())
        step = max(1, (total - done) // snapshots)
        mark = done + step
        while sum(self.ops.values()) < total:
            self.one()
            if sum(self.ops.values()) >= mark:
                self.snapshots.append((end_of_this_second(), copy.deepcopy(self.model)))
                mark += step


@pytest.fixture
def archiving(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The stack archiving the table's stream; the changes of a restore split into partitions of 256 KiB."""
    monkeypatch.setenv("STREAM_SETTLE_SECONDS", "0")
    env = {"PART_BYTES": str(256 * 1024), "CHANGES_PARTITION_BYTES": str(256 * 1024)}
    stack = LocalStack(env=env, before_deploy=lambda: create_table(client("dynamodb")))
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": TABLE}
    stack.streams.split_every = max(300, CHANGES // 12)  # a few splits over the run on each shard
    with stack:
        yield stack


def _backup_while_writing(stack: LocalStack, writer: ScaleWriter, total: int) -> dict[str, Any]:
    """A machine backup of the table while the writer writes up to ``total`` changes."""
    thread = threading.Thread(target=writer.to_total, args=(total, 4))
    thread.start()
    try:
        time.sleep(0.2)
        desc = stack.run("BackupStateMachine", {"tables": [TABLE], "consistent": True, "segments": 4})
    finally:
        thread.join()
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    return dict(summary)


def _texts(chosen: list[tuple[dt.datetime, Any]]) -> list[str]:
    """Each time as a restore is asked for it: UTC, -05:00, +05:30, and on the whole second (which holds every
    change stamped in it: the model at that second's end)."""
    zones = [dt.UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=5, minutes=30))]
    out = []
    for n, (when, _) in enumerate(chosen):
        moment = when.replace(microsecond=0) if n % 4 == 3 else when
        out.append(moment.astimezone(zones[n % 3]).isoformat().replace("+00:00", "Z"))
    return out


def _same(table: str, state: dict[Any, dict[str, Any]]) -> bool:
    got = sorted(map(canonical, table_items(client("dynamodb"), table)))
    return got == sorted(map(canonical, state.values()))


def test_at_scale_restores_to_twenty_times_equal_the_model_through_the_cli_and_the_machine(
    archiving: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, ddb = archiving, client("dynamodb")
    bucket = stack.outputs["BackupBucketName"]
    prefix = stack.functions[next(iter(stack.functions))].environment.get("BACKUP_PREFIX", "")
    began = time.monotonic()
    writer = ScaleWriter(ddb, seed=23)
    per = CHANGES // 5
    writer.to_total(per, 1)
    first = _backup_while_writing(stack, writer, 2 * per)
    writer.to_total(3 * per, 8)
    second = _backup_while_writing(stack, writer, 4 * per)
    writer.to_total(CHANGES, 8)
    stack.streams.deliver(rounds=10_000)
    written = time.monotonic() - began

    after = [s for s in writer.snapshots if s[0] > dt.datetime.fromisoformat(first["consistentAt"])]
    chosen = [*after[:: max(1, len(after) // (TIMES - 1))][: TIMES - 1], writer.snapshots[-1]]
    assert len(chosen) >= TIMES
    source = f"s3://{bucket}/{prefix}{TABLE}/"
    results, partitions = [], []
    for n, ((_, state), text) in enumerate(zip(chosen, _texts(chosen), strict=True)):
        capsys.readouterr()  # what the stack's functions logged before: only the CLI's answer is read
        assert main(["--json", "restore", source, "--table", f"cli-{n:02d}", "--to-time", text]) == 0
        [row] = json.loads(capsys.readouterr().out)
        desc = stack.run("RestoreStateMachine", {"source": source, "table": f"sfn-{n:02d}", "toTime": text})
        assert desc["status"] == "SUCCEEDED", desc.get("cause")
        [report] = restore_report(desc)["tables"]
        partitions.append(report["partitions"])
        results.append(
            (text, row["consistentAt"], len(state), _same(f"cli-{n:02d}", state), _same(f"sfn-{n:02d}", state))
        )
        for table in (f"cli-{n:02d}", f"sfn-{n:02d}"):
            ddb.delete_table(TableName=table)
    shard_count = len(next(iter(stack.streams.streams.values())).shards)
    print(
        f"\nops {writer.ops} (total {sum(writer.ops.values())}, {writer.large} of ~380 KB); written and archived in {written:.0f} s"
    )
    print(
        f"backups at {first['consistentAt']}, {second['consistentAt']}; shards {shard_count}, splits {stack.streams.splits}"
    )
    print(f"partitions per machine restore {partitions}; whole run {time.monotonic() - began:.0f} s")
    for row in results:
        print("restore to {} from backup at {}: {} items, CLI identical {}, machine identical {}".format(*row))
    assert sum(writer.ops.values()) >= CHANGES and writer.large >= CHANGES // 40_000
    assert {r[1] for r in results} == {first["consistentAt"], second["consistentAt"]}
    assert stack.streams.splits >= 2 and shard_count >= 4
    assert all(r[3] and r[4] for r in results), results
