"""Reading a stream (ddb_backup.changes.stream): every shard of every DescribeStream page, in lineage order."""

from __future__ import annotations

import datetime as dt

from ddb_backup.changes.stream import TIP_PAGES, lineage_order, list_shards, read_shard
from tests.helpers.aws import LONG_SEQ, SHORT_SEQ, T0, FakeStreams, Shard, record


def test_list_shards_reads_every_page_of_describe_stream() -> None:
    # A table with many shards: DescribeStream answers them a few at a time (an empty page among them).
    shards = [Shard(f"shardId-{n:03d}", start=SHORT_SEQ + n) for n in range(7)]
    streams = FakeStreams(shards, per_page=2)
    listed, created = list_shards(streams, "arn")
    assert sorted(s["ShardId"] for s in listed) == [s.id for s in shards]
    assert created == T0
    assert streams.describes > 4  # it did page


def test_shards_sort_by_sequence_number_as_numbers_not_strings() -> None:
    # "9000...1" (21 digits) began before "1000...12" (29 digits), though it sorts after it as a string.
    later = {"ShardId": "later", "SequenceNumberRange": {"StartingSequenceNumber": str(LONG_SEQ)}}
    earlier = {"ShardId": "earlier", "SequenceNumberRange": {"StartingSequenceNumber": str(SHORT_SEQ)}}
    assert [s["ShardId"] for s in lineage_order([later, earlier])] == ["earlier", "later"]


def test_a_parent_comes_before_its_child_whatever_the_listing_order() -> None:
    child = {"ShardId": "child", "ParentShardId": "parent", "SequenceNumberRange": {"StartingSequenceNumber": "5"}}
    parent = {"ShardId": "parent", "SequenceNumberRange": {"StartingSequenceNumber": "7"}}
    assert [s["ShardId"] for s in lineage_order([child, parent])] == ["parent", "child"]


def _open_shard(empty: int) -> FakeStreams:
    records = [record(SHORT_SEQ + n, T0 + dt.timedelta(seconds=n), f"k{n}", "v") for n in range(5)]
    return FakeStreams([Shard("shardId-1", start=SHORT_SEQ, records=records)], empty=empty)


def test_empty_pages_before_records_do_not_end_the_reading_of_a_shard() -> None:
    # GetRecords "might take multiple calls to get to a portion of the shard that contains stream records".
    streams = _open_shard(empty=TIP_PAGES - 1)
    reads = list(read_shard(streams, "arn", "shardId-1"))
    assert [c["Keys"]["k"]["S"] for r in reads for c in r.records] == [f"k{n}" for n in range(5)]
    assert reads[-1].records == [] and not reads[-1].closed  # read to the open shard's tip


def test_the_tip_of_an_open_shard_is_known_by_empty_pages_running() -> None:
    streams = _open_shard(empty=0)
    reads = list(read_shard(streams, "arn", "shardId-1", after=str(SHORT_SEQ + 4)))
    assert all(not r.records for r in reads) and reads[-1].tip and not any(r.tip for r in reads[:-1])
    assert streams.get_records_calls == TIP_PAGES
