"""A DynamoDB Streams client with shards as a test lays them out (moto keeps one shard, never splits or trims)."""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from typing import Any

from botocore.exceptions import ClientError

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def record(seq: int, minute: float, key: str, value: str | None) -> dict[str, Any]:
    """A stream record (client form) at ``T0 + minute``: put ``value`` at ``key``, or remove it (None)."""
    body: dict[str, Any] = {
        "SequenceNumber": str(seq),
        "ApproximateCreationDateTime": T0 + dt.timedelta(minutes=minute),
        "Keys": {"k": {"S": key}},
    }
    if value is not None:
        body["NewImage"] = {"k": {"S": key}, "v": {"S": value}, "b": {"B": value.encode()}}
    return {"eventName": "REMOVE" if value is None else "MODIFY", "dynamodb": body}


class FakeStreams:
    """Shards: id -> (parent id or None, records, closed); a sequence number no longer held is trimmed."""

    def __init__(self, shards: dict[str, tuple[str | None, list[dict[str, Any]], bool]]) -> None:
        self.shards = shards
        self.page = 2  # records a GetRecords returns: several batches a shard

    def describe_stream(self, StreamArn: str, **_: Any) -> dict[str, Any]:
        out = []
        for shard, (parent, records, closed) in self.shards.items():
            first = records[0]["dynamodb"]["SequenceNumber"] if records else "0"
            rng: dict[str, Any] = {"StartingSequenceNumber": first}
            if closed:
                rng["EndingSequenceNumber"] = records[-1]["dynamodb"]["SequenceNumber"]
            out.append({"ShardId": shard, "SequenceNumberRange": rng, **({"ParentShardId": parent} if parent else {})})
        return {
            "StreamDescription": {"Shards": out[::-1], "CreationRequestDateTime": T0 - dt.timedelta(days=1)},
            "ResponseMetadata": {"HTTPHeaders": {"date": email.utils.formatdate(time.time(), usegmt=True)}},
        }

    def get_shard_iterator(
        self, StreamArn: str, ShardId: str, ShardIteratorType: str, SequenceNumber: str = ""
    ) -> dict[str, Any]:
        records = self.shards[ShardId][1]
        if ShardIteratorType == "TRIM_HORIZON":
            return {"ShardIterator": f"{ShardId}|0"}
        held = [r["dynamodb"]["SequenceNumber"] for r in records]
        if SequenceNumber not in held:  # older than the shard's oldest record: trimmed (24 h retention)
            raise ClientError(
                {"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}}, "GetShardIterator"
            )
        return {"ShardIterator": f"{ShardId}|{held.index(SequenceNumber) + 1}"}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        shard, _, at = ShardIterator.partition("|")
        _, records, closed = self.shards[shard]
        start = int(at)
        batch = records[start : start + min(Limit, self.page)]
        end = start + len(batch)
        done = closed and end >= len(records)
        return {"Records": batch, **({} if done else {"NextShardIterator": f"{shard}|{end}"})}
