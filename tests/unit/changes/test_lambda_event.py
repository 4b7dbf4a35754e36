"""The archiver's batches (ddb_backup.changes.lambda_event)."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from typing import Any

import pytest

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive
from ddb_backup.changes.lambda_event import DROPPED, handle, shard_label, table_of
from ddb_backup.errors import BadInput
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


def test_a_stream_arn_names_its_table_and_anything_else_is_refused() -> None:
    assert table_of(ARN) == "T" and table_of("arn:aws:dynamodb:r:1:table/a-b.c/stream/x") == "a-b.c"
    for arn in (
        "arn:aws:dynamodb:r:1:table/T",
        "arn:aws:dynamodb:r:1:index/T/stream/x",
        "arn:aws:dynamodb:r:1:table/T/x/y",
        "arn:aws:dynamodb:r:1:zone/T/stream/x",  # sorts after "table"
        "arn:aws:dynamodb:r:1:table/T/index/x",  # sorts before "stream"
    ):
        with pytest.raises(BadInput) as refused:
            table_of(arn)
        assert str(refused.value) == f"{arn!r} is not a DynamoDB stream ARN"
    assert shard_label(ARN) == "stream-2026-12-01T000000000"


def _streams(created: dt.datetime, now: dt.datetime) -> FakeStreams:
    class AtNow(FakeStreams):
        def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "", **kw: Any) -> dict[str, Any]:
            answer = super().describe_stream(StreamArn, ExclusiveStartShardId, **kw)
            answer["ResponseMetadata"]["HTTPHeaders"]["date"] = email.utils.format_datetime(now, usegmt=True)
            return answer

    return AtNow([Shard("shardId-1", 300000000000000000001)], created=created)


@pytest.mark.parametrize(
    ("age", "begins"),
    [
        (dt.timedelta(hours=23, minutes=54), T0 - dt.timedelta(hours=23, minutes=54)),  # its creation: nothing missed
        (dt.timedelta(hours=23, minutes=55), T0),  # too near the retention: from its first change
        (dt.timedelta(days=2), T0),
    ],
)
def test_a_new_archive_covers_from_the_streams_creation_only_well_inside_its_retention(
    age: dt.timedelta, begins: dt.datetime
) -> None:
    s3 = FakeS3()
    answer = handle(s3, _streams(T0 - age, T0), "bkt", "p/", {"Records": _batch()["Records"]})
    info = archive.archive_info(s3, "bkt", "p/T/") or {}
    assert info["coveredFrom"] == begins.isoformat() and info["streamArn"] == ARN
    assert answer == {"changes": 1, "gaps": 0}  # not windowed: no state
    assert archive.shard_state(s3, "bkt", "p/T/", "stream-2026-12-01T000000000")  # no shardId: the ARN stands in


def _dropped(**info: Any) -> dict[str, Any]:
    batch = {"streamArn": ARN, "shardId": "shardId-1", "startSequenceNumber": "5", "endSequenceNumber": "9",
             "approximateArrivalOfFirstRecord": "2026-12-01T10:00:10.700Z",
             "approximateArrivalOfLastRecord": "2026-12-01T10:00:20.000Z", **info}  # fmt: skip
    return {"eventSource": "aws:sqs", "body": json.dumps({"DDBStreamBatchInfo": batch})}


def test_a_dropped_batch_is_a_gap_from_a_second_before_its_first_arrival_to_its_last() -> None:
    s3 = FakeS3()
    answer = handle(s3, FakeStreams([]), "bkt", "p/", {"Records": [_dropped(), _dropped(shardId="shardId-2")]})
    assert answer == {"changes": 0, "gaps": 2}
    first, _ = sorted(archive.gaps(s3, "bkt", "p/T/"), key=lambda g: g["shard"])
    assert first == {
        "shard": "shardId-1",
        "from": "2026-12-01T10:00:09+00:00",
        "to": "2026-12-01T10:00:20.000Z",
        "reason": f"{DROPPED}: sequence numbers 5 to 9",
    }


@pytest.mark.parametrize(("last", "begins"), [("2026-12-01T10:00:05+00:00", "2026-12-01T10:00:05+00:00"),
                                               ("2026-12-01T10:00:15+00:00", "2026-12-01T10:00:09+00:00")])  # fmt: skip
def test_a_dropped_batchs_gap_begins_after_the_last_change_archived_from_its_shard_if_earlier(
    last: str, begins: str
) -> None:
    s3 = FakeS3()
    archive.save_state(s3, "bkt", "p/T/", "shardId-1", time=last)
    handle(s3, FakeStreams([]), "bkt", "p/", {"Records": [_dropped()]})
    assert archive.gaps(s3, "bkt", "p/T/")[0]["from"] == begins


def test_a_dropped_batch_without_its_shard_is_recorded_against_the_stream() -> None:
    s3 = FakeS3()
    body = json.loads(_dropped()["body"])
    del body["DDBStreamBatchInfo"]["shardId"]
    handle(s3, FakeStreams([]), "bkt", "p/", {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(body)}]})
    assert archive.gaps(s3, "bkt", "p/T/")[0]["shard"] == "stream-2026-12-01T000000000"


def test_a_failure_message_without_batch_info_is_refused_quoting_it() -> None:
    message = {"requestContext": {"condition": "x" * 300}}
    with pytest.raises(BadInput) as refused:
        handle(
            FakeS3(),
            FakeStreams([]),
            "bkt",
            "p/",
            {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(message)}]},
        )
    assert str(refused.value) == f"failure-destination message without DDBStreamBatchInfo: {json.dumps(message)[:200]}"


def test_an_event_without_records_archives_nothing() -> None:
    assert handle(FakeS3(), FakeStreams([]), "bkt", "p/", {}) == {"changes": 0, "gaps": 0}


def test_a_lambda_events_binary_images_are_archived_as_they_came_and_an_archive_naming_its_stream_is_not_started_again() -> (
    None
):
    s3, streams = FakeS3(), _streams(T0 - dt.timedelta(hours=1), T0)
    event = {"Records": _batch()["Records"]}
    event["Records"][0]["dynamodb"]["Keys"] = {"k": {"B": "AAE="}}
    event["Records"][0]["dynamodb"]["NewImage"] = {"k": {"B": "AAE="}}
    handle(s3, streams, "bkt", "p/", event)
    assert (archive.archive_info(s3, "bkt", "p/T/") or {})["table"] == "T"
    (key,) = [k for _, k in s3.objects if k.endswith(".jsonl.gz")]
    assert archive.get_changes(s3, "bkt", key)[0]["Keys"] == {"k": {"B": "AAE="}}
    describes = streams.describes
    handle(s3, streams, "bkt", "p/", event)
    assert streams.describes == describes  # the archive names its stream: each batch is only appended


def test_the_changes_of_every_stream_in_one_event_are_counted() -> None:
    other = ARN.replace("table/T/", "table/U/")
    records = _batch()["Records"] + [{**_batch()["Records"][0], "eventSourceARN": other}]
    s3 = FakeS3()
    assert handle(s3, _streams(T0 - dt.timedelta(hours=1), T0), "bkt", "p/", {"Records": records}) == {
        "changes": 2,
        "gaps": 0,
    }
    assert archive.archive_info(s3, "bkt", "p/U/")
