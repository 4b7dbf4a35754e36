"""Exact backups' changes (ddb_backup.changes.consistent): every change from the scan's start, stamped in whole seconds."""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import json
import time
from pathlib import Path

import pytest

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive, consistent
from ddb_backup.changes.consistent import Position, capture, note_position, store
from ddb_backup.changes.replay import at
from ddb_backup.changes.stream import TIP_PAGES, change_of
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError
from tests.helpers.aws import FakeDynamoDB, FakeS3, FakeStreams, Shard, record

_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _started() -> dt.datetime:
    """A scan's start, a few seconds ago, half-way through a second."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).replace(microsecond=500_000)


def test_a_change_made_just_after_the_scan_began_is_kept_though_its_stamp_is_the_whole_second_before() -> None:
    started = _started()
    # AWS stamps stream records in whole seconds: a write 0.2 s after the start reads as 0.5 s before it.
    just_after = record(300000000000000000001, started + dt.timedelta(seconds=0.2), "a", "v")
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001, records=[just_after])])
    position = Position("T", "arn", frozenset({"shardId-1"}), started)
    changes, consistent_at = capture(streams, position, settle=0, sleep=lambda _: None)
    assert [c["seq"] for c in changes] == ["300000000000000000001"]
    assert at(changes[0]["time"]) < started <= consistent_at
    # The manifest says where its changes begin: at or before every change it holds.
    fields = store(FakeS3(), "bkt", "p/T/id/", changes, position, consistent_at)
    assert at(fields["changesFrom"]) <= at(changes[0]["time"])


def test_changes_behind_empty_pages_are_captured() -> None:
    started = _started()
    records = [record(300000000000000000001 + n, started + dt.timedelta(seconds=n), f"k{n}", "v") for n in range(3)]
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001, records=records)], empty=TIP_PAGES - 1)
    position = Position("T", "arn", frozenset({"shardId-1"}), started)
    changes, _ = capture(streams, position, settle=0, sleep=lambda _: None)
    assert [c["Keys"]["k"]["S"] for c in changes] == ["k0", "k1", "k2"]


class _SkewedClock(dt.datetime):
    """This machine's clock, 5 s ahead of DynamoDB's."""

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> _SkewedClock:  # type: ignore[override]
        return super().now(tz) + dt.timedelta(seconds=5)


def test_the_moment_comes_from_dynamodbs_clock_not_this_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client clock 5 s ahead made backups equal to the table at no moment (issue 23 point 4)."""
    monkeypatch.setattr(consistent.dt, "datetime", _SkewedClock)
    started = _started()
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001)])
    before = dt.datetime.fromtimestamp(time.time(), dt.UTC).replace(microsecond=0)
    position = note_position(FakeDynamoDB(stream=_STREAM), streams, "T")
    _, consistent_at = capture(streams, Position("T", "arn", frozenset({"shardId-1"}), started), settle=0)
    after = dt.datetime.fromtimestamp(time.time(), dt.UTC)
    assert before <= position.started <= after  # DynamoDB's second, not the skewed one
    assert consistent_at.microsecond == 999999 and before <= consistent_at <= after + dt.timedelta(seconds=1)


def test_a_shard_closed_before_the_scan_may_leave_the_stream_during_it() -> None:
    """Only the shards open at the scan's start must still be there at its end (issue 23 point 8): a shard
    that had closed before is trimmed without loss, and failed the backup."""
    started = _started()
    closed = Shard("shardId-old", start=300000000000000000001, closed=True)
    child = Shard("shardId-new", start=300000000000000000005, parent="shardId-old")
    child.records.append(record(300000000000000000005, started + dt.timedelta(seconds=1), "k", "v"))
    streams = FakeStreams([closed, child])
    position = note_position(FakeDynamoDB(stream=_STREAM), streams, "T")
    assert position.shards == {"shardId-new"}
    streams.shards.remove(closed)  # trimmed 24 h after it closed
    changes, _ = capture(streams, Position("T", "arn", position.shards, started), settle=0)
    assert [c["Keys"]["k"]["S"] for c in changes] == ["k"]


