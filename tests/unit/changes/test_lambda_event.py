"""The archiver's batches (ddb_backup.changes.lambda_event)."""

from __future__ import annotations

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive
from ddb_backup.changes.lambda_event import handle
from tests.helpers.aws import T0, FakeS3, FakeStreams, Shard

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-12-01T00:00:00.000"


def _batch() -> dict:
    body = {"ApproximateCreationDateTime": T0.timestamp(), "SequenceNumber": "300000000000000000001",
            "Keys": {"k": {"S": "a"}}, "NewImage": {"k": {"S": "a"}}, "StreamViewType": "NEW_IMAGE"}  # fmt: skip
    record = {"eventSource": "aws:dynamodb", "eventName": "INSERT", "eventSourceARN": ARN, "dynamodb": body}
    return {"Records": [record], "shardId": "shardId-1", "window": {"start": "x", "end": "y"}}


def test_an_archive_started_before_it_kept_its_stream_gets_it_from_the_next_batch() -> None:
    """Restores to a time read the stream the archive names: an older archive must learn it, not stay refused."""
    s3 = FakeS3()
    put_json(s3, "bkt", "p/T/changes/_archive.json", {"table": "T", "coveredFrom": T0.isoformat()})
    answer = handle(s3, FakeStreams([Shard("shardId-1", 300000000000000000001)]), "bkt", "p/", _batch())
    info = archive.archive_info(s3, "bkt", "p/T/") or {}
    assert info == {"table": "T", "coveredFrom": T0.isoformat(), "streamArn": ARN}  # its start kept
    assert answer["state"] == {} and answer["changes"] == 1  # a windowed invocation answers its state
    assert (archive.shard_state(s3, "bkt", "p/T/", "shardId-1") or {})["seq"] == "300000000000000000001"
