"""Change files and the archive's state (ddb_backup.changes.archive)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ddb_backup.changes import archive
from ddb_backup.changes.stream import change_of
from tests.helpers.aws import LONG_SEQ, SHORT_SEQ, T0, FakeS3, record

B, DIR = "bkt", "p/T/"


def _change(seq: int, when: dt.datetime, key: str = "a") -> dict[str, Any]:
    return change_of(record(seq, when, key, "v"), "shardId-1")


def test_the_shard_state_moves_past_a_longer_sequence_number() -> None:
    # "1000...12" (29 digits) follows "9000...1" (21 digits), though it sorts before it as a string.
    s3 = FakeS3()
    archive.append(s3, B, DIR, [_change(SHORT_SEQ, T0)])
    archive.append(s3, B, DIR, [_change(LONG_SEQ, T0 + dt.timedelta(seconds=1))])
    assert archive.shard_state(s3, B, DIR, "shardId-1") == {
        "shard": "shardId-1",
        "seq": str(LONG_SEQ),
        "time": (T0 + dt.timedelta(seconds=1)).isoformat(),
    }


def test_a_repeated_older_batch_does_not_move_the_state_back() -> None:
    s3 = FakeS3()
    archive.append(s3, B, DIR, [_change(LONG_SEQ, T0 + dt.timedelta(seconds=1))])
    archive.append(s3, B, DIR, [_change(SHORT_SEQ, T0)])
    assert (archive.shard_state(s3, B, DIR, "shardId-1") or {})["seq"] == str(LONG_SEQ)


def _files(s3: FakeS3, *spans: tuple[int, int]) -> list[str]:
    """One change file a span (first second, last second after T0)."""
    keys = []
    for n, (first, last) in enumerate(spans):
        batch = [
            _change(10 * n + 1, T0 + dt.timedelta(seconds=first)),
            _change(10 * n + 2, T0 + dt.timedelta(seconds=last)),
        ]
        keys.append(archive.append(s3, B, DIR, batch)["key"])  # type: ignore[index]
    return keys


def test_files_between_takes_a_file_that_starts_exactly_at_the_end_or_ends_exactly_at_the_start() -> None:
    s3 = FakeS3()
    _before, ends_at_start, inside, starts_at_end, _after = _files(s3, (0, 9), (5, 10), (12, 15), (20, 30), (21, 25))
    got = archive.files_between(s3, B, DIR, T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=20))
    assert sorted(got) == sorted([ends_at_start, inside, starts_at_end])


def test_files_between_reads_times_with_any_offset_as_the_utc_moments_they_are() -> None:
    # --to-time 2026-12-01T05:00:20-05:00 is 10:00:20 UTC; the names hold UTC.
    s3 = FakeS3()
    (starts_at_end,) = _files(s3, (20, 30))
    eastern = dt.timezone(-dt.timedelta(hours=5))
    start, end = T0.astimezone(eastern), (T0 + dt.timedelta(seconds=20)).astimezone(eastern)
    assert archive.files_between(s3, B, DIR, start, end) == [starts_at_end]
