"""Following a stream into the archive (ddb_backup.changes.follow): coverage claimed only where changes are held."""

from __future__ import annotations

import datetime as dt

from ddb_backup.changes import archive
from ddb_backup.changes.follow import follow
from ddb_backup.changes.stream import TIP_PAGES
from ddb_backup.names import utc_time
from tests.helpers.aws import T0, FakeDynamoDB, FakeS3, FakeStreams, Shard, record

B, PREFIX, DIR = "bkt", "p/", "p/T/"
NOW = T0 + dt.timedelta(hours=6)
IMAGES = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def _follow(streams: FakeStreams, s3: FakeS3) -> dict[str, object]:
    return follow(FakeDynamoDB(stream=IMAGES), streams, s3, B, PREFIX, "T", until_idle=0, clock=lambda: NOW)


def test_coverage_of_a_stream_created_days_ago_begins_at_its_retention_not_its_creation() -> None:
    # Changes older than 24 h are trimmed: an archive begun today cannot claim them.
    s3 = FakeS3()
    _follow(FakeStreams([Shard("shardId-1", start=1)], created=NOW - dt.timedelta(days=3)), s3)
    covered_from = utc_time((archive.archive_info(s3, B, DIR) or {})["coveredFrom"])
    assert NOW - archive.RETENTION < covered_from <= NOW


def test_coverage_of_a_stream_created_an_hour_ago_begins_at_its_creation() -> None:
    s3 = FakeS3()
    _follow(FakeStreams([Shard("shardId-1", start=1)], created=NOW - dt.timedelta(hours=1)), s3)
    assert utc_time((archive.archive_info(s3, B, DIR) or {})["coveredFrom"]) == NOW - dt.timedelta(hours=1)


def _split_stream() -> FakeStreams:
    """A closed parent shard with two changes, and its open child."""
    parent = [record(100000000000000000001, T0, "a", "1"), record(100000000000000000002, T0, "a", "2")]
    child = [record(900000000000000000001, T0 + dt.timedelta(hours=1), "a", "3")]
    return FakeStreams(
        [
            Shard("shardId-parent", start=100000000000000000001, records=parent, closed=True),
            Shard("shardId-child", start=900000000000000000001, records=child, parent="shardId-parent"),
        ]
    )


def test_a_closed_shard_archived_to_its_end_leaves_the_stream_without_a_gap() -> None:
    s3, streams = FakeS3(), _split_stream()
    assert _follow(streams, s3)["changes"] == 3
    streams.shards.pop(0)  # the parent ages out of the stream (24 h retention)
    assert _follow(streams, s3)["gaps"] == 0
    assert archive.gaps(s3, B, DIR) == []


def test_an_open_shard_that_leaves_the_stream_before_it_was_archived_to_its_end_is_a_gap() -> None:
    s3, streams = FakeS3(), _split_stream()
    _follow(streams, s3)
    streams.shards.pop(1)
    assert _follow(streams, s3)["gaps"] == 1
    assert [g["shard"] for g in archive.gaps(s3, B, DIR)] == ["shardId-child"]


def test_coverage_is_claimed_only_after_the_records_behind_empty_pages_are_archived() -> None:
    s3 = FakeS3()
    streams = _split_stream()
    streams.empty = TIP_PAGES - 1
    assert _follow(streams, s3)["changes"] == 3
    child = archive.shard_state(s3, B, DIR, "shardId-child") or {}
    assert child["seq"] == "900000000000000000001"
    assert utc_time(child["coveredUntil"]) <= NOW
