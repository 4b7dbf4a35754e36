"""``python -m bench.totime``: a restore to a time that applies N changes, through the restore machine's steps.

For each ``--counts`` (default 100k, 300k, 1M): an exact backup consistent at T0 and an archive of N changes
after it (1,000 changes a file, as the archiver writes them; keys drawn from N/2, so the fold has repeats;
puts of ~200-byte items and 20 % deletes), then the restore machine's Lambda calls as they run on AWS:
*Partition the changes* (called again while it answers ChangesPending), then one *Apply the changes* child
per partition. Each call is measured alone: its peak of Python allocations (tracemalloc) and its time.

S3 is a directory on disk (the bench measures our code, not moto's memory); DynamoDB is an in-process
stand-in that serializes each BatchWriteItem to JSON, as botocore does, counts it and answers "all
processed" (no network: on AWS each child's writes are held to its share of the table's write rate, so the
apply time here is the pipeline's own floor, one child after another). Not a timed test: prints one table
and saves bench/work/totime.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bench.servers import WORK
from ddb_backup.changes import archive
from ddb_backup.errors import ChangesPending
from ddb_backup.restore.partitioned.machine import apply_task, changes_outcome, partition_run

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
BUCKET, TABLE_DIR, BACKUP, PREFIX = "bench", "p/T/", "20261201T095900Z-0123abcd", "runs/r/"
PER_FILE = 1000


class DiskS3:
    """The S3 calls the restore's steps make, on a directory: Put/GetObject (streamed), ListObjectsV2 with sizes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        path = self._path(Bucket, Key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(Body)
        return {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        path = self._path(Bucket, Key)
        if not path.is_file():
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": Key}}, "GetObject")
        return {"Body": path.open("rb")}

    def get_paginator(self, name: str) -> Any:
        s3 = self

        class Pages:
            def paginate(self, Bucket: str, Prefix: str = "", **_: Any) -> Iterator[dict[str, Any]]:
                base = s3.root / Bucket
                found = sorted((str(p.relative_to(base)), p.stat().st_size) for p in base.rglob("*") if p.is_file())
                yield {"Contents": [{"Key": k, "Size": n} for k, n in found if k.startswith(Prefix)]}

        return Pages()


class CountingDynamoDB:
    """BatchWriteItem, serialized and counted, every request processed."""

    def __init__(self) -> None:
        self.puts = self.deletes = self.bytes = 0

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]], **_: Any) -> dict[str, Any]:
        self.bytes += len(json.dumps(RequestItems, default=str))
        for request in next(iter(RequestItems.values())):
            self.puts += "PutRequest" in request
            self.deletes += "DeleteRequest" in request
        return {"UnprocessedItems": {}}


def _change(n: int, rng: random.Random, keys: int) -> dict[str, Any]:
    key = {"pk": {"S": f"user#{rng.randrange(keys):09d}"}}
    when = (T0 + dt.timedelta(milliseconds=n)).replace(microsecond=0).isoformat()
    change = {"seq": str(10**20 + n), "shard": "shardId-0001", "time": when, "Keys": key}
    if rng.random() < 0.2:
        return {**change, "event": "REMOVE"}
    image = {**key, "n": {"N": str(n)}, "s": {"S": rng.randbytes(60).hex()}, "b": {"BOOL": True}}
    return {**change, "event": "MODIFY", "NewImage": image}


def build(s3: DiskS3, count: int) -> dt.datetime:
    """An exact backup at T0 (no changes of its own) and ``count`` archived changes after it; the last one's time."""
    rng = random.Random(count)
    directory = f"{TABLE_DIR}{BACKUP}/"
    manifest = {"backupId": BACKUP, "consistentAt": T0.isoformat(), "changesFrom": T0.isoformat(), "changes": []}
    s3.put_object(BUCKET, directory + "manifest.json", json.dumps(manifest).encode())
    last = T0
    for start in range(0, count, PER_FILE):
        batch = [_change(n, rng, max(1, count // 2)) for n in range(start, min(count, start + PER_FILE))]
        s3.put_object(BUCKET, archive.archive_key(TABLE_DIR, batch), archive.encode(batch))
        last = dt.datetime.fromisoformat(batch[-1]["time"])
    exact = {"source": f"s3://{BUCKET}/{directory}", "consistentAt": T0.isoformat()}
    exact.update(toTime=last.isoformat(), tableDir=TABLE_DIR)
    plan = {"tables": [{"index": 0, "target": "replay-1", "writeRate": 0, "exact": exact}]}
    s3.put_object(BUCKET, PREFIX + "plan.json", json.dumps(plan).encode())
    return last


def measured(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """One Lambda call: its result (or the exception it raised), its peak allocations in MiB, its seconds."""
    tracemalloc.start()
    began = time.perf_counter()
    try:
        result: Any = call()
    except ChangesPending as exc:
        result = exc
    seconds = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, peak, seconds


def one(count: int, budget: float) -> dict[str, Any]:
    root = WORK / f"totime-{count}"
    shutil.rmtree(root, ignore_errors=True)
    s3, ddb = DiskS3(root), CountingDynamoDB()
    build(s3, count)
    split_calls: list[tuple[float, float]] = []
    while True:
        run, peak, seconds = measured(lambda: partition_run(s3, BUCKET, PREFIX, concurrency=40, budget=budget))
        split_calls.append((peak, seconds))
        if not isinstance(run, ChangesPending):
            break
    items = json.loads((root / BUCKET / run["itemsKey"]).read_bytes())
    apply_calls = []
    for item in items:
        done, peak, seconds = measured(lambda item=item: apply_task(ddb, s3, BUCKET, PREFIX, item))
        assert done["done"]
        apply_calls.append((peak, seconds))
    row, problems = changes_outcome(
        s3, BUCKET, PREFIX, json.loads((root / BUCKET / PREFIX / "plan.json").read_bytes())["tables"][0]
    )
    assert not problems, problems
    assert ddb.puts + ddb.deletes == row["changesApplied"]
    shutil.rmtree(root, ignore_errors=True)
    return {
        "changes": count,
        "applied": row["changesApplied"],
        "partitions": row["partitions"],
        "splitCalls": len(split_calls),
        "splitSeconds": round(sum(s for _, s in split_calls), 1),
        "splitPeakMiB": round(max(p for p, _ in split_calls), 1),
        "applySeconds": round(sum(s for _, s in apply_calls), 1),
        "applyPeakMiB": round(max(p for p, _ in apply_calls), 1),
        "applyLongestCall": round(max(s for _, s in apply_calls), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.totime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="100000,300000,1000000", help="changes per run, comma-separated")
    parser.add_argument("--budget", type=float, default=600.0, help="a split call's seconds before ChangesPending")
    args = parser.parse_args(argv)
    rows = []
    for count in (int(c) for c in args.counts.split(",")):
        rows.append(one(count, args.budget))
        print(json.dumps(rows[-1]), flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "totime.json").write_text(json.dumps(rows, indent=1))
    print(
        f"\n{'changes':>10} {'applied':>9} {'parts':>5} {'split s':>8} {'split MiB':>9} {'apply s':>8} {'apply MiB':>9}"
    )
    for r in rows:
        print(
            f"{r['changes']:>10,} {r['applied']:>9,} {r['partitions']:>5} {r['splitSeconds']:>8} "
            f"{r['splitPeakMiB']:>9} {r['applySeconds']:>8} {r['applyPeakMiB']:>9}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