B, DIR = "bkt", "p/T/20261201T100000Z-0123abcd/"
T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def _exact(s3: FakeS3) -> tuple[dict, list[dict]]:
    """An exact backup stored at DIR, consistent at T0: two changes of key a (the last a removal) and one of b."""
    changes = [
        change_of(record(11, T0 - dt.timedelta(seconds=2), "a", "v1"), "shardId-1"),
        change_of(record(12, T0 - dt.timedelta(seconds=1), "b", "v2"), "shardId-1"),
        change_of(record(13, T0, "a", None), "shardId-1"),
        change_of(record(14, T0 + dt.timedelta(seconds=1), "c", "late"), "shardId-1"),
    ]
    position = Position("T", "arn", frozenset({"shardId-1"}), T0 - dt.timedelta(seconds=3, microseconds=500000))
    manifest = {"backupId": "x", **store(s3, B, DIR, changes, position, T0)}
    put_json(s3, B, f"{DIR}manifest.json", manifest)
    return manifest, changes


def test_stored_changes_are_listed_in_the_manifest_from_a_second_before_the_scan() -> None:
    s3 = FakeS3()
    manifest, changes = _exact(s3)
    assert manifest["consistentAt"] == T0.isoformat() and manifest["changesFrom"] == "2026-12-01T09:59:55.500000+00:00"
    ((entry,),) = [manifest["changes"]]
    assert entry["key"] == "changes/000000.jsonl.gz" and entry["records"] == 4
    assert consistent.backup_changes(s3, B, DIR, manifest) == changes
    assert consistent.stored_changes(s3, f"s3://{B}/{DIR[:-1]}") == (T0.isoformat(), changes)


def test_an_exact_backups_restore_applies_its_changes_to_its_moment_and_only_those_kept() -> None:
    s3, ddb = FakeS3(), FakeDynamoDB()
    _exact(s3)
    ddb.items["a"] = {"k": {"S": "a"}}
    done = consistent.finish_restore(ddb, s3, B, DIR, "T2")
    assert done == {"consistentAt": T0.isoformat(), "changes": 2, "puts": 1, "deletes": 1}
    assert sorted(ddb.items) == ["b"]  # a removed at T0 exactly; c changed after the moment
    ddb = FakeDynamoDB()
    kept = consistent.finish_restore(ddb, s3, B, DIR, "T2", keep=lambda c: c["Keys"]["k"]["S"] == "b")
    assert kept == {"consistentAt": T0.isoformat(), "changes": 1, "puts": 1, "deletes": 0} and sorted(ddb.items) == [
        "b"
    ]


def test_a_backup_that_is_not_exact_has_no_changes_to_apply(tmp_path: Path) -> None:
    s3 = FakeS3()
    put_json(s3, B, f"{DIR}manifest.json", {"backupId": "x"})
    assert consistent.stored_changes(s3, f"s3://{B}/{DIR}") is None
    assert consistent.finish_restore(FakeDynamoDB(), s3, B, DIR, "T2") is None
    (tmp_path / "manifest.json").write_text(json.dumps({"backupId": "x"}))
    assert consistent.finish_restore_local(FakeDynamoDB(), str(tmp_path), "T2") is None


@pytest.mark.parametrize("key", ["data/x.jsonl.gz", "changes/../data/x", None, "changes/a/../../b"])
def test_a_manifest_naming_a_change_file_outside_changes_is_refused_naming_it(key: str | None) -> None:
    s3 = FakeS3()
    manifest, _ = _exact(s3)
    manifest["changes"] = [{"key": key}]
    with pytest.raises(BadInput) as refused:
        consistent.backup_changes(s3, B, DIR, manifest)
    assert str(refused.value) == f"s3://{B}/{DIR}manifest.json: change file {key!r} is not under changes/"
    manifest["changes"] = ["changes/000000.jsonl.gz"]  # not an entry
    with pytest.raises(BadInput, match=r"change file None is not under changes/$"):
        consistent.backup_changes(s3, B, DIR, manifest)


def _copied(s3: FakeS3, into: Path) -> None:
    for (_, key), body in s3.objects.items():
        (into / key[len(DIR) :]).parent.mkdir(parents=True, exist_ok=True)
        (into / key[len(DIR) :]).write_bytes(body)


