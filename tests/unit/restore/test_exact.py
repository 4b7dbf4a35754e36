"""The restore machine's exact restores (ddb_backup.restore.exact): changes applied up to the time, none after it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ddb_backup.aws.s3io import get_json, put_json
from ddb_backup.changes import archive
from ddb_backup.changes.stream import change_of
from ddb_backup.errors import BadInput, ChangesPending
from ddb_backup.restore.exact import apply_changes, note, resolve_to_time
from tests.helpers.aws import T0, FakeDynamoDB, FakeS3, FakeStreams, record

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


def _restore(to_time: str) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Restore the exact backup to ``to_time`` into a fresh table: its items' values by key, and the counts."""
    s3, ddb = FakeS3(), FakeDynamoDB()
    _exact_backup_and_archive(s3)
    exact = {"source": f"s3://{B}/{DIR}{BACKUP}/", "consistentAt": T0.isoformat(), "toTime": to_time, "tableDir": DIR}
    done = apply_changes(ddb, s3, B, "runs/r/", {"exact": exact, "index": 0, "target": "T2"}, budget=60.0)
    return {k: item["v"]["S"] for k, item in ddb.items.items()}, done


def test_a_restore_to_a_time_inside_a_change_file_applies_none_of_its_later_changes() -> None:
    to_time = (T0 + dt.timedelta(seconds=120)).isoformat()
    items, done = _restore(to_time)
    assert items == {"a": "backup", "b": "before"}
    assert done is not None and done["changes"] == 2 and done["until"] == to_time


def test_a_change_exactly_at_the_time_that_starts_a_change_file_is_applied() -> None:
    items, _ = _restore((T0 + dt.timedelta(seconds=60)).isoformat())  # the spanning file's first change
    assert items == {"a": "backup", "b": "before"}


def test_a_time_given_with_a_negative_offset_reaches_the_change_files_of_that_utc_moment() -> None:
    eastern = dt.timezone(-dt.timedelta(hours=5))
    items, _ = _restore((T0 + dt.timedelta(seconds=120)).astimezone(eastern).isoformat())  # 05:02:00-05:00
    assert items == {"a": "backup", "b": "before"}


def _backup_with_changes(s3: FakeS3, keys: int, removed: int = 0) -> dict[str, Any]:
    """An exact backup consistent at T0 whose own change file puts ``keys`` keys (the first ``removed`` then
    removed), then holds one change a second past T0 (a file read past the moment: not applied)."""
    directory = f"{DIR}{BACKUP}/"
    changes = [_change(n + 1, -2, f"k{n:05d}", "v") for n in range(keys)]
    changes += [_change(keys + n + 1, -1, f"k{n:05d}", None) for n in range(removed)]
    changes.append(_change(keys + removed + 1, 1, "late", "after"))
    entry = archive.put_changes(s3, B, f"{directory}changes/000000.jsonl.gz", changes)
    entry["key"] = entry["key"][len(directory) :]
    manifest = {"backupId": BACKUP, "consistentAt": T0.isoformat(), "changesFrom": T0.isoformat(), "changes": [entry]}
    put_json(s3, B, f"{directory}manifest.json", manifest)
    return {"exact": {"source": f"s3://{B}/{directory}", "consistentAt": T0.isoformat()}, "index": 3, "target": "T2"}


class _Ticks:
    """A clock that moves one second at each reading (from 100: a monotonic clock's zero is arbitrary)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now - 1.0


def test_a_table_planned_without_changes_applies_none() -> None:
    assert apply_changes(FakeDynamoDB(), FakeS3(), B, "runs/r/", {"index": 0, "target": "T2"}, budget=60.0) is None
    assert note("s3://b/p/", None, None) is None
    assert note("s3://b/p/", "t0", {"toTime": "t1"}) == {"source": "s3://b/p/", "consistentAt": "t0", "toTime": "t1"}
    assert note("s3://b/p/", "t0", None) == {"source": "s3://b/p/", "consistentAt": "t0"}


class _Tables(FakeDynamoDB):
    """Also the table each write names."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: set[str] = set()

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        self.tables.update(RequestItems)
        return super().batch_write_item(RequestItems)


def test_changes_outlasting_the_budget_save_their_position_and_the_next_try_resumes_there() -> None:
    s3, ddb = FakeS3(), _Tables()
    table = _backup_with_changes(s3, 60, removed=1)
    with pytest.raises(ChangesPending, match=r"^table T2: 50 of 60 changes applied; resuming in the next try$"):
        apply_changes(ddb, s3, B, "runs/r/", table, budget=2.0, clock=_Ticks())  # 2 s: two batches of 25
    assert get_json(s3, B, "runs/r/changes/3.json") == {"applied": 50, "puts": 49, "deletes": 1}
    assert ddb.calls == [25, 25]
    done = apply_changes(ddb, s3, B, "runs/r/", table, budget=2.0, clock=_Ticks())
    assert ddb.calls == [25, 25, 10]  # the last ten only
    expected = {"applied": 60, "puts": 59, "deletes": 1, "finished": True, "changes": 60, "until": T0.isoformat()}
    assert done == expected and get_json(s3, B, "runs/r/changes/3.json") == expected
    assert sorted(ddb.items) == [f"k{n:05d}" for n in range(1, 60)] and ddb.tables == {"T2"}
    del s3.objects[(B, f"{DIR}{BACKUP}/manifest.json")]  # a finished table's changes are not read again
    assert apply_changes(ddb, s3, B, "runs/r/", table, budget=2.0, clock=_Ticks()) == expected
    assert ddb.calls == [25, 25, 10]  # finished: a retry writes nothing again


