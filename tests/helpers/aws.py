"""In-memory fakes as wide as the AWS services where it matters, for unit tests without network.

``FakeStreams`` pages DescribeStream (``LastEvaluatedShardId``, some pages empty)
and GetRecords, stamps records in whole seconds, and uses sequence numbers of
varying length as AWS does. ``FakeS3`` holds objects in a dict and pages
ListObjectsV2. ``FakeDynamoDB`` answers BatchWriteItem with ``UnprocessedItems``
for as many calls as it is told, then writes.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError

#: A moment in whole seconds, as DynamoDB Streams stamps records.
T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
#: Sequence numbers of two lengths whose string order is the reverse of their numeric order.
SHORT_SEQ = 900000000000000000001  # 21 digits
LONG_SEQ = 10000000000000000000000000012  # 29 digits


def _param(name: str, value: Any, kind: type = str) -> None:
    """botocore's own check, before any request: a parameter of the wrong type (None) is refused."""
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ParamValidationError(report=f"Invalid type for parameter {name}, value: {value!r}")


def error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, operation)


def record(seq: int, when: dt.datetime, key: str, value: str | None) -> dict[str, Any]:
    """A stream record (client form) stamped ``when`` cut to whole seconds: put ``value`` at ``key``, or remove it."""
    body: dict[str, Any] = {
        "SequenceNumber": str(seq),
        "ApproximateCreationDateTime": when.replace(microsecond=0),
        "Keys": {"k": {"S": key}},
    }
    if value is not None:
        body["NewImage"] = {"k": {"S": key}, "v": {"S": value}}
    return {"eventName": "REMOVE" if value is None else "MODIFY", "dynamodb": body}


def _date() -> str:
    """An HTTP Date header: the service's clock (here this machine's), to the second."""
    return email.utils.formatdate(time.time(), usegmt=True)


@dataclass
class Shard:
    id: str
    start: int
    records: list[dict[str, Any]] = field(default_factory=list)
    parent: str | None = None
    closed: bool = False


class FakeStreams:
    """DynamoDB Streams over ``shards``: DescribeStream answers ``per_page`` shards a page (and an empty page
    that says there is more after each), GetRecords two records a call, ``empty`` empty pages before each
    (a shard's portions without records: "it might take multiple calls to get to a portion ... with records")."""

    def __init__(self, shards: list[Shard], *, created: dt.datetime = T0, per_page: int = 2, empty: int = 0) -> None:
        self.shards, self.created, self.per_page, self.empty = shards, created, per_page, empty
        self.get_records_calls = 0
        self.describes = 0
        self._answered_empty: set[str] = set()

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "", **kw: Any) -> dict[str, Any]:
        _param("StreamArn", StreamArn)
        if "Limit" in kw:
            _param("Limit", kw["Limit"], int)
        self.describes += 1
        ids = [s.id for s in self.shards]
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        desc: dict[str, Any] = {"CreationRequestDateTime": self.created, "Shards": []}
        answer: dict[str, Any] = {"StreamDescription": desc, "ResponseMetadata": {"HTTPHeaders": {"date": _date()}}}
        if ExclusiveStartShardId and ExclusiveStartShardId not in self._answered_empty:
            # The first ask after a shard answers an empty page that still says there is more (AWS may).
            self._answered_empty.add(ExclusiveStartShardId)
            desc["LastEvaluatedShardId"] = ExclusiveStartShardId
            return answer
        page = self.shards[start : start + self.per_page]
        desc["Shards"] = [self._shape(s) for s in page]
        if start + self.per_page < len(ids):
            desc["LastEvaluatedShardId"] = page[-1].id
        return answer

    @staticmethod
    def _shape(shard: Shard) -> dict[str, Any]:
        rng: dict[str, Any] = {"StartingSequenceNumber": str(shard.start)}
        if shard.closed:
            end = shard.records[-1]["dynamodb"]["SequenceNumber"] if shard.records else str(shard.start)
            rng["EndingSequenceNumber"] = end
        return {
            "ShardId": shard.id,
            "SequenceNumberRange": rng,
            **({"ParentShardId": shard.parent} if shard.parent else {}),
        }

    def _shard(self, shard_id: str) -> Shard:
        for shard in self.shards:
            if shard.id == shard_id:
                return shard
        raise error("ResourceNotFoundException", "GetShardIterator")

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str = ""
    ) -> dict[str, Any]:
        _param("StreamArn", StreamArn)
        _param("ShardId", ShardId)
        shard = self._shard(ShardId)
        if ShardIteratorType not in ("TRIM_HORIZON", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):  # LATEST: unused
            raise error("ValidationException", "GetShardIterator")
        if ShardIteratorType == "TRIM_HORIZON":
            return {"ShardIterator": f"{ShardId}|0|{self.empty}"}
        held = [r["dynamodb"]["SequenceNumber"] for r in shard.records]
        if SequenceNumber not in held:
            raise error("TrimmedDataAccessException", "GetShardIterator")
        after = ShardIteratorType == "AFTER_SEQUENCE_NUMBER"
        return {"ShardIterator": f"{ShardId}|{held.index(SequenceNumber) + after}|{self.empty}"}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        self.get_records_calls += 1
        if not 1 <= Limit <= 1000:  # as AWS: "Minimum value of 1. Maximum value of 1000."
            raise error("ValidationException", "GetRecords")
        shard_id, at, empty = ShardIterator.split("|")
        shard, start = self._shard(shard_id), int(at)
        if int(empty):  # a portion of the shard without records
            return {"Records": [], "NextShardIterator": f"{shard_id}|{start}|{int(empty) - 1}"}
        batch = shard.records[start : start + min(Limit, 2)]
        end = start + len(batch)
        if shard.closed and end >= len(shard.records):
            return {"Records": batch}
        return {"Records": batch, "NextShardIterator": f"{shard_id}|{end}|{self.empty if batch else 0}"}


