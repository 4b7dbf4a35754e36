"""Following a stream into the archive (ddb_backup.changes.follow): coverage claimed only where changes are held."""

from __future__ import annotations

import datetime as dt

from ddb_backup.changes import archive
from ddb_backup.changes import follow as follow_module
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


class _Clock:
    """A clock that moves ``step`` seconds at each reading, from NOW."""

    def __init__(self, step: float) -> None:
        self.now, self.step = NOW, dt.timedelta(seconds=step)

    def __call__(self) -> dt.datetime:
        self.now += self.step
        return self.now - self.step


def test_following_polls_until_the_stream_has_been_idle_that_long_and_counts_what_it_archived() -> None:
    s3, slept = FakeS3(), []
    clock = _Clock(1.0)
    totals = follow(FakeDynamoDB(stream=IMAGES), _split_stream(), s3, B, PREFIX, "T", until_idle=3, poll=0.5,
                    lag=7, clock=clock, sleep=slept.append)  # fmt: skip
    assert totals == {"table": "T", "changes": 3, "files": 2, "gaps": 0}
    assert slept == [0.5] and clock.now - NOW < dt.timedelta(seconds=12)
    child = archive.shard_state(s3, B, DIR, "shardId-child") or {}
    covered = utc_time(child["coveredUntil"])  # the tip, claimed `lag` seconds behind the clock
    assert (
        NOW - dt.timedelta(seconds=7) < covered <= NOW
        and (archive.shard_state(s3, B, DIR, "shardId-parent") or {})["closed"]
    )


def test_a_shard_that_left_the_stream_unfinished_is_a_gap_from_where_the_archive_stood_to_now() -> None:
    s3, streams = FakeS3(), _split_stream()
    _follow(streams, s3)
    streams.shards.pop(1)
    _follow(streams, s3)
    (gap,) = archive.gaps(s3, B, DIR)
    child = archive.shard_state(s3, B, DIR, "shardId-child") or {}
    assert gap == {"shard": "shardId-child", "from": child["time"], "to": (NOW - dt.timedelta(seconds=2)).isoformat(),
                   "reason": "shard left the stream (24 h retention) before it was archived to its end"}  # fmt: skip
    assert child["closed"] and child["lost"]
    assert _follow(streams, s3)["gaps"] == 0  # recorded once


def test_a_shard_never_archived_that_left_the_stream_is_a_gap_from_its_last_coverage_or_now() -> None:
    for state, start in (({"coveredUntil": "2026-12-01T12:00:00+00:00"}, "2026-12-01T12:00:00+00:00"), ({}, None)):
        s3, streams = FakeS3(), FakeStreams([])
        archive.save_state(s3, B, DIR, "shardId-gone", **state)
        _follow(streams, s3)
        (gap,) = archive.gaps(s3, B, DIR)
        assert gap["from"] == (start or gap["to"]) and gap["to"] == (NOW - dt.timedelta(seconds=2)).isoformat()


def test_records_trimmed_before_they_were_archived_are_a_gap_up_to_the_first_record_still_held() -> None:
    s3 = FakeS3()
    held = [record(100000000000000000005, T0 + dt.timedelta(hours=2), "a", "5")]
    streams = FakeStreams([Shard("shardId-1", start=100000000000000000001, records=held, closed=True)])
    archive.save_state(s3, B, DIR, "shardId-1", seq="100000000000000000002", time=T0.isoformat())
    totals = _follow(streams, s3)
    assert totals["gaps"] == 1 and totals["changes"] == 1
    assert archive.gaps(s3, B, DIR) == [{"shard": "shardId-1", "from": T0.isoformat(),
        "to": (T0 + dt.timedelta(hours=2)).isoformat(),
        "reason": "records past the 24 h retention were trimmed before they were archived"}]  # fmt: skip


def test_a_trimmed_shard_with_nothing_left_is_a_gap_from_its_coverage_to_now() -> None:
    for state, start in (({"coveredUntil": T0.isoformat()}, T0.isoformat()), ({}, None)):
        s3 = FakeS3()
        streams = FakeStreams([Shard("shardId-1", start=100000000000000000001, closed=True)])
        archive.save_state(s3, B, DIR, "shardId-1", seq="100000000000000000002", **state)
        _follow(streams, s3)
        (gap,) = archive.gaps(s3, B, DIR)
        now = (NOW - dt.timedelta(seconds=2)).isoformat()
        assert (gap["from"], gap["to"]) == (start or now, now)


def test_the_archive_names_its_table_and_stream_and_covers_from_five_minutes_inside_the_retention() -> None:
    s3 = FakeS3()
    _follow(FakeStreams([Shard("shardId-1", start=1)], created=NOW - dt.timedelta(days=3)), s3)
    assert archive.archive_info(s3, B, DIR) == {
        "table": "T",
        "coveredFrom": (NOW - archive.RETENTION + dt.timedelta(minutes=5)).isoformat(),
        "streamArn": "arn:aws:dynamodb:us-east-1:1:table/T/stream/2026-12-01T00:00:00.000",
    }
    assert follow_module._now().tzinfo is dt.UTC


def test_every_change_and_gap_of_one_pass_is_counted() -> None:
    s3 = FakeS3()
    many = [record(100000000000000000001 + n, T0 + dt.timedelta(seconds=n), f"k{n}", "v") for n in range(5)]
    streams = FakeStreams([Shard("shardId-1", start=100000000000000000001, records=many, closed=True)])
    for gone in ("shardId-x", "shardId-y"):
        archive.save_state(s3, B, DIR, gone, coveredUntil=T0.isoformat())
    totals = _follow(streams, s3)
    assert (totals["changes"], totals["files"], totals["gaps"]) == (5, 3, 2)


def test_two_shards_trimmed_in_one_pass_are_two_gaps() -> None:
    s3 = FakeS3()
    shards = [Shard(f"shardId-{n}", start=100000000000000000001, closed=True) for n in range(2)]
    for shard in shards:
        archive.save_state(s3, B, DIR, shard.id, seq="100000000000000000002")
    assert _follow(FakeStreams(shards), s3)["gaps"] == 2


def test_a_shard_archived_to_its_end_is_not_read_again_and_an_idle_follow_polls_each_second() -> None:
    s3, streams = FakeS3(), _split_stream()
    _follow(streams, s3)
    calls, slept = streams.get_records_calls, []
    clock = iter([NOW + dt.timedelta(seconds=n) for n in range(100)])
    follow(FakeDynamoDB(stream=IMAGES), streams, s3, B, PREFIX, "T", until_idle=10, clock=lambda: next(clock),
           sleep=slept.append)  # fmt: skip
    assert slept and set(slept) == {1.0}
    passes = len(slept) + 1
    assert streams.get_records_calls - calls == passes * TIP_PAGES  # the open child only, to its tip each pass
