"""An exact backup's changes gathered bounded and checkpointed (issue 23 point 8), on the strict stream.

Each test checks the gathered changes against the strict stream's own records: every change of the shards
open at the scan's start (and their descendants) stamped from a second before the scan to ``consistentAt``,
each once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.changes import gather
from ddb_backup.changes.consistent import MARGIN, Position, backup_changes, note_position
from ddb_backup.changes.gather import Limits
from ddb_backup.changes.lambda_event import handle
from ddb_backup.changes.stream import lineage_order
from ddb_backup.names import utc_time
from devkit.strict.streams import StrictStreams

BUCKET = "gather-bucket"
TABLE = "gather-Table"
DIRECTORY = f"p/{TABLE}/20261208T000000Z-0123abcd/"


@pytest.fixture
def env(aws: None, streams: StrictStreams) -> tuple[Any, Any, StrictStreams]:
    client("s3").create_bucket(Bucket=BUCKET)
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return ddb, client("dynamodbstreams"), streams


def _write(ddb: Any, n: int, tag: str) -> None:
    """``n`` changes over 40 keys: puts, updates and a delete every fifth."""
    for i in range(n):
        key = {"k": {"S": f"k{i % 40:02d}"}}
        if i % 5 == 4:
            ddb.delete_item(TableName=TABLE, Key=key)
        else:
            ddb.put_item(TableName=TABLE, Item={**key, "v": {"S": f"{tag}{i}"}, "b": {"B": tag.encode()}})


def _scanned(env: tuple[Any, Any, StrictStreams]) -> Position:
    """Changes, a split, the position noted at the scan's start, then changes and a split during the scan."""
    ddb, streams, _ = env
    _write(ddb, 240, "before")  # split_every=40: shards split before the scan
    position = note_position(ddb, streams, TABLE)
    _write(ddb, 150, "during")  # and during it
    return position


def _expected(model: StrictStreams, position: Position, consistent_at: str, every_shard: bool = False) -> list[str]:
    """Every sequence number gather must store, from the strict stream's own records."""
    [stream] = model.streams.values()
    wanted = set(stream.shards) if every_shard else set(position.shards)
    for shard in lineage_order([s.describe() for s in stream.shards.values()]):
        if shard.get("ParentShardId") in wanted:
            wanted.add(shard["ShardId"])
    since, until = (position.started - MARGIN).timestamp(), utc_time(consistent_at).timestamp()
    return sorted(
        r["dynamodb"]["SequenceNumber"]
        for sid in wanted
        for r in stream.shards[sid].records
        if since <= r["dynamodb"]["ApproximateCreationDateTime"] <= until
    )


def _stored(fields: dict[str, Any]) -> list[str]:
    return sorted(c["seq"] for c in backup_changes(client("s3"), BUCKET, DIRECTORY, fields))


