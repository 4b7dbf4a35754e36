"""The strict stream itself (devkit.strict.streams) behaves as DynamoDB Streams does where a reader can go wrong,
and the project's reader (ddb_backup.changes.stream) reads it right through each behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.core.exceptions import JsonRESTError

from ddb_backup.aws.clients import client
from ddb_backup.changes.stream import list_shards, read_shard
from devkit.strict.streams import ITERATOR_TTL, RETENTION, StrictStreams

TABLE = "strict-Table"


@pytest.fixture
def table(aws: None, streams: StrictStreams) -> tuple[Any, str]:
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    return ddb, ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]


def _write(ddb: Any, n: int, value: str = "v") -> None:
    for i in range(n):
        ddb.put_item(TableName=TABLE, Item={"k": {"S": f"k{i:03d}"}, "v": {"S": value}})


def _read_all(arn: str) -> list[dict[str, Any]]:
    shards, _ = list_shards(client("dynamodbstreams"), arn)
    return [
        c for s in shards for page in read_shard(client("dynamodbstreams"), arn, s["ShardId"]) for c in page.records
    ]


def test_shards_split_with_lineage_and_every_change_is_read_once_in_key_order(
    table: tuple[Any, str], streams: StrictStreams
) -> None:
    ddb, arn = table
    _write(ddb, 100, "first")
    _write(ddb, 100, "second")  # splits at 40 records a shard: a key's changes cross from parent to child
    shards, _ = list_shards(client("dynamodbstreams"), arn)
    assert streams.splits >= 2 and len(shards) > 4
    ids = [s["ShardId"] for s in shards]
    assert all(ids.index(s["ParentShardId"]) < ids.index(s["ShardId"]) for s in shards if s.get("ParentShardId"))
    changes = _read_all(arn)
    assert len(changes) == 200 and len({c["seq"] for c in changes}) == 200
    last: dict[str, Any] = {}
    for c in sorted(changes, key=lambda c: int(c["seq"])):
        last[c["Keys"]["k"]["S"]] = c["NewImage"]["v"]["S"]
    assert set(last.values()) == {"second"}
    assert all(len(c["seq"]) >= 21 and "." not in c["time"] for c in changes)  # whole seconds, as AWS stamps


def test_describe_stream_pages(table: tuple[Any, str], streams: StrictStreams) -> None:
    ddb, arn = table
    streams.describe_page = 2
    _write(ddb, 100)
    page = client("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]
    assert len(page["Shards"]) == 2 and page["LastEvaluatedShardId"]
    shards, _ = list_shards(client("dynamodbstreams"), arn)
    assert len(shards) == len(streams.streams[arn].shards) > 2


def test_an_expired_iterator_is_renewed_after_the_last_change_read(
    table: tuple[Any, str], streams: StrictStreams
) -> None:
    ddb, arn = table
    streams.page = 3
    streams.split_every = None
    _write(ddb, 30)
    shard = next(iter(streams.streams[arn].shards))
    reader = read_shard(client("dynamodbstreams"), arn, shard)
    got = [c["seq"] for c in next(p for p in reader if p.records).records]
    streams.clock.advance(ITERATOR_TTL + 1)  # the reader paused past 15 minutes
    got += [c["seq"] for p in reader for c in p.records]
    held = [r["dynamodb"]["SequenceNumber"] for r in streams.streams[arn].shards[shard].records]
    assert got == held


def test_records_past_24_hours_are_trimmed_and_a_position_before_them_is_refused(
    table: tuple[Any, str], streams: StrictStreams
) -> None:
    ddb, arn = table
    streams.split_every = None
    _write(ddb, 8)
    shard = next(s for s in streams.streams[arn].shards.values() if s.records)
    first = shard.records[0]["dynamodb"]["SequenceNumber"]
    streams.clock.advance(RETENTION + 60)
    _write(ddb, 1, "later")  # any call trims
    with pytest.raises(ClientError, match="TrimmedDataAccessException"):
        client("dynamodbstreams").get_shard_iterator(
            StreamArn=arn, ShardId=shard.id, ShardIteratorType="AT_SEQUENCE_NUMBER", SequenceNumber=first
        )
    pages = list(read_shard(client("dynamodbstreams"), arn, shard.id, after=first))
    assert pages[0].trimmed  # the reader is told what it missed


def test_a_third_reader_of_a_shard_is_throttled(table: tuple[Any, str], streams: StrictStreams) -> None:
    ddb, arn = table
    _write(ddb, 4)
    shard = next(iter(streams.streams[arn].shards))
    api = client("dynamodbstreams")
    iterators = [
        api.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for _ in range(3)
    ]
    api.get_records(ShardIterator=iterators[0])
    api.get_records(ShardIterator=iterators[1])
    with pytest.raises(JsonRESTError, match="more than 2 readers"):  # the model itself: botocore would retry
        streams.get_records(iterators[2], 10)
    assert streams.throttled == 1