class _Paginator:
    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3

    def paginate(self, Bucket: str, Prefix: str = "", Delimiter: str = "") -> Iterator[dict[str, Any]]:
        keys = sorted(k for b, k in self.s3.objects if b == Bucket and k.startswith(Prefix))
        if Delimiter:
            prefixes = sorted(
                {
                    Prefix + k[len(Prefix) :].split(Delimiter)[0] + Delimiter
                    for k in keys
                    if Delimiter in k[len(Prefix) :]
                }
            )
            for i in range(0, len(prefixes), 2):  # two a page, as S3 pages them (up to 1,000)
                yield {"CommonPrefixes": [{"Prefix": p} for p in prefixes[i : i + 2]]}
            if not prefixes:
                yield {}  # S3 leaves CommonPrefixes out of a page that has none
            return
        for i in range(0, len(keys), 2):  # two keys a page: every listing pages
            yield {"Contents": [{"Key": k} for k in keys[i : i + 2]]}
        if not keys:
            yield {}


class FakeS3:
    """Objects by (bucket, key): PutObject, GetObject, HeadObject, ListObjectsV2 (paged)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if (Bucket, Key) not in self.objects:
            raise error("NoSuchKey", "GetObject")
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def get_paginator(self, name: str) -> _Paginator:
        assert name == "list_objects_v2"
        return _Paginator(self)


class FakeDynamoDB:
    """A table's items by key ``k``; BatchWriteItem leaves one request unprocessed for the first ``unprocessed`` calls."""

    def __init__(self, *, unprocessed: int = 0, stream: dict[str, Any] | None = None) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.unprocessed, self.stream = unprocessed, stream
        self.calls: list[int] = []
        self.tags: dict[str, list[dict[str, str]]] = {}

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]], **_: Any) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        _param("RequestItems key", table)
        self.calls.append(len(requests))
        held = requests[-1:] if self.unprocessed and requests else []
        self.unprocessed -= bool(held)
        for request in requests[: len(requests) - len(held)]:
            if "PutRequest" in request:
                item = request["PutRequest"]["Item"]
                self.items[item["k"]["S"]] = item
            else:
                self.items.pop(request["DeleteRequest"]["Key"]["k"]["S"], None)
        return {"UnprocessedItems": {table: held} if held else {}}

    def describe_table(self, TableName: str) -> dict[str, Any]:
        _param("TableName", TableName)
        table: dict[str, Any] = {
            "TableName": TableName,
            "TableStatus": "ACTIVE",
            "TableArn": f"arn:aws:dynamodb:us-east-1:1:table/{TableName}",
        }
        if self.stream is not None:
            table["StreamSpecification"] = self.stream
            table["LatestStreamArn"] = f"{table['TableArn']}/stream/2026-12-01T00:00:00.000"
        return {"Table": table}

    def tag_resource(self, ResourceArn: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        self.tags.setdefault(ResourceArn, []).extend(Tags)
        return {}