def _count_get_records(streams: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    streams.meta.events.register("before-call.dynamodbstreams.*", lambda model, **_: calls.update([model.name]))
    return calls


def _limits(**kwargs: Any) -> Limits:
    return Limits(**{"settle": 0, "sleep": lambda _: None, "archive_wait": 0, **kwargs})


def test_a_finalize_stopped_by_its_deadline_goes_on_from_its_checkpoint_to_the_same_changes(env: Any) -> None:
    _, streams, model = env
    position = _scanned(env)
    model.page = 7  # several pages a shard
    clock = iter(range(10**6))
    # the Lambda's time runs out after a few pages, five times in a row: each call goes on where the last stopped
    calls = 0
    fields = None
    while fields is None:
        calls += 1
        budget = next(clock) + 6
        fields = gather.gather(
            client("s3"),
            streams,
            BUCKET,
            DIRECTORY,
            position,
            _limits(chunk=10, time_left=lambda b=budget: b - next(clock)),
        )
        assert calls < 60
    assert calls > 3  # it did stop, and go on
    stored = _stored(fields)
    assert stored == sorted(set(stored))  # each change once: a resumed call repeats nothing
    assert stored == _expected(model, position, fields["consistentAt"])
    assert len(stored) > 100 and model.splits >= 2


def test_a_finalize_that_died_mid_read_redoes_only_the_work_since_its_checkpoint(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, streams, model = env
    position = _scanned(env)
    model.page = 5
    real = model.get_records
    reads = {"left": 12}

    def dies(token: str, limit: int) -> dict[str, Any]:  # the Lambda is killed: nothing flushed, no checkpoint
        reads["left"] -= 1
        if reads["left"] < 0:
            raise SystemExit("killed")
        return real(token, limit)

    monkeypatch.setattr(model, "get_records", dies)
    with pytest.raises(SystemExit):
        gather.gather(client("s3"), streams, BUCKET, DIRECTORY, position, _limits(chunk=8))
    assert client("s3").get_object(Bucket=BUCKET, Key=DIRECTORY + gather.CHECKPOINT)
    monkeypatch.setattr(model, "get_records", real)
    fields = gather.gather(client("s3"), streams, BUCKET, DIRECTORY, position, _limits(chunk=8))
    assert fields is not None
    stored = _stored(fields)
    assert stored == sorted(set(stored)) == _expected(model, position, fields["consistentAt"])


def test_changes_are_written_in_files_of_a_bounded_size_as_they_are_read(env: Any) -> None:
    _, streams, model = env
    position = _scanned(env)
    model.page = 4
    fields = gather.gather(client("s3"), streams, BUCKET, DIRECTORY, position, _limits(chunk=10))
    assert fields is not None
    sizes = [entry["records"] for entry in fields["changes"]]
    assert len(sizes) >= 10 and max(sizes) <= 10 + 4 - 1  # a file is written once 10 are held: one page more at most
    assert sum(sizes) == len(_expected(model, position, fields["consistentAt"]))


def _archive_everything(model: StrictStreams, streams: Any) -> None:
    """What the archiver Lambda does with what the mapping delivers: every record, per shard, parents first."""
    [stream] = model.streams.values()
    for shard in lineage_order([s.describe() for s in stream.shards.values()]):
        records = [{**r, "awsRegion": "us-east-1"} for r in stream.shards[shard["ShardId"]].records]
        for start in range(0, len(records), 10):
            event = {"Records": records[start : start + 10], "shardId": shard["ShardId"]}
            handle(client("s3"), streams, BUCKET, "p/", event)


def test_with_a_change_archive_finalize_reads_the_archive_and_no_shard_of_the_stream(env: Any) -> None:
    """The nightly exact backup of an archived table is not a second reader of its shards."""
    ddb, streams, model = env
    position = _scanned(env)

    def after_the_moment(_: float) -> None:  # the settle: the table goes on changing, the archiver keeps up
        for i in range(160):  # on every shard
            ddb.put_item(TableName=TABLE, Item={"k": {"S": f"after{i}"}})
        _archive_everything(model, streams)

    calls = _count_get_records(streams)
    fields = gather.gather(
        client("s3"), streams, BUCKET, DIRECTORY, position, _limits(chunk=25, sleep=after_the_moment)
    )
    assert fields is not None
    assert calls["GetRecords"] == 0 and calls["GetShardIterator"] == 0 and calls["DescribeStream"] > 0
    stored = _stored(fields)
    # every shard's changes of the span (the archive also holds those a closed shard had in the second before
    # the scan: harmless, the scan saw them and later changes follow them); each once, though archived twice
    assert stored == _expected(model, position, fields["consistentAt"], every_shard=True)
    assert len(fields["changes"]) > 1


def test_a_shard_the_archive_cannot_vouch_for_is_read_from_the_stream_after_its_last_archived_change(
    env: Any,
) -> None:
    """A quiet shard (no change past the moment) may hold a change the archiver has not received: read it."""
    ddb, streams, model = env
    position = _scanned(env)
    _archive_everything(model, streams)
    ddb.put_item(TableName=TABLE, Item={"k": {"S": "late"}})  # made before the moment, not archived yet
    calls = _count_get_records(streams)
    fields = gather.gather(client("s3"), streams, BUCKET, DIRECTORY, position, _limits())
    assert fields is not None
    stored = _stored(fields)
    assert stored == _expected(model, position, fields["consistentAt"], every_shard=True)
    late = next(c for c in backup_changes(client("s3"), BUCKET, DIRECTORY, fields) if c["Keys"]["k"]["S"] == "late")
    assert late and calls["GetRecords"]


def test_a_shard_closed_before_the_scan_and_trimmed_during_it_does_not_fail_the_backup(env: Any) -> None:
    """It holds no change made after the scan began: only the shards open then (and their children) are read."""
    ddb, streams, model = env
    _write(ddb, 240, "old")  # shards split: the first ones close
    [stream] = model.streams.values()
    closed = [s.id for s in stream.shards.values() if s.closed is not None]
    position = note_position(ddb, streams, TABLE)
    assert closed and not set(closed) & position.shards
    _write(ddb, 30, "new")
    for shard in closed:  # 24 h after they closed, they leave the stream
        del stream.shards[shard]
    fields = gather.gather(client("s3"), streams, BUCKET, DIRECTORY, position, _limits())
    assert fields is not None
    assert _stored(fields) == _expected(model, position, fields["consistentAt"])
