"""Reading a table's DynamoDB stream: shards in lineage order, records as change lines.

A change (one line of a change file, see :mod:`ddb_backup.changes.archive`)::

    {"seq": "<sequence number>", "shard": "<shard id>", "time": "<ISO UTC>",
     "event": "INSERT" | "MODIFY" | "REMOVE", "Keys": {...}, "NewImage": {...}}

``Keys`` and ``NewImage`` are DynamoDB JSON as in ``data/`` (binary base64);
a REMOVE has no ``NewImage``. Records of one shard come in sequence order; a
child shard's records follow its parent's, so reading parents first keeps
every key's changes in order.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import call_with_backoff, error_code
from ddb_backup.errors import BadInput
from ddb_backup.format import ddbjson
from ddb_backup.names import utc_time

Change = dict[str, Any]
IMAGES = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")


def stream_of(ddb: Any, table: str) -> str:
    """The table's stream ARN; refuses a table without a stream carrying new images, saying how to enable one."""
    desc = ddb.describe_table(TableName=table)["Table"]
    spec = desc.get("StreamSpecification") or {}
    arn = desc.get("LatestStreamArn")
    if not spec.get("StreamEnabled") or not arn or spec.get("StreamViewType") not in IMAGES:
        got = spec.get("StreamViewType") if spec.get("StreamEnabled") else "no stream"
        raise BadInput(
            f"table {table} has {got}: exact backups and change archives need a stream with NEW_IMAGE or "
            f"NEW_AND_OLD_IMAGES; enable it with: aws dynamodb update-table --table-name {table} "
            "--stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES "
            "(or name the table in the stack's ChangeArchiveTables parameter)"
        )
    return str(arn)


def list_shards(streams: Any, arn: str) -> tuple[list[dict[str, Any]], dt.datetime | None]:
    """Every shard the stream still holds, parents before children, and the stream's creation time."""
    shards: list[dict[str, Any]] = []
    request: dict[str, Any] = {"StreamArn": arn}
    created = None
    while True:
        desc = call_with_backoff(streams.describe_stream, **request)["StreamDescription"]
        created = created or _utc(desc.get("CreationRequestDateTime"))
        shards.extend(desc.get("Shards", []))
        if not desc.get("LastEvaluatedShardId"):
            return lineage_order(shards), created
        request["ExclusiveStartShardId"] = desc["LastEvaluatedShardId"]


def lineage_order(shards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shards ordered so that every parent the list holds comes before its children."""
    by_id = {s["ShardId"]: s for s in shards}
    done: set[str] = set()
    out: list[dict[str, Any]] = []

    def visit(shard: dict[str, Any]) -> None:
        if shard["ShardId"] in done:
            return
        done.add(shard["ShardId"])
        parent = by_id.get(shard.get("ParentShardId") or "")
        if parent is not None:
            visit(parent)
        out.append(shard)

    for shard in sorted(shards, key=lambda s: s["SequenceNumberRange"]["StartingSequenceNumber"].zfill(40)):
        visit(shard)
    return out


def server_time(response: dict[str, Any]) -> dt.datetime:
    """The service's clock when it answered, to the second (its ``Date`` header); refuses a response without one."""
    date = (response.get("ResponseMetadata") or {}).get("HTTPHeaders", {}).get("date")
    if not date:
        raise BadInput("the DynamoDB Streams response has no Date header: the moment cannot come from DynamoDB's clock")
    return email.utils.parsedate_to_datetime(date).astimezone(dt.UTC)


def _utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return utc_time(str(value))


def change_of(record: dict[str, Any], shard: str, *, wire: bool = False) -> Change:
    """A stream record as a change line's document; ``wire``: from a Lambda event (binary already base64)."""
    body = record["dynamodb"]
    when = _utc(body["ApproximateCreationDateTime"])
    assert when is not None
    change: Change = {
        "seq": str(body["SequenceNumber"]),
        "shard": shard,
        "time": when.astimezone(dt.UTC).isoformat(),
        "event": record["eventName"],
        "Keys": _wire(body["Keys"], wire),
    }
    if record["eventName"] != "REMOVE":
        if "NewImage" not in body:
            raise BadInput(
                f"stream record {change['seq']} of {shard} has no NewImage: the stream must carry new images"
            )
        change["NewImage"] = _wire(body["NewImage"], wire)
    return change


def _wire(item: dict[str, Any], wire: bool) -> dict[str, Any]:
    """Wire form: a Lambda event's images are wire form already (checked), a boto3 client's are not."""
    if wire:
        ddbjson.item_from_wire(item, "stream record")
        return item
    return ddbjson.item_to_wire(item)


#: An open shard read to its end answers empty pages; so can a shard before and between its records
#: ("it might take multiple calls to get to a portion of the shard that contains stream records").
#: A reader takes an open shard as read to its tip only after this many empty pages in a row: with the
#: strict stream's one empty page in five, 5 ended a read early about once in 125 shards (and a restore
#: to a time then took a shard's unarchived changes for none); 12, about once in 4e8.
TIP_PAGES = 12


@dataclass
class ShardRead:
    """One page of a shard's reading: what came, whether the shard is finished or read to its tip."""

    shard: str
    records: list[Change] = field(default_factory=list)
    closed: bool = False
    trimmed: bool = False
    tip: bool = False


def read_shard(
    streams: Any,
    arn: str,
    shard: str,
    *,
    after: str | None = None,
    stop: Callable[[list[Change]], bool] = lambda batch: False,
    limit: int = 1000,
    tip_pages: int = TIP_PAGES,
) -> Iterator[ShardRead]:
    """Pages of one shard's changes from after sequence number ``after`` (or its trim horizon).

    Ends when the shard is closed and read to its end, when ``stop`` says so
    for a page of records, or at an open shard's tip (``tip_pages`` empty
    pages in a row, the last page then says ``tip``). Empty pages before and
    between records are followed, never taken as the end. An iterator that
    expired (15 minutes) is renewed after the last record read. ``trimmed``
    says the records after ``after`` are no longer in the stream (past its
    24-hour retention).
    """
    iterator, trimmed = _iterator(streams, arn, shard, after)
    empty = 0
    while iterator:
        try:
            page = call_with_backoff(streams.get_records, ShardIterator=iterator, Limit=limit)
        except ClientError as exc:
            if error_code(exc) != "ExpiredIteratorException":
                raise
            iterator, _ = _iterator(streams, arn, shard, after)
            continue
        batch = [change_of(r, shard) for r in page.get("Records", [])]
        iterator = page.get("NextShardIterator")
        empty = 0 if batch else empty + 1
        after = batch[-1]["seq"] if batch else after
        tip = bool(iterator) and empty >= tip_pages
        yield ShardRead(shard, batch, closed=iterator is None, trimmed=trimmed, tip=tip)
        trimmed = False
        if tip or (batch and stop(batch)):
            return


def _iterator(streams: Any, arn: str, shard: str, after: str | None) -> tuple[str | None, bool]:
    """An iterator after sequence number ``after`` (or at the trim horizon); whether records after it were trimmed."""
    request: dict[str, Any] = {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}
    if after is not None:
        request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
    try:
        return call_with_backoff(streams.get_shard_iterator, **request).get("ShardIterator"), False
    except ClientError as exc:
        if error_code(exc) != "TrimmedDataAccessException" or after is None:
            raise
    request = {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}
    return call_with_backoff(streams.get_shard_iterator, **request).get("ShardIterator"), True