def test_changes_finishing_inside_the_budget_are_applied_in_one_try() -> None:
    s3, ddb = FakeS3(), FakeDynamoDB()
    done = apply_changes(ddb, s3, B, "runs/r/", _backup_with_changes(s3, 60), budget=3.0, clock=_Ticks())
    assert done is not None and done["applied"] == 60 and done["finished"] and ddb.calls == [25, 25, 10]


class _KilledAfter(FakeDynamoDB):
    """Lambda's timeout, as the table sees it: the write after ``calls`` writes never happens."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.left = calls

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        if not self.left:
            raise TimeoutError("killed")
        self.left -= 1
        return super().batch_write_item(RequestItems)


def test_an_invocation_killed_between_saves_resumes_from_the_last_saved_batch() -> None:
    s3 = FakeS3()
    table = _backup_with_changes(s3, 201 * 25 + 5)
    with pytest.raises(TimeoutError):
        apply_changes(_KilledAfter(150), s3, B, "runs/r/", table, budget=1e9)
    assert (B, "runs/r/changes/3.json") not in s3.objects  # the position is saved every 200 batches, not sooner
    with pytest.raises(TimeoutError):
        apply_changes(_KilledAfter(201), s3, B, "runs/r/", table, budget=1e9)
    assert get_json(s3, B, "runs/r/changes/3.json") == {"applied": 5000, "puts": 5000, "deletes": 0}  # every 200
    ddb = FakeDynamoDB()
    done = apply_changes(ddb, s3, B, "runs/r/", table, budget=1e9)
    assert done is not None and done["applied"] == 201 * 25 + 5 and ddb.calls == [25, 5]


def _planned(s3: FakeS3) -> None:
    _exact_backup_and_archive(s3)
    put_json(s3, B, f"{DIR}20261201T090000Z-00000000/manifest.json", {"backupId": "x"})  # older, not exact


@pytest.mark.parametrize("source", [f"s3://{B}/{DIR}", f"s3://{B}/{DIR[:-1]}"], ids=["dir/", "dir"])
def test_a_restore_to_a_time_is_pointed_at_the_newest_exact_backup_at_or_before_it(source: str) -> None:
    s3 = FakeS3()
    _planned(s3)
    request = {"table": "T", "toTime": T0.isoformat(), "target": "T2"}
    resolved, noted = resolve_to_time(s3, FakeStreams([]), source, request)
    assert resolved == {**request, "source": f"s3://{B}/{DIR}{BACKUP}/"}
    assert noted == {"toTime": T0.isoformat(), "tableDir": DIR}


def test_a_restore_to_a_time_the_archive_reaches_is_planned_from_the_exact_backup_before_it() -> None:
    s3 = FakeS3()
    _planned(s3)
    when = (T0 + dt.timedelta(seconds=120)).isoformat()
    resolved, noted = resolve_to_time(s3, FakeStreams([]), f"s3://{B}/{DIR}", {"table": "T", "toTime": when})
    assert resolved["source"] == f"s3://{B}/{DIR}{BACKUP}/" and noted == {"toTime": when, "tableDir": DIR}
    s3.objects = {k: v for k, v in s3.objects.items() if not k[1].startswith(f"{DIR}changes/")}  # no archive
    with pytest.raises(BadInput, match=rf"^s3://{B}/{DIR}changes/: the change archive does not exist, after"):
        resolve_to_time(s3, FakeStreams([]), f"s3://{B}/{DIR}", {"table": "T", "toTime": when})


@pytest.mark.parametrize(
    "request_",
    [
        {"toTime": "2026-12-01T10:00:00Z"},
        {"table": "", "toTime": "2026-12-01T10:00:00Z"},
        {"table": "T", "map": {"T": "U"}, "toTime": "2026-12-01T10:00:00Z"},
        {"table": "T", "backupId": BACKUP, "toTime": "2026-12-01T10:00:00Z"},
    ],
    ids=["no table", "empty table", "a map", "a backup id"],
)
def test_a_restore_to_a_time_of_anything_but_one_table_is_refused_saying_what_to_give(request_: dict[str, Any]) -> None:
    with pytest.raises(BadInput, match=r"^'toTime' restores one table: give 'source' \(the table's backups"):
        resolve_to_time(FakeS3(), FakeStreams([]), f"s3://{B}/{DIR}", request_)


def test_a_restore_to_a_time_planned_without_a_streams_client_is_refused() -> None:
    with pytest.raises(
        BadInput, match=r"^a restore to a time reads the table's stream: plan it with a streams client$"
    ):
        resolve_to_time(FakeS3(), None, f"s3://{B}/{DIR}", {"table": "T", "toTime": T0.isoformat()})
