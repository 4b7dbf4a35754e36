"""Reading a stream (ddb_backup.changes.stream): every shard of every DescribeStream page, in lineage order."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddb_backup.changes.stream import (
    TIP_PAGES,
    change_of,
    lineage_order,
    list_shards,
    read_shard,
    server_time,
    stream_of,
)
from ddb_backup.errors import BadInput
from tests.helpers.aws import LONG_SEQ, SHORT_SEQ, T0, FakeDynamoDB, FakeStreams, Shard, error, record


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


ENABLE = (
    "exact backups and change archives need a stream with NEW_IMAGE or NEW_AND_OLD_IMAGES; enable it with: "
    "aws dynamodb update-table --table-name T --stream-specification StreamEnabled=true,"
    "StreamViewType=NEW_AND_OLD_IMAGES (or name the table in the stack's ChangeArchiveTables parameter)"
)


@pytest.mark.parametrize(
    ("stream", "has"),
    [
        (None, "no stream"),
        ({"StreamEnabled": False, "StreamViewType": "NEW_IMAGE"}, "no stream"),
        ({"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}, "KEYS_ONLY"),
        ({"StreamEnabled": True, "StreamViewType": "OLD_IMAGE"}, "OLD_IMAGE"),
    ],
)
def test_a_table_without_a_stream_of_new_images_is_refused_saying_how_to_enable_one(stream: Any, has: str) -> None:
    with pytest.raises(BadInput) as refused:
        stream_of(FakeDynamoDB(stream=stream), "T")
    assert str(refused.value) == f"table T has {has}: {ENABLE}"


@pytest.mark.parametrize("view", ["NEW_IMAGE", "NEW_AND_OLD_IMAGES"])
def test_a_table_with_a_stream_of_new_images_gives_its_arn(view: str) -> None:
    arn = stream_of(FakeDynamoDB(stream={"StreamEnabled": True, "StreamViewType": view}), "T")
    assert arn == "arn:aws:dynamodb:us-east-1:1:table/T/stream/2026-12-01T00:00:00.000"


def test_a_stream_being_enabled_has_no_arn_yet_and_is_refused() -> None:
    class NoArn(FakeDynamoDB):
        def describe_table(self, TableName: str) -> dict[str, Any]:
            answer = super().describe_table(TableName)
            del answer["Table"]["LatestStreamArn"]
            return answer

    with pytest.raises(BadInput, match=r"^table T has NEW_IMAGE: exact backups"):
        stream_of(NoArn(stream={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}), "T")


@pytest.mark.usefixtures("new_york")
def test_a_record_is_a_change_line_with_its_time_in_utc_and_a_remove_has_no_image() -> None:
    put = change_of(record(12, T0, "a", "v"), "shardId-1")
    assert put == {
        "seq": "12",
        "shard": "shardId-1",
        "time": "2026-12-01T10:00:00+00:00",
        "event": "MODIFY",
        "Keys": {"k": {"S": "a"}},
        "NewImage": {"k": {"S": "a"}, "v": {"S": "v"}},
    }
    removed = change_of(record(13, T0, "a", None), "shardId-1")
    assert removed["event"] == "REMOVE" and "NewImage" not in removed
    for stamp in (T0.replace(tzinfo=None), T0.timestamp(), int(T0.timestamp()), "2026-12-01T05:00:00-05:00"):
        other = record(12, T0, "a", "v")
        other["dynamodb"]["ApproximateCreationDateTime"] = stamp
        assert change_of(other, "shardId-1")["time"] == "2026-12-01T10:00:00+00:00", stamp


def test_a_record_without_its_new_image_is_refused_naming_it() -> None:
    bare = record(12, T0, "a", "v")
    del bare["dynamodb"]["NewImage"]
    with pytest.raises(BadInput) as refused:
        change_of(bare, "shardId-1")
    assert str(refused.value) == "stream record 12 of shardId-1 has no NewImage: the stream must carry new images"


def test_a_lambda_events_images_are_kept_in_wire_form_and_checked() -> None:
    wire = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "5", "ApproximateCreationDateTime": T0.timestamp(),
            "Keys": {"k": {"B": "AAE="}}, "NewImage": {"k": {"B": "AAE="}}}}  # fmt: skip
    assert change_of(wire, "s", wire=True)["NewImage"] == {"k": {"B": "AAE="}}
    assert change_of(record(5, T0, "a", "v"), "s")["NewImage"]["k"] == {"S": "a"}
    wire["dynamodb"]["NewImage"] = {"k": {"Q": "1"}}
    with pytest.raises(BadInput):
        change_of(wire, "s", wire=True)


@pytest.mark.usefixtures("new_york")
def test_the_moment_is_dynamodbs_date_header_and_a_response_without_one_is_refused() -> None:
    moment = server_time({"ResponseMetadata": {"HTTPHeaders": {"date": "Tue, 01 Dec 2026 05:00:00 -0500"}}})
    assert moment == T0 and moment.utcoffset() == dt.timedelta(0)
    for response in ({}, {"ResponseMetadata": {}}, {"ResponseMetadata": {"HTTPHeaders": {}}}):
        with pytest.raises(BadInput, match=r"^the DynamoDB Streams response has no Date header: the moment cannot"):
            server_time(response)


@pytest.mark.usefixtures("new_york")
def test_the_creation_time_of_the_stream_is_its_first_pages_as_an_aware_utc_time() -> None:
    streams = FakeStreams([Shard(f"shardId-{n}", start=SHORT_SEQ + n) for n in range(3)], per_page=1)
    assert list_shards(streams, "arn")[1] == T0
    for created in (T0.timestamp(), T0.replace(tzinfo=None), T0.isoformat()):  # as the SDK or an event gives it
        streams.created = created  # type: ignore[assignment]
        assert list_shards(streams, "arn")[1] == T0, created


def test_a_binary_key_from_the_sdk_is_written_as_base64_and_a_wire_image_is_checked_as_a_stream_records() -> None:
    sdk = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "5", "ApproximateCreationDateTime": T0,
           "Keys": {"k": {"B": b"\x00\x01"}}, "NewImage": {"k": {"B": b"\x00\x01"}}}}  # fmt: skip
    assert change_of(sdk, "s")["Keys"] == {"k": {"B": "AAE="}}
    wire = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "5", "ApproximateCreationDateTime": T0.timestamp(),
            "Keys": {"k": {"Q": "1"}}}}  # fmt: skip
    with pytest.raises(BadInput, match=r"^stream record\.k: unknown DynamoDB type 'Q'"):
        change_of(wire, "s", wire=True)


class _Expiring(FakeStreams):
    """GetRecords refuses the first iterator as expired (15 minutes), or raises ``code`` every time."""

    def __init__(self, shards: list[Shard], code: str = "") -> None:
        super().__init__(shards)
        self.code, self.expired, self.asked = code, False, []

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        if request["StreamArn"] != "arn":  # another stream's shard is not found, as on AWS
            raise error("ResourceNotFoundException", "GetShardIterator")
        self.asked.append(request.get("SequenceNumber"))
        return super().get_shard_iterator(**request)

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        if self.code:
            raise error(self.code, "GetRecords")
        if ShardIterator.split("|")[1] == "2" and not self.expired:
            self.expired = True
            raise error("ExpiredIteratorException", "GetRecords")
        return super().get_records(ShardIterator, Limit)


def test_an_expired_iterator_is_renewed_after_the_last_record_read() -> None:
    records = [record(SHORT_SEQ + n, T0, f"k{n}", "v") for n in range(5)]
    streams = _Expiring([Shard("shardId-1", start=SHORT_SEQ, records=records, closed=True)])
    reads = list(read_shard(streams, "arn", "shardId-1"))
    assert [c["Keys"]["k"]["S"] for r in reads for c in r.records] == [f"k{n}" for n in range(5)]
    assert streams.asked == [None, str(SHORT_SEQ + 1)] and reads[-1].closed
    assert {r.shard for r in reads} == {"shardId-1"} and {c["shard"] for r in reads for c in r.records} == {"shardId-1"}


@pytest.mark.parametrize("code", ["AccessDeniedException", "ValidationException"])  # sorting before and after
def test_any_other_error_of_get_records_is_raised(code: str) -> None:
    streams = _Expiring([Shard("shardId-1", start=SHORT_SEQ, records=[record(SHORT_SEQ, T0, "a", "v")])], code)
    with pytest.raises(ClientError, match=code):
        list(read_shard(streams, "arn", "shardId-1"))


class _Refusing(FakeStreams):
    """GetShardIterator refuses an iterator after a sequence number with ``code``."""

    def __init__(self, shards: list[Shard], code: str) -> None:
        super().__init__(shards)
        self.code = code

    def get_shard_iterator(self, **request: Any) -> dict[str, Any]:
        if request.get("SequenceNumber"):
            raise error(self.code, "GetShardIterator")
        return super().get_shard_iterator(**request)


@pytest.mark.parametrize("code", ["AccessDeniedException", "ValidationException"])
def test_an_iterator_refused_for_another_reason_than_a_trim_is_an_error_not_a_reading_from_the_start(code: str) -> None:
    streams = _Refusing([Shard("shardId-1", start=SHORT_SEQ, records=[record(SHORT_SEQ, T0, "a", "v")])], code)
    with pytest.raises(ClientError, match=code):
        list(read_shard(streams, "arn", "shardId-1", after=str(SHORT_SEQ)))
    assert streams.get_records_calls == 0


def test_records_trimmed_after_the_last_one_read_are_said_so_on_the_first_page_only() -> None:
    records = [record(SHORT_SEQ + n, T0, f"k{n}", "v") for n in range(5)]
    streams = FakeStreams([Shard("shardId-1", start=SHORT_SEQ, records=records, closed=True)])
    reads = list(read_shard(streams, "arn", "shardId-1", after="1"))  # no longer in the stream
    assert [r.trimmed for r in reads] == [True, False, False]
    assert [c["Keys"]["k"]["S"] for r in reads for c in r.records] == [f"k{n}" for n in range(5)]
    assert [r.trimmed for r in read_shard(streams, "arn", "shardId-1", after=str(SHORT_SEQ))] == [False, False]


def test_a_shard_that_is_gone_is_an_error_not_a_trim() -> None:
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        list(read_shard(FakeStreams([]), "arn", "shardId-9", after="1"))


def test_reading_stops_at_the_page_the_caller_says() -> None:
    records = [record(SHORT_SEQ + n, T0, f"k{n}", "v") for n in range(5)]
    streams = FakeStreams([Shard("shardId-1", start=SHORT_SEQ, records=records, closed=True)])
    reads = list(read_shard(streams, "arn", "shardId-1", stop=lambda batch: batch[-1]["Keys"]["k"]["S"] == "k3"))
    assert [len(r.records) for r in reads] == [2, 2] and streams.get_records_calls == 2