def test_a_local_copy_of_an_exact_backup_restores_with_its_changes_each_checked(tmp_path: Path) -> None:
    s3, ddb = FakeS3(), FakeDynamoDB()
    _, changes = _exact(s3)
    _copied(s3, tmp_path)
    assert consistent.stored_changes(None, str(tmp_path)) == (T0.isoformat(), changes)
    assert consistent.finish_restore_local(ddb, str(tmp_path), "T2") == {
        "consistentAt": T0.isoformat(), "changes": 2, "puts": 1, "deletes": 1
    }  # fmt: skip
    path = tmp_path / "changes" / "000000.jsonl.gz"
    path.write_bytes(path.read_bytes() + b"\n")
    with pytest.raises(IntegrityError, match=rf"^{path}: sha256 differs from the manifest's$"):
        consistent.stored_changes(None, str(tmp_path))
    path.unlink()
    with pytest.raises(IntegrityError) as missing:
        consistent.stored_changes(None, str(tmp_path))
    assert str(missing.value) == (
        f"{path}: missing; this exact backup's changes must be copied with it (aws s3 cp --recursive)"
    )


def test_a_local_change_file_without_a_sha256_is_read_as_it_is(tmp_path: Path) -> None:
    s3 = FakeS3()
    manifest, changes = _exact(s3)
    _copied(s3, tmp_path)
    del manifest["changes"][0]["sha256"]
    assert consistent.local_backup_changes(str(tmp_path), manifest) == changes


def test_the_position_plan_json_records_reads_back_as_it_was() -> None:
    position = Position("T", "arn:s", frozenset({"shardId-2", "shardId-1"}), T0)
    doc = consistent.position_json(position)
    assert doc == {"arn": "arn:s", "shards": ["shardId-1", "shardId-2"], "startedAt": T0.isoformat()}
    assert consistent.position_of("T", doc) == position


def test_shards_open_at_the_scans_start_and_gone_at_its_end_fail_the_backup_naming_them() -> None:
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001)])
    position = Position("T", "arn", frozenset({"shardId-0", "shardId-1", "shardId-00"}), _started())
    with pytest.raises(BackupIncomplete) as failed:
        capture(streams, position, settle=0, sleep=lambda _: None)
    assert str(failed.value) == (
        "table T: stream shards ['shardId-0', 'shardId-00'] were trimmed (24 h retention) during the scan: "
        "the changes since it began are lost; back up again with more segments or workers"
    )


def test_changes_stamped_over_a_second_before_the_scan_are_not_captured_and_settling_is_waited() -> None:
    started = _started()  # x.5 s: the margin reaches back to (x-1).5 s
    stamps = [started - dt.timedelta(seconds=1.5), started - dt.timedelta(seconds=0.5), started]
    records = [record(300000000000000000001 + n, when, f"k{n}", "v") for n, when in enumerate(stamps)]
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001, records=records)])
    slept: list[float] = []
    changes, _ = capture(
        streams, Position("T", "arn", frozenset({"shardId-1"}), started), settle=2.5, sleep=slept.append
    )
    assert [c["Keys"]["k"]["S"] for c in changes] == ["k1", "k2"] and slept == [2.5]


class _Frozen(FakeStreams):
    """DynamoDB's clock stopped at ``now`` (the Date header never moves)."""

    def __init__(self, shards: list[Shard], now: dt.datetime) -> None:
        super().__init__(shards)
        self.now = now

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "", **kw: object) -> dict:
        answer = super().describe_stream(StreamArn, ExclusiveStartShardId, **kw)
        answer["ResponseMetadata"]["HTTPHeaders"]["date"] = email.utils.format_datetime(self.now, usegmt=True)
        return answer


def test_a_clock_that_never_passes_the_moment_fails_the_backup_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(consistent.time, "sleep", slept.append)
    streams = _Frozen([Shard("shardId-1", start=300000000000000000001)], T0)
    with pytest.raises(BackupIncomplete) as failed:
        capture(streams, Position("T", "arn", frozenset({"shardId-1"}), T0), settle=0, sleep=lambda _: None)
    moment = T0 + dt.timedelta(seconds=1) - dt.timedelta(microseconds=1)
    assert str(failed.value) == f"table T: DynamoDB's clock (the Date header) did not pass {moment}"
    assert slept == [0.05] * 60  # about three seconds of DynamoDB's clock, asked 61 times
    assert streams.describes == 61


