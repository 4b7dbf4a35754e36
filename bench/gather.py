"""An exact backup's finalize gathering N changes on the strict stream (issue 23 point 8): time, files, peak
memory, GetRecords calls; from the stream and from the change archive.

    .venv/bin/python -m bench.gather [changes] [chunk] [stream|archive|both]
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections import Counter
from typing import Any

from moto import mock_aws

from ddb_backup.aws.clients import client
from ddb_backup.changes import gather
from ddb_backup.changes.consistent import note_position
from ddb_backup.changes.gather import Limits
from ddb_backup.changes.lambda_event import handle
from ddb_backup.changes.stream import lineage_order
from devkit.strict.streams import StrictStreams

TABLE, BUCKET = "bench-Table", "bench-bucket"


def _archive(model: StrictStreams, streams: Any) -> None:
    [stream] = model.streams.values()
    for shard in lineage_order([s.describe() for s in stream.shards.values()]):
        records = [{**r, "awsRegion": "us-east-1"} for r in stream.shards[shard["ShardId"]].records]
        for start in range(0, len(records), 500):
            handle(
                client("s3"),
                streams,
                BUCKET,
                "p/",
                {"Records": records[start : start + 500], "shardId": shard["ShardId"]},
            )


def run(changes: int, chunk: int, archived: bool) -> dict[str, Any]:
    model = StrictStreams(shards=4, split_every=max(changes // 6, 50), empty_between=0.05)
    patches = model.patches()
    for patch in patches:
        patch.start()
    try:
        with mock_aws():
            client.cache_clear()
            s3, ddb, streams = client("s3"), client("dynamodb"), client("dynamodbstreams")
            s3.create_bucket(Bucket=BUCKET)
            ddb.create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
            position = note_position(ddb, streams, TABLE)
            for i in range(changes):
                ddb.put_item(TableName=TABLE, Item={"k": {"S": f"k{i % 5000}"}, "v": {"S": "x" * 200}})

            def after_the_moment(_: float) -> None:  # the table goes on changing on every shard; the archiver keeps up
                for i in range(200):
                    ddb.put_item(TableName=TABLE, Item={"k": {"S": f"after{i}"}})
                if archived:
                    _archive(model, streams)

            calls: Counter[str] = Counter()
            streams.meta.events.register("before-call.dynamodbstreams.*", lambda model, **_: calls.update([model.name]))
            tracemalloc.start()
            began = time.perf_counter()
            fields = gather.gather(
                s3,
                streams,
                BUCKET,
                f"p/{TABLE}/20261208T000000Z-0123abcd/",
                position,
                Limits(chunk=chunk, settle=0, archive_wait=0, sleep=after_the_moment),
            )
            seconds = time.perf_counter() - began
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert fields is not None
            return {
                "source": "archive" if archived else "stream",
                "changes": sum(e["records"] for e in fields["changes"]),
                "files": len(fields["changes"]),
                "seconds": round(seconds, 1),
                "peakMiB": round(peak / 2**20, 1),  # traced in process: moto's S3 keeps the files written too
                "writtenMiB": round(sum(e["bytes"] for e in fields["changes"]) / 2**20, 1),
                "GetRecords": calls["GetRecords"],
                "splits": model.splits,
            }
    finally:
        for patch in reversed(patches):
            patch.stop()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    sources = sys.argv[3] if len(sys.argv) > 3 else "both"
    for archived in [a for a, name in ((False, "stream"), (True, "archive")) if sources in (name, "both")]:
        print(run(n, size, archived), flush=True)
