"""Restore to a time (ddb_backup.changes.totime): the archive's reach, proved per shard on the stream."""

from __future__ import annotations

import datetime as dt

from ddb_backup.changes import archive
from ddb_backup.changes.totime import unarchived
from tests.helpers.aws import T0, FakeS3, FakeStreams, Shard, record

B, DIR, ARN = "bkt", "p/T/", "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-12-01T00:00:00.000"
SEQ = 300000000000000000000


def _stream() -> tuple[FakeS3, FakeStreams]:
    """Shard ahead archived to its last change (T0+9 s); shard behind holds changes at T0+2 s and T0+5 s, the
    first archived, the second not: Lambda reads shards concurrently."""
    s3 = FakeS3()
    ahead = [record(SEQ + n, T0 + dt.timedelta(seconds=n), f"a{n}", "v") for n in range(10)]
    behind = [record(SEQ + 100 + n, T0 + dt.timedelta(seconds=2 + 3 * n), f"b{n}", "v") for n in range(2)]
    streams = FakeStreams([Shard("shardId-ahead", SEQ, ahead), Shard("shardId-behind", SEQ + 100, behind)], empty=2)
    archive.start_archive(s3, B, DIR, "T", ARN, T0 - dt.timedelta(hours=1))
    for changes in ([{**_change(r), "shard": "shardId-ahead"} for r in ahead], [_change(behind[0], "behind")]):
        archive.append(s3, B, DIR, changes)
    return s3, streams


def _change(r: dict, shard: str = "ahead") -> dict:
    body = r["dynamodb"]
    return {"seq": body["SequenceNumber"], "shard": f"shardId-{shard}", "time": body["ApproximateCreationDateTime"].isoformat(),
            "event": "MODIFY", "Keys": {}, "NewImage": {}}  # fmt: skip


def test_a_time_after_a_change_one_shard_has_not_delivered_is_refused_naming_that_shard() -> None:
    s3, streams = _stream()
    why = unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=6))
    assert why and "shardId-behind" in why and "has not received yet" in why


def test_a_time_before_every_undelivered_change_is_covered_though_another_shard_ran_ahead() -> None:
    s3, streams = _stream()
    assert unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=4, microseconds=999999)) is None


def test_a_shard_never_archived_is_read_from_its_trim_horizon() -> None:
    s3, streams = _stream()
    streams.shards.append(Shard("shardId-new", SEQ + 200, [record(SEQ + 200, T0 + dt.timedelta(seconds=1), "n", "v")]))
    why = unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=1))
    assert why and "shardId-new" in why
