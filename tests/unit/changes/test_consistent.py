"""Exact backups' changes (ddb_backup.changes.consistent): every change from the scan's start, stamped in whole seconds."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from ddb_backup.changes import consistent
from ddb_backup.changes.consistent import Position, backup_changes, moment, note_position
from ddb_backup.changes.gather import Limits, gather
from ddb_backup.changes.stream import TIP_PAGES, Change
from ddb_backup.names import utc_time
from tests.helpers.aws import FakeDynamoDB, FakeS3, FakeStreams, Shard, record

_STREAM = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def capture(streams: FakeStreams, position: Position, **_: Any) -> tuple[list[Change], dt.datetime]:
    """Gather an exact backup's changes into a fake bucket; the changes and ``consistentAt``."""
    s3 = FakeS3()
    fields = gather(s3, streams, "bkt", "p/T/id/", position, Limits(settle=0, sleep=lambda _: None))
    assert fields is not None
    return backup_changes(s3, "bkt", "p/T/id/", fields), utc_time(fields["consistentAt"])


def _started() -> dt.datetime:
    """A scan's start, a few seconds ago, half-way through a second."""
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).replace(microsecond=500_000)


def test_a_change_made_just_after_the_scan_began_is_kept_though_its_stamp_is_the_whole_second_before() -> None:
    started = _started()
    # AWS stamps stream records in whole seconds: a write 0.2 s after the start reads as 0.5 s before it.
    just_after = record(300000000000000000001, started + dt.timedelta(seconds=0.2), "a", "v")
    streams = FakeStreams([Shard("shardId-1", start=300000000000000000001, records=[just_after])])
    position = Position("T", "arn", frozenset({"shardId-1"}), started)
    s3 = FakeS3()
    fields = gather(s3, streams, "bkt", "p/T/id/", position, Limits(settle=0, sleep=lambda _: None))
    assert fields is not None
    changes, consistent_at = backup_changes(s3, "bkt", "p/T/id/", fields), utc_time(fields["consistentAt"])
    assert [c["seq"] for c in changes] == ["300000000000000000001"]
    assert utc_time(changes[0]["time"]) < started <= consistent_at
    # The manifest says where its changes begin: at or before every change it holds.
    assert utc_time(fields["changesFrom"]) <= utc_time(changes[0]["time"])


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
    consistent_at = moment(streams, Position("T", "arn", frozenset({"shardId-1"}), started))
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
