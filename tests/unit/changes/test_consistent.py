"""Exact backups' changes (ddb_backup.changes.consistent): every change from the scan's start, stamped in whole seconds."""

from __future__ import annotations

import datetime as dt

from ddb_backup.changes.consistent import Position, capture, store
from ddb_backup.changes.replay import at
from tests.helpers.aws import FakeS3, FakeStreams, Shard, record


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
