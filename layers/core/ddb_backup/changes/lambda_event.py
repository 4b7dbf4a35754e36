"""The archiver Lambda's work: a stream batch appended to the archive, a dropped batch recorded as a gap.

Two event sources feed it: the table's stream (event source mapping with
bisect on error and a maximum record age), and the SQS queue that mapping
names as its failure destination. A batch the mapping gave up on arrives
there as ``DDBStreamBatchInfo``; its span becomes a gap, so a restore to a
time inside it is refused. A Lambda event carries no shard id: the stream's
ARN stands in for it (the change file's name still follows its content).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ddb_backup.changes import archive
from ddb_backup.changes.replay import at
from ddb_backup.changes.stream import change_of, list_shards
from ddb_backup.errors import BadInput

DROPPED = "the event source mapping dropped the batch (retries exhausted, or older than MaximumRecordAgeInSeconds)"


def table_of(stream_arn: str) -> str:
    """``arn:aws:dynamodb:r:a:table/NAME/stream/LABEL`` -> ``NAME``."""
    parts = stream_arn.split(":", 5)[-1].split("/")
    if len(parts) < 4 or parts[0] != "table" or parts[2] != "stream":
        raise BadInput(f"{stream_arn!r} is not a DynamoDB stream ARN")
    return parts[1]


def shard_label(stream_arn: str) -> str:
    return "stream-" + stream_arn.rsplit("/", 1)[-1].replace(":", "").replace(".", "")


def handle(s3: Any, streams: Any, bucket: str, prefix: str, event: dict[str, Any]) -> dict[str, int]:
    """Archive the stream records of ``event``, record the gaps its SQS messages report; counts of each."""
    counts = {"changes": 0, "gaps": 0}
    batches: dict[str, list[dict[str, Any]]] = {}
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:sqs":
            _gap(s3, bucket, prefix, json.loads(record["body"]))
            counts["gaps"] += 1
            continue
        arn = record["eventSourceARN"]
        batches.setdefault(arn, []).append(change_of(record, shard_label(arn), wire=True))
    for arn, changes in batches.items():
        table_dir = f"{prefix}{table_of(arn)}/"
        if archive.archive_info(s3, bucket, table_dir) is None:
            _start(s3, streams, bucket, table_dir, arn, changes[0]["time"])
        archive.append(s3, bucket, table_dir, changes)
        archive.save_state(s3, bucket, table_dir, shard_label(arn), coveredUntil=changes[-1]["time"])
        counts["changes"] += len(changes)
    return counts


def _start(s3: Any, streams: Any, bucket: str, table_dir: str, arn: str, first: str) -> None:
    """The archive's coverage begins at the stream's creation when the mapping (reading from the trim
    horizon) can have missed nothing, that is within 24 hours of it; else at the first change it got."""
    _, created = list_shards(streams, arn)
    now = dt.datetime.now(dt.UTC)
    begins = created if created and now - created < archive.RETENTION - dt.timedelta(minutes=5) else at(first)
    archive.start_archive(s3, bucket, table_dir, table_of(arn), begins)


def _gap(s3: Any, bucket: str, prefix: str, message: dict[str, Any]) -> None:
    info = message.get("DDBStreamBatchInfo")
    if not isinstance(info, dict):
        raise BadInput(f"failure-destination message without DDBStreamBatchInfo: {json.dumps(message)[:200]}")
    table_dir = f"{prefix}{table_of(info['streamArn'])}/"
    archive.record_gap(
        s3,
        bucket,
        table_dir,
        info.get("shardId", shard_label(info["streamArn"])),
        info["approximateArrivalOfFirstRecord"],
        info["approximateArrivalOfLastRecord"],
        f"{DROPPED}: sequence numbers {info.get('startSequenceNumber')} to {info.get('endSequenceNumber')}",
    )
