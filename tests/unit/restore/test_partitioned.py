"""The changes of an exact or to-time restore partitioned by key, folded and applied per partition
(ddb_backup.restore.partitioned): bounded buffers, one partition per key, resumable split and apply."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive
from ddb_backup.changes.stream import change_of
from ddb_backup.errors import ChangesPending, IntegrityError
from ddb_backup.restore.partitioned import split
from ddb_backup.restore.partitioned.apply import apply_partition, each_partition, folded
from ddb_backup.restore.partitioned.files import ChangeFile
from ddb_backup.restore.partitioned.local import apply_changes
from ddb_backup.restore.partitioned.machine import apply_task, changes_outcome, partition_run
from ddb_backup.restore.partitioned.store import DirStore
from tests.helpers.aws import LONG_SEQ, SHORT_SEQ, T0, FakeDynamoDB, FakeS3, record


def _change(seq: int, seconds: int, key: str, value: str | None) -> dict[str, Any]:
    return change_of(record(seq, T0 + dt.timedelta(seconds=seconds), key, value), "shardId-1")


def _files(tmp: Path, changes: list[dict[str, Any]], per_file: int) -> list[ChangeFile]:
    """The changes in local change files of ``per_file`` each (sha256 and size as a manifest gives them)."""
    out = []
    for n in range(0, len(changes), per_file):
        body = archive.encode(changes[n : n + per_file])
        path = tmp / f"in/{n:08d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        out.append(ChangeFile(str(path), hashlib.sha256(body).hexdigest(), len(body)))
    return out


def _history(count: int, keys: int, seed: int = 3) -> list[dict[str, Any]]:
    """``count`` changes over ``keys`` keys, a second apart, puts and deletes, in sequence order."""
    rng = random.Random(seed)
    return [
        _change(1000 + n, n, f"k{rng.randrange(keys)}", None if rng.random() < 0.2 else f"v{n}") for n in range(count)
    ]


def _model(changes: list[dict[str, Any]], until: dt.datetime) -> dict[str, str | None]:
    state: dict[str, str | None] = {}
    for c in changes:
        if dt.datetime.fromisoformat(c["time"]) <= until:
            state[c["Keys"]["k"]["S"]] = None if c["event"] == "REMOVE" else c["NewImage"]["v"]["S"]
    return {k: v for k, v in state.items() if v is not None}


def test_every_key_lands_in_one_partition_and_the_buffers_stay_within_their_bound(tmp_path: Path) -> None:
    changes = _history(6000, 700)
    store = DirStore(tmp_path / "out")
    limit = 32 * 1024
    index = split.partition(
        None, store, _files(tmp_path, changes, 500), T0 + dt.timedelta(days=1), partitions=7, buffer_bytes=limit
    )
    assert index["changes"] == 6000 and index["partitions"] == 7
    assert index["bufferPeakBytes"] <= limit + max(len(json.dumps(c)) for c in changes) + 1
    assert sum(index["chunks"]) > 7  # the buffers were written out many times, not held
    seen: dict[str, int] = {}
    for number in range(7):
        for chunk in range(index["chunks"][number]):
            for line in gzip.decompress(store.get(split.chunk_name(number, chunk)) or b"").splitlines():
                key = json.loads(line)["Keys"]["k"]["S"]
                assert seen.setdefault(key, number) == number
    assert len(seen) == 700


def test_the_fold_takes_the_highest_sequence_number_as_an_integer_at_or_before_the_moment(tmp_path: Path) -> None:
    changes = [
        _change(LONG_SEQ, 5, "a", "newer"),  # 29 digits: later, though its string sorts first
        _change(SHORT_SEQ, 4, "a", "older"),
        _change(LONG_SEQ + 1, 20, "a", "after the moment"),
        _change(7, 3, "b", "kept"),
        _change(7, 3, "b", "kept"),  # delivered twice
        _change(8, 21, "b", None),  # a delete after the moment
    ]
    store = DirStore(tmp_path / "out")
    split.partition(None, store, _files(tmp_path, changes, 2), T0 + dt.timedelta(seconds=10), partitions=3)
    final = {
        json.loads(line)["Keys"]["k"]["S"]: json.loads(line) for _, lines in each_partition(store) for line in lines
    }
    assert {k: c["NewImage"]["v"]["S"] for k, c in final.items()} == {"a": "newer", "b": "kept"}


def test_a_paused_split_resumes_where_it_stopped_and_gives_the_same_partitions(tmp_path: Path) -> None:
    changes = _history(12000, 900)
    files = _files(tmp_path, changes, 5500)
    until = T0 + dt.timedelta(seconds=9000)
    whole = DirStore(tmp_path / "whole")
    split.partition(None, whole, files, until, partitions=5, buffer_bytes=16 * 1024)
    paused, ticks, pauses = DirStore(tmp_path / "paused"), iter(range(10**6)), 0
    while True:
        try:
            split.partition(None, paused, files, until, partitions=5, budget=0.5, clock=lambda: float(next(ticks)))
            break
        except ChangesPending:
            pauses += 1
    assert pauses >= 3  # paused inside files (every CHECK_EVERY lines) and between them
    for number in range(5):
        index_whole, index_paused = (json.loads(s.get(split.INDEX) or b"") for s in (whole, paused))
        assert folded(whole, index_whole, number) == folded(paused, index_paused, number)
    assert json.loads(paused.get(split.INDEX) or b"")["changes"] == sum(
        dt.datetime.fromisoformat(c["time"]) <= until for c in changes
    )


def test_a_change_file_that_differs_from_its_sha256_fails_before_an_index_is_written(tmp_path: Path) -> None:
    [good] = _files(tmp_path, _history(50, 10), 50)
    store = DirStore(tmp_path / "out")
    with pytest.raises(IntegrityError, match="sha256 differs"):
        split.partition(None, store, [ChangeFile(good.location, "0" * 64)], T0 + dt.timedelta(days=1), partitions=2)
    assert store.get(split.INDEX) is None


def test_applying_resumes_at_its_position_and_resends_unprocessed_items(tmp_path: Path) -> None:
    changes = _history(400, 120)
    until = T0 + dt.timedelta(seconds=300)
    store = DirStore(tmp_path / "out")
    split.partition(None, store, _files(tmp_path, changes, 100), until, partitions=1)
    [(_, lines)] = list(each_partition(store))
    ddb, done, calls = FakeDynamoDB(unprocessed=5), {}, 0
    while not done.get("finished"):
        done = apply_partition(ddb, "T", lines, done, budget=0.0, sleep=lambda s: None)  # one batch a call
        calls += 1
    assert calls == -(-len(lines) // 25) and done["retries"] == 5 and done["applied"] == len(lines)
    assert {k: v["v"]["S"] for k, v in ddb.items.items()} == _model(changes, until)


def test_applying_keeps_to_the_write_rate(tmp_path: Path) -> None:
    store = DirStore(tmp_path / "out")
    split.partition(None, store, _files(tmp_path, _history(200, 200), 200), T0 + dt.timedelta(days=1), partitions=1)
    [(_, lines)] = list(each_partition(store))
    now = [0.0]
    apply_partition(
        FakeDynamoDB(),
        "T",
        lines,
        {},
        write_rate=20.0,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert now[0] >= (len(lines) - 25) / 20.0 - 1.0  # one unit a write at 20 a second (a second of burst)


def test_the_local_loop_applies_only_what_the_predicate_keeps(tmp_path: Path) -> None:
    changes = _history(3000, 300)
    until = T0 + dt.timedelta(seconds=2000)
    ddb = FakeDynamoDB()
    done = apply_changes(
        ddb,
        None,
        _files(tmp_path, changes, 700),
        until,
        "T",
        keep=lambda c: c["Keys"]["k"]["S"] < "k2",
        partition_bytes=4096,
    )
    assert done["partitions"] > 3
    expected = {k: v for k, v in _model(changes, until).items() if k < "k2"}
    assert {k: v["v"]["S"] for k, v in ddb.items.items()} == expected


def test_each_child_gets_its_share_of_the_table_rate_and_the_items_stay_small(tmp_path: Path) -> None:
    s3 = FakeS3()
    directory = "p/T/20261201T100000Z-0123abcd/"
    entry = archive.put_changes(s3, "b", f"{directory}changes/000000.jsonl.gz", _history(2000, 400))
    entry["key"] = entry["key"][len(directory) :]
    put_json(
        s3,
        "b",
        f"{directory}manifest.json",
        {"backupId": "x", "consistentAt": (T0 + dt.timedelta(days=1)).isoformat(), "changes": [entry]},
    )
    exact = {"source": f"s3://b/{directory}", "consistentAt": (T0 + dt.timedelta(days=1)).isoformat()}
    put_json(s3, "b", "r/plan.json", {"tables": [{"exact": exact, "index": 0, "target": "T2", "writeRate": 100}]})
    run = partition_run(s3, "b", "r/", concurrency=4, partition_bytes=entry["bytes"] // 10)
    items = json.loads(s3.objects[("b", run["itemsKey"])])
    assert run["partitions"] == len(items) >= 10
    assert {i["writeRate"] for i in items} == {25.0}  # 100 units a second over the 4 children at once
    assert len(json.dumps(items)) / len(items) < 100  # the state carries the key, never the items


def test_finalize_counts_the_changes_only_when_every_partition_says_it_finished(tmp_path: Path) -> None:
    s3, ddb = FakeS3(), FakeDynamoDB()
    directory = "p/T/20261201T100000Z-0123abcd/"
    entry = archive.put_changes(s3, "b", f"{directory}changes/000000.jsonl.gz", _history(500, 100))
    entry["key"] = entry["key"][len(directory) :]
    moment = (T0 + dt.timedelta(days=1)).isoformat()
    put_json(s3, "b", f"{directory}manifest.json", {"backupId": "x", "consistentAt": moment, "changes": [entry]})
    table = {"exact": {"source": f"s3://b/{directory}", "consistentAt": moment}, "index": 0, "target": "T2"}
    put_json(s3, "b", "r/plan.json", {"tables": [table]})
    assert "were not partitioned" in changes_outcome(s3, "b", "r/", table)[1][0]
    run = partition_run(s3, "b", "r/", concurrency=2, partition_bytes=entry["bytes"] // 4)
    items = json.loads(s3.objects[("b", run["itemsKey"])])
    for item in items[:-1]:  # the last child never ran (or failed)
        apply_task(ddb, s3, "b", "r/", item)
    row, problems = changes_outcome(s3, "b", "r/", table)
    assert not row and problems == [
        f"table T2: 1 of {len(items)} partitions of its changes did not finish ({len(items) - 1}; "
        "see s3://b/r/changes/0/done/)"
    ]
    apply_task(ddb, s3, "b", "r/", items[-1])
    row, problems = changes_outcome(s3, "b", "r/", table)
    assert not problems and row["changesApplied"] == len(ddb.items) + row["deletes"] and row["until"] == moment


def test_finalize_quotes_what_failed_a_split_or_a_child(tmp_path: Path) -> None:
    s3 = FakeS3()
    directory = "p/T/20261201T100000Z-0123abcd/"
    entry = archive.put_changes(s3, "b", f"{directory}changes/000000.jsonl.gz", _history(100, 30))
    entry["key"] = entry["key"][len(directory) :]
    moment = (T0 + dt.timedelta(days=1)).isoformat()
    manifest = {"backupId": "x", "consistentAt": moment, "changes": [{**entry, "sha256": "0" * 64}]}
    put_json(s3, "b", f"{directory}manifest.json", manifest)
    table = {"exact": {"source": f"s3://b/{directory}", "consistentAt": moment}, "index": 0, "target": "T2"}
    put_json(s3, "b", "r/plan.json", {"tables": [table]})
    with pytest.raises(IntegrityError):
        partition_run(s3, "b", "r/", concurrency=2)
    [problem] = changes_outcome(s3, "b", "r/", table)[1]
    assert problem.startswith("table T2: its changes were not partitioned: IntegrityError: s3://b/p/T/")
    manifest["changes"] = [entry]
    put_json(s3, "b", f"{directory}manifest.json", manifest)
    s3.objects.pop(("b", "r/changes/0/files.json"))  # the listing kept the bad sha256
    [item] = json.loads(s3.objects[("b", partition_run(s3, "b", "r/", concurrency=2)["itemsKey"])])

    class Refusing(FakeDynamoDB):
        def batch_write_item(self, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
            raise RuntimeError("table T2 is not ACTIVE")

    with pytest.raises(RuntimeError):
        apply_task(Refusing(), s3, "b", "r/", item)
    [problem] = changes_outcome(s3, "b", "r/", table)[1]
    assert problem.endswith("did not finish (0; see s3://b/r/changes/0/done/): RuntimeError: table T2 is not ACTIVE")