def test_the_position_names_the_table_its_stream_and_dynamodbs_second() -> None:
    streams = _Frozen([Shard("shardId-1", start=300000000000000000001)], T0)
    position = note_position(FakeDynamoDB(stream=_STREAM), streams, "T")
    assert position == Position("T", "arn:aws:dynamodb:us-east-1:1:table/T/stream/2026-12-01T00:00:00.000",
                                frozenset({"shardId-1"}), T0)  # fmt: skip


def test_a_change_stamped_exactly_a_second_before_a_whole_second_start_is_captured_and_settling_defaults_to_two_s() -> (
    None
):
    started = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=5)  # DynamoDB's whole second
    stamps = [started - dt.timedelta(seconds=2), started - dt.timedelta(seconds=1)]
    records = [record(300000000000000000001 + n, when, f"k{n}", "v") for n, when in enumerate(stamps)]
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001, records=records)])
    slept: list[float] = []
    changes, _ = capture(streams, Position("T", "arn", frozenset({"shardId-1"}), started), sleep=slept.append)
    assert [c["Keys"]["k"]["S"] for c in changes] == ["k1"] and slept == [2.0]


def test_each_shard_is_read_only_to_its_first_page_past_the_moment() -> None:
    started = _started()
    later = [
        record(300000000000000000001 + n, started + dt.timedelta(hours=1, seconds=n), f"k{n}", "v") for n in range(9)
    ]
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001, records=later)])
    changes, _ = capture(streams, Position("T", "arn", frozenset({"shardId-1"}), started), settle=0)
    assert changes == [] and streams.get_records_calls == 1  # two records a page: the first is past it


def test_a_stored_change_file_changed_since_the_backup_is_refused() -> None:
    s3 = FakeS3()
    manifest, _ = _exact(s3)
    key = (B, f"{DIR}changes/000000.jsonl.gz")
    s3.objects[key] = archive.encode([change_of(record(11, T0, "a", "forged"), "shardId-1")])
    with pytest.raises(IntegrityError, match=r"changes/000000.jsonl.gz: sha256 differs from the manifest's$"):
        consistent.backup_changes(s3, B, DIR, manifest)


def test_a_local_manifest_naming_a_file_outside_changes_is_refused_naming_the_directory(tmp_path: Path) -> None:
    s3 = FakeS3()
    manifest, _ = _exact(s3)
    manifest["changes"] = [{"key": "data/x"}]
    where = tmp_path / "copy-X"  # a directory whose name ends in a letter the label must keep
    for given in (f"{where}/", str(where)):
        with pytest.raises(BadInput) as refused:
            consistent.local_backup_changes(given, manifest)
        assert str(refused.value) == f"{where}/manifest.json: change file 'data/x' is not under changes/"


@pytest.mark.parametrize("recorded", ["0" * 64, "f" * 64], ids=["sorts before", "sorts after"])
def test_a_local_change_file_whose_sha256_differs_either_way_is_refused(tmp_path: Path, recorded: str) -> None:
    s3 = FakeS3()
    manifest, _ = _exact(s3)
    _copied(s3, tmp_path)
    manifest["changes"][0]["sha256"] = recorded
    with pytest.raises(IntegrityError, match="sha256 differs"):
        consistent.local_backup_changes(str(tmp_path), manifest)


def test_a_damaged_local_change_file_is_refused_naming_its_path(tmp_path: Path) -> None:
    s3 = FakeS3()
    manifest, _ = _exact(s3)
    del manifest["changes"][0]["sha256"]
    (tmp_path / "changes").mkdir()
    (tmp_path / "changes" / "000000.jsonl.gz").write_bytes(gzip.compress(b"{oops\n"))
    with pytest.raises(BadInput, match=rf"^{tmp_path}/changes/000000.jsonl.gz line 1: not JSON"):
        consistent.local_backup_changes(str(tmp_path), manifest)


def test_a_local_copy_restores_only_the_changes_kept(tmp_path: Path) -> None:
    s3, ddb = FakeS3(), FakeDynamoDB()
    _exact(s3)
    _copied(s3, tmp_path)
    kept = consistent.finish_restore_local(ddb, str(tmp_path), "T2", keep=lambda c: c["Keys"]["k"]["S"] == "b")
    assert kept == {"consistentAt": T0.isoformat(), "changes": 1, "puts": 1, "deletes": 0} and sorted(ddb.items) == [
        "b"
    ]
