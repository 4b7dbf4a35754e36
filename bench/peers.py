"""Work the peer comparison runs in child processes (so each has its own CPU time and peak RSS).

``python -m bench.peers load --port P --table T --items N``
    create ``T`` on the DynamoDB at P and fill it with N realistic ~1 KB items;
``python -m bench.peers floor-scan --port P --table T --segments S``
    the floor: a bare parallel boto3 scan that discards what it reads;
``python -m bench.peers floor-write --port P --table U --source FILE``
    the restore floor: items already in memory (read before the clock starts),
    parallel boto3 ``batch_write_item`` of 25, resending UnprocessedItems;
``python -m bench.peers core-restore --source s3://... --table U``
    ddb-backup's restore on its Lambda core: the target prepared as the restore
    state machine does, then every part as ``restore_part`` writes it, parts in parallel.

Each prints one JSON line; ``seconds`` there, when present, is the timed part.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from bench.replay import ITEM_SIZE, KEYS

WORKERS = 4


def ddb_client(port: int | None = None) -> Any:
    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
    kwargs: dict[str, Any] = {"endpoint_url": f"http://127.0.0.1:{port}"} if port else {}
    return session.client(
        "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=64), **kwargs
    )


def load(port: int, table: str, count: int) -> dict[str, Any]:
    """Create and fill ``table`` (lines built once and sent as RawItems: loading is not what is measured)."""
    from ddb_backup.format.ddbjson import line_from_client_item
    from ddb_backup.restore import fastwrite
    from devkit import sample

    ddb = ddb_client(port)
    sample.create_table(ddb, table, KEYS)
    fastwrite.install(ddb)

    def send(first: int) -> int:
        rng = random.Random(first)
        lines = [
            line_from_client_item(sample.make_item(KEYS, i, rng, ITEM_SIZE))[:-1]
            for i in range(first, min(first + 500, count))
        ]
        for at in range(0, len(lines), 25):
            requests = [{"PutRequest": {"Item": fastwrite.RawItem(x, "load")}} for x in lines[at : at + 25]]
            for attempt in range(50):
                out = ddb.batch_write_item(RequestItems={table: requests})
                requests = out.get("UnprocessedItems", {}).get(table, [])
                if not requests:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            else:
                raise RuntimeError("dynalite left items unprocessed")
        return len(lines)

    with ThreadPoolExecutor(WORKERS) as pool:
        written = sum(pool.map(send, range(0, count, 500)))
    return {"items": written}


def floor_scan(port: int, table: str, segments: int) -> dict[str, Any]:
    ddb = ddb_client(port)

    def segment(s: int) -> int:
        request: dict[str, Any] = {"TableName": table, "Segment": s, "TotalSegments": segments}
        seen = 0
        while True:
            page = ddb.scan(**request)
            seen += len(page.get("Items", ()))
            if "LastEvaluatedKey" not in page:
                return seen
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(segments) as pool:
        return {"items": sum(pool.map(segment, range(segments)))}


def floor_write(port: int, table: str, source: str) -> dict[str, Any]:
    from ddb_backup.format.sources import open_source
    from devkit import sample

    items = list(open_source(source).items())
    ddb = ddb_client(port)
    sample.create_table(ddb, table, KEYS)
    started = time.perf_counter()

    def send(first: int) -> int:
        for at in range(first, min(first + 500, len(items)), 25):
            requests = [{"PutRequest": {"Item": i}} for i in items[at : at + 25]]
            while requests:
                requests = ddb.batch_write_item(RequestItems={table: requests}).get("UnprocessedItems", {}).get(table)
        return min(first + 500, len(items)) - first

    with ThreadPoolExecutor(WORKERS) as pool:
        written = sum(pool.map(send, range(0, len(items), 500)))
    return {"items": written, "seconds": time.perf_counter() - started}


def core_restore(source: str, table: str, workers: int) -> dict[str, Any]:
    """The restore state machine's work, in threads: prepare the target, then each part as restore_part does."""
    from ddb_backup.aws.clients import client
    from ddb_backup.format.sources import open_source
    from ddb_backup.restore import fastwrite
    from ddb_backup.restore.target import prepare_target
    from ddb_backup.restore.write import write_items

    ddb, s3 = client("dynamodb"), client("s3")
    src = open_source(source, s3)
    prepared = prepare_target(ddb, table, description=src.description, source_table=src.table)
    keys = [k["AttributeName"] for k in prepared["keySchema"]]

    def part(p: Any) -> int:
        def dead_letter(xs: list[Any]) -> str:
            raise RuntimeError(f"{len(xs)} items not written")

        items = fastwrite.read_part(p, s3, ddb=ddb)
        return int(write_items(ddb, table, items, dead_letter=dead_letter, key_names=keys, concurrency=8)["written"])

    with ThreadPoolExecutor(workers) as pool:
        written = sum(pool.map(part, src.parts))
    if src.expected_items is not None and written != src.expected_items:
        raise RuntimeError(f"wrote {written} items, the backup holds {src.expected_items}")
    return {"items": written, "parts": len(src.parts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["load", "floor-scan", "floor-write", "core-restore"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--table", required=True)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=WORKERS)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--source")
    args = parser.parse_args(argv)
    if args.what == "load":
        out = load(args.port, args.table, args.items)
    elif args.what == "floor-scan":
        out = floor_scan(args.port, args.table, args.segments)
    elif args.what == "floor-write":
        out = floor_write(args.port, args.table, args.source)
    else:
        out = core_restore(args.source, args.table, args.workers)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
