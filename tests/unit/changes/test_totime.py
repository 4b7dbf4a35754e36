"""Restore to a time (ddb_backup.changes.totime): how far the archive reaches."""

from __future__ import annotations

import datetime as dt

from ddb_backup.changes import archive
from ddb_backup.changes.totime import archive_reach
from tests.helpers.aws import T0, FakeS3

B, DIR = "bkt", "p/T/"


def test_the_archive_reaches_only_as_far_as_its_least_advanced_open_shard() -> None:
    s3 = FakeS3()
    archive.start_archive(s3, B, DIR, "T", T0)
    archive.save_state(s3, B, DIR, "shardId-ahead", coveredUntil=(T0 + dt.timedelta(hours=2)).isoformat())
    archive.save_state(s3, B, DIR, "shardId-behind", coveredUntil=(T0 + dt.timedelta(hours=1)).isoformat())
    archive.save_state(s3, B, DIR, "shardId-done", coveredUntil=T0.isoformat(), closed=True)
    assert archive_reach(s3, B, DIR) == (T0, T0 + dt.timedelta(hours=1))


def test_an_open_shard_never_caught_up_leaves_no_reach() -> None:
    s3 = FakeS3()
    archive.save_state(s3, B, DIR, "shardId-ahead", coveredUntil=T0.isoformat())
    archive.save_state(s3, B, DIR, "shardId-new", seq="5", time=T0.isoformat())
    assert archive_reach(s3, B, DIR) == (None, None)
