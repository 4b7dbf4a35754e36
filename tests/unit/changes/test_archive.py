"""Change files and the archive's state (ddb_backup.changes.archive)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from typing import Any

import pytest

from ddb_backup.changes import archive
from ddb_backup.changes.stream import change_of
from ddb_backup.errors import BadInput, IntegrityError
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


def test_a_change_file_is_the_same_bytes_for_the_same_changes_and_reads_back_as_written() -> None:
    s3 = FakeS3()
    changes = [_change(1, T0, "é"), {**_change(2, T0, "b"), "event": "REMOVE"}]
    del changes[1]["NewImage"]
    entry = archive.put_changes(s3, B, "k.jsonl.gz", changes)
    assert archive.encode(changes) == archive.encode([dict(c) for c in changes])  # no time stamped in the gzip
    body = s3.objects[(B, "k.jsonl.gz")]
    assert entry == {"key": "k.jsonl.gz", "records": 2, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert gzip.decompress(body).decode().startswith('{"seq":"1","shard":"shardId-1",')  # compact lines
    assert "é" in gzip.decompress(body).decode()
    assert archive.get_changes(s3, B, "k.jsonl.gz", entry["sha256"]) == changes
    assert archive.get_changes(s3, B, "k.jsonl.gz") == changes


def test_a_change_file_whose_sha256_differs_is_refused_naming_it() -> None:
    s3 = FakeS3()
    archive.put_changes(s3, B, "k.jsonl.gz", [_change(1, T0)])
    with pytest.raises(IntegrityError, match=r"^s3://bkt/k.jsonl.gz: sha256 differs from the manifest's$"):
        archive.get_changes(s3, B, "k.jsonl.gz", "0" * 64)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"{not json", "line 2: not JSON ("),
        (b"[1]", "line 2: a change needs seq, time, event and Keys"),
        (b'{"seq": "1", "time": "t", "event": "MODIFY"}', "line 2: a change needs seq, time, event and Keys"),
        (b'{"seq": "1", "time": "t", "event": "INSERT", "Keys": {}}', "line 2: INSERT without NewImage"),
    ],
)
def test_a_damaged_change_file_is_refused_naming_the_line(line: bytes, why: str) -> None:
    good = json.dumps({"seq": "1", "time": "t", "event": "REMOVE", "Keys": {}}).encode()
    with pytest.raises(BadInput) as refused:
        archive.decode(gzip.compress(good + b"\n" + line + b"\n"), "s3://b/f")
    assert str(refused.value).startswith(f"s3://b/f {why}")


def test_a_change_files_name_holds_its_first_and_last_utc_times_shard_and_first_sequence_number() -> None:
    eastern = dt.timezone(-dt.timedelta(hours=5))
    first = {**_change(7, T0), "time": T0.astimezone(eastern).isoformat()}
    last = _change(9, T0 + dt.timedelta(seconds=1, microseconds=5))
    assert archive.archive_key(DIR, [first, last]) == (
        "p/T/changes/20261201T100000.000000Z_20261201T100001.000000Z_shardId-1_7.jsonl.gz"
    )


def test_an_empty_batch_writes_nothing_and_a_state_keeps_its_other_fields() -> None:
    s3 = FakeS3()
    assert archive.append(s3, B, DIR, []) is None and s3.objects == {}
    archive.save_state(s3, B, DIR, "shardId-1", coveredUntil="c")
    archive.append(s3, B, DIR, [_change(5, T0)])
    assert archive.shard_state(s3, B, DIR, "shardId-1") == {"shard": "shardId-1", "coveredUntil": "c", "seq": "5",
                                                           "time": T0.isoformat()}  # fmt: skip
    assert [s["shard"] for s in archive.all_states(s3, B, DIR)] == ["shardId-1"]


def test_the_archives_start_is_written_once_in_utc_and_an_older_one_only_gains_its_stream() -> None:
    s3 = FakeS3()
    eastern = dt.timezone(-dt.timedelta(hours=5))
    info = archive.start_archive(s3, B, DIR, "T", "arn:1", T0.astimezone(eastern))
    assert (
        info == {"table": "T", "coveredFrom": T0.isoformat(), "streamArn": "arn:1"} == archive.archive_info(s3, B, DIR)
    )
    assert archive.start_archive(s3, B, DIR, "T", "arn:2", T0 + dt.timedelta(days=1)) == info
    assert archive.archive_info(s3, B, DIR) == info


def test_files_between_skips_the_archives_own_records() -> None:
    s3 = FakeS3()
    (key,) = _files(s3, (0, 5))
    archive.start_archive(s3, B, DIR, "T", "arn", T0)
    archive.record_gap(s3, B, DIR, "shardId-1", T0.isoformat(), T0.isoformat(), "r")
    s3.put_object(Bucket=B, Key=f"{DIR}changes/notes.txt", Body=b"")
    assert archive.files_between(s3, B, DIR, T0, T0 + dt.timedelta(seconds=5)) == [key]
    assert archive.gaps(s3, B, DIR) == [
        {"shard": "shardId-1", "from": T0.isoformat(), "to": T0.isoformat(), "reason": "r"}
    ]


@pytest.mark.usefixtures("new_york")
def test_names_and_the_archives_start_are_utc_whatever_this_machines_zone() -> None:
    s3 = FakeS3()
    assert archive.archive_key(DIR, [_change(7, T0)]).startswith("p/T/changes/20261201T100000.000000Z_")
    assert archive.start_archive(s3, B, DIR, "T", "arn", T0)["coveredFrom"] == T0.isoformat()
    (key,) = _files(s3, (20, 30))
    assert archive.files_between(s3, B, DIR, T0, T0 + dt.timedelta(seconds=20)) == [key]
    assert archive.files_between(s3, B, DIR, T0, T0 + dt.timedelta(seconds=19)) == []


def test_a_change_file_carries_no_time_in_its_gzip_header_and_is_stored_as_gzip_json_lines() -> None:
    assert archive.encode([_change(1, T0)])[4:8] == bytes(4)  # gzip MTIME 0: a retried batch, the same bytes

    class Recording(FakeS3):
        def put_object(self, Bucket: str, Key: str, Body: bytes, **kw: Any) -> dict[str, Any]:
            self.kw = kw
            return super().put_object(Bucket, Key, Body)

    s3 = Recording()
    archive.put_changes(s3, B, "k.jsonl.gz", [_change(1, T0)])
    assert s3.kw == {"ContentType": "application/x-ndjson", "ContentEncoding": "gzip"}


def test_a_stray_object_among_the_change_files_hides_none_after_it() -> None:
    s3 = FakeS3()
    s3.put_object(Bucket=B, Key=f"{DIR}changes/000-note.txt", Body=b"")  # sorts before every change file
    (key,) = _files(s3, (0, 5))
    assert archive.files_between(s3, B, DIR, T0, T0 + dt.timedelta(seconds=5)) == [key]


def test_a_change_file_damaged_or_of_another_sha256_either_way_is_refused_naming_it() -> None:
    s3 = FakeS3()
    archive.put_changes(s3, B, "k.jsonl.gz", [_change(1, T0)])
    with pytest.raises(IntegrityError, match="sha256 differs"):
        archive.get_changes(s3, B, "k.jsonl.gz", "f" * 64)
    s3.put_object(Bucket=B, Key="bad.jsonl.gz", Body=gzip.compress(b"{oops\n"))
    with pytest.raises(BadInput, match=r"^s3://bkt/bad.jsonl.gz line 1: not JSON"):
        archive.get_changes(s3, B, "bad.jsonl.gz")
    event = json.dumps({"seq": "1", "time": "t", "event": "TTL_EXPIRED", "Keys": {}}).encode()  # sorts after REMOVE
    with pytest.raises(BadInput, match=r"line 1: TTL_EXPIRED without NewImage$"):
        archive.decode(gzip.compress(event), "f")
