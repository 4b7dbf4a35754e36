"""An exact backup's stored changes, read back from S3 and from a local copy (changes/consistent.py).

The backup's change files are written here as finalize writes them (``changes/NNNNNN.jsonl.gz`` with each
one's sha256 in the manifest); gathering them is tests/changes/test_gather.py's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive, consistent
from ddb_backup.changes.consistent import Position
from ddb_backup.changes.stream import change_of
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError
from tests.helpers.aws import FakeDynamoDB, FakeS3, FakeStreams, Shard, record

B, DIR = "bkt", "p/T/20261201T100000Z-0123abcd/"
T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def _exact(s3: FakeS3) -> tuple[dict, list[dict]]:
    """An exact backup stored at DIR, consistent at T0: two changes of key a (the last a removal), one of b, and
    one of c after the moment, in one change file whose sha256 the manifest records."""
    changes = [
        change_of(record(11, T0 - dt.timedelta(seconds=2), "a", "v1"), "shardId-1"),
        change_of(record(12, T0 - dt.timedelta(seconds=1), "b", "v2"), "shardId-1"),
        change_of(record(13, T0, "a", None), "shardId-1"),
        change_of(record(14, T0 + dt.timedelta(seconds=1), "c", "late"), "shardId-1"),
    ]
    body = archive.encode(changes)
    s3.put_object(Bucket=B, Key=f"{DIR}changes/000000.jsonl.gz", Body=body)
    entry = {"key": "changes/000000.jsonl.gz", "records": len(changes), "sha256": hashlib.sha256(body).hexdigest()}
    manifest = {"backupId": "x", "consistentAt": T0.isoformat(), "changes": [entry]}
    put_json(s3, B, f"{DIR}manifest.json", manifest)
    return manifest, changes


def test_stored_changes_read_back_from_s3_and_from_a_local_copy_each_checked(tmp_path: Path) -> None:
    s3 = FakeS3()
    manifest, changes = _exact(s3)
    assert consistent.backup_changes(s3, B, DIR, manifest) == changes
    assert consistent.stored_changes(s3, f"s3://{B}/{DIR[:-1]}") == (T0.isoformat(), changes)
    _copied(s3, tmp_path)
    assert consistent.stored_changes(None, str(tmp_path)) == (T0.isoformat(), changes)
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


def test_a_backup_that_is_not_exact_has_no_stored_changes(tmp_path: Path) -> None:
    s3 = FakeS3()
    put_json(s3, B, f"{DIR}manifest.json", {"backupId": "x"})
    assert consistent.stored_changes(s3, f"s3://{B}/{DIR}") is None
    (tmp_path / "manifest.json").write_text(json.dumps({"backupId": "x"}))
    assert consistent.stored_changes(None, str(tmp_path)) is None


def _copied(s3: FakeS3, into: Path) -> None:
    for (_, key), body in s3.objects.items():
        (into / key[len(DIR) :]).parent.mkdir(parents=True, exist_ok=True)
        (into / key[len(DIR) :]).write_bytes(body)


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


class _Clock(FakeStreams):
    """DynamoDB's clock in the Date header: ``times`` in turn, one a DescribeStream (the last repeats)."""

    def __init__(self, times: list[dt.datetime]) -> None:
        super().__init__([Shard("shardId-1", start=300000000000000000001)])
        self.times = list(times)

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "", **kw: object) -> dict:
        answer = super().describe_stream(StreamArn, ExclusiveStartShardId, **kw)
        now = self.times.pop(0) if len(self.times) > 1 else self.times[0]
        answer["ResponseMetadata"]["HTTPHeaders"]["date"] = email.utils.format_datetime(now, usegmt=True)
        return answer


def test_the_moment_is_the_end_of_dynamodbs_second_once_its_clock_has_passed_it(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(consistent.time, "sleep", slept.append)
    streams = _Clock([T0, T0, T0, T0 + dt.timedelta(seconds=1)])  # the moment, then two looks before it passes
    position = Position("T", "arn", frozenset({"shardId-1"}), T0)
    assert consistent.moment(streams, position) == T0 + dt.timedelta(seconds=1) - dt.timedelta(microseconds=1)
    assert slept == [0.05, 0.05] and streams.describes == 4


def test_a_clock_that_never_passes_the_moment_fails_the_backup_naming_it(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(consistent.time, "sleep", slept.append)
    streams = _Clock([T0])
    with pytest.raises(BackupIncomplete) as failed:
        consistent.moment(streams, Position("T", "arn", frozenset({"shardId-1"}), T0))
    moment = T0 + dt.timedelta(seconds=1) - dt.timedelta(microseconds=1)
    assert str(failed.value) == f"table T: DynamoDB's clock (the Date header) did not pass {moment}"
    assert slept == [0.05] * 60 and streams.describes == 61  # about three seconds of DynamoDB's clock


def test_the_position_names_the_table_its_stream_and_dynamodbs_second() -> None:
    streams = _Clock([T0])
    stream = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    position = consistent.note_position(FakeDynamoDB(stream=stream), streams, "T")
    assert position == Position("T", "arn:aws:dynamodb:us-east-1:1:table/T/stream/2026-12-01T00:00:00.000",
                                frozenset({"shardId-1"}), T0)  # fmt: skip
