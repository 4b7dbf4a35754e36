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
from ddb_backup.changes.consistent import server_now
from ddb_backup.changes.stream import change_of, list_shards
from ddb_backup.errors import BadInput
from ddb_backup.names import utc_time

DROPPED = "the event source mapping dropped the batch (retries exhausted, or older than MaximumRecordAgeInSeconds)"


def table_of(stream_arn: str) -> str:
    """``arn:aws:dynamodb:r:a:table/NAME/stream/LABEL`` -> ``NAME``."""
    parts = stream_arn.split(":", 5)[-1].split("/")
    if len(parts) < 4 or parts[0] != "table" or parts[2] != "stream":
        raise BadInput(f"{stream_arn!r} is not a DynamoDB stream ARN")
    return parts[1]


def shard_label(stream_arn: str) -> str:
    return "stream-" + stream_arn.rsplit("/", 1)[-1].replace(":", "").replace(".", "")


def handle(s3: Any, streams: Any, bucket: str, prefix: str, event: dict[str, Any]) -> dict[str, Any]:
    """Archive the stream records of ``event``, record the gaps its SQS messages report; counts of each.

    A batch from the stream's mapping names its shard (the mapping's tumbling window adds ``shardId``), so
    the archive keeps each shard's position. The answer carries ``state``: Lambda counts a windowed
    invocation without it as failed.
    """
    counts: dict[str, Any] = {"changes": 0, "gaps": 0}
    batches: dict[str, list[dict[str, Any]]] = {}
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:sqs":
            _gap(s3, bucket, prefix, json.loads(record["body"]))
            counts["gaps"] += 1
            continue
        batches.setdefault(record["eventSourceARN"], []).append(record)
    for arn, records in batches.items():
        shard = event.get("shardId") or shard_label(arn)
        changes = [change_of(r, shard, wire=True) for r in records]
        table_dir = f"{prefix}{table_of(arn)}/"
        if "streamArn" not in (archive.archive_info(s3, bucket, table_dir) or {}):  # new, or from before it was kept
            _start(s3, streams, bucket, table_dir, arn, changes[0]["time"])
        archive.append(s3, bucket, table_dir, changes)
        counts["changes"] += len(changes)
    return {**counts, "state": {}} if "window" in event else counts


def _start(s3: Any, streams: Any, bucket: str, table_dir: str, arn: str, first: str) -> None:
    """The archive's coverage begins at the stream's creation when the mapping (reading from the trim
    horizon) can have missed nothing, that is within 24 hours of it; else at the first change it got."""
    _, created = list_shards(streams, arn)
    now = server_now(streams, arn)
    begins = created if created and now - created < archive.RETENTION - dt.timedelta(minutes=5) else utc_time(first)
    archive.start_archive(s3, bucket, table_dir, table_of(arn), arn, begins)


def _gap_start(s3: Any, bucket: str, table_dir: str, shard: str, arrival: str) -> str:
    """Where a dropped batch's gap begins: after the last change archived from its shard (a shard's records
    come in order), else a second before the second its first record arrived in (a change is stamped, in
    whole seconds, when it is made, before it arrives)."""
    state = archive.shard_state(s3, bucket, table_dir, shard) or {}
    start = utc_time(arrival).replace(microsecond=0) - dt.timedelta(seconds=1)
    return min(utc_time(state["time"]), start).isoformat() if "time" in state else start.isoformat()


def _gap(s3: Any, bucket: str, prefix: str, message: dict[str, Any]) -> None:
    info = message.get("DDBStreamBatchInfo")
    if not isinstance(info, dict):
        raise BadInput(f"failure-destination message without DDBStreamBatchInfo: {json.dumps(message)[:200]}")
    table_dir = f"{prefix}{table_of(info['streamArn'])}/"
    shard = info.get("shardId", shard_label(info["streamArn"]))
    archive.record_gap(
        s3,
        bucket,
        table_dir,
        shard,
        _gap_start(s3, bucket, table_dir, shard, info["approximateArrivalOfFirstRecord"]),
        info["approximateArrivalOfLastRecord"],
        f"{DROPPED}: sequence numbers {info.get('startSequenceNumber')} to {info.get('endSequenceNumber')}",
    )
