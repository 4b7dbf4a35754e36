"""The archiver Lambda on the local stack: moto's event source mapping calls it on each write."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.changes import archive
from ddb_backup.changes.lambda_event import handle
from ddb_backup_cli.main import main
from devkit.emulator import LocalStack
from tests.conftest import canonical, table_items

ARN: dict[str, str] = {}


def _create_table() -> None:
    ddb = client("dynamodb")
    ddb.create_table(
        TableName="live-Table",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    ARN["stream"] = ddb.describe_table(TableName="live-Table")["Table"]["LatestStreamArn"]


def test_the_stack_archives_every_write_and_restores_to_a_time() -> None:
    # the table exists before the deploy, with a NEW_IMAGE stream the stack keeps
    stack = LocalStack(env={"PART_BYTES": str(64 * 1024)}, before_deploy=_create_table)
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": "live-Table"}
    with stack:
        ddb, s3 = client("dynamodb"), client("s3")
        bucket = stack.physical["BackupBucket"]
        prefix = stack.functions[next(iter(stack.functions))].environment.get("BACKUP_PREFIX", "")
        assert (
            main(
                [
                    "-q",
                    "backup",
                    "--table",
                    "live-Table",
                    "--to",
                    f"s3://{bucket}/{prefix}",
                    "--consistent",
                    "--settle",
                    "0",
                ]
            )
            == 0
        )
        model: dict[str, Any] = {}
        moments = []
        for i in range(30):  # stream times have whole seconds: a group of writes a second, a moment after each
            item = {"k": {"S": f"k{i % 7}"}, "v": {"N": str(i)}, "b": {"B": bytes([i])}}
            ddb.put_item(TableName="live-Table", Item=item)
            model[f"k{i % 7}"] = item
            if i % 4 == 3:
                ddb.delete_item(TableName="live-Table", Key={"k": {"S": f"k{i % 5}"}})
                model.pop(f"k{i % 5}", None)
            if i % 6 == 5:
                moments.append((_end_of_this_second(), sorted(map(canonical, model.values()))))
        stack.streams.deliver()  # per shard, concurrently, in batches, some twice
        archived = [
            change
            for key in archive.list_keys(s3, bucket, f"{prefix}live-Table/changes/")
            if key.endswith(".jsonl.gz")
            for change in archive.get_changes(s3, bucket, key)
        ]
        assert len({c["seq"] for c in archived}) == 30 + 7  # every put and delete, each at least once
        assert {c["shard"] for c in archived} <= set(stack.streams.streams[ARN["stream"]].shards)  # real shard ids
        source = f"s3://{bucket}/{prefix}live-Table/"
        for n, (when, expected) in enumerate(moments):
            assert main(["-q", "restore", source, "--table", f"live-at-{n}", "--to-time", when.isoformat()]) == 0
            assert sorted(map(canonical, table_items(ddb, f"live-at-{n}"))) == expected
        # a change the archiver has not received yet: refused, naming the shard that holds it
        ddb.put_item(TableName="live-Table", Item={"k": {"S": "late"}})
        late = _end_of_this_second()
        assert main(["-q", "restore", source, "--table", "live-late", "--to-time", late.isoformat()]) == 1
        stack.streams.deliver()
        assert main(["-q", "restore", source, "--table", "live-late", "--to-time", late.isoformat()]) == 0


def _end_of_this_second() -> dt.datetime:
    """The last instant of the current second, once it is past (stream times have whole seconds)."""
    moment = dt.datetime.now(dt.UTC).replace(microsecond=999999)
    time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
    return moment


def test_a_batch_the_mapping_dropped_becomes_a_gap(s3: Any) -> None:
    s3.create_bucket(Bucket="gap-bucket")
    stream = "arn:aws:dynamodb:us-east-1:123456789012:table/gap-Table/stream/2026-12-01T00:00:00.000"
    info = {
        "DDBStreamBatchInfo": {
            "shardId": "shardId-0001",
            "startSequenceNumber": "100",
            "endSequenceNumber": "180",
            "approximateArrivalOfFirstRecord": "2026-12-01T10:02:00Z",
            "approximateArrivalOfLastRecord": "2026-12-01T10:04:00Z",
            "streamArn": stream,
        }
    }
    counts = handle(s3, None, "gap-bucket", "b/", {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(info)}]})
    assert counts == {"changes": 0, "gaps": 1}
    [gap] = archive.gaps(s3, "gap-bucket", "b/gap-Table/")
    assert gap["shard"] == "shardId-0001" and "100 to 180" in gap["reason"]
