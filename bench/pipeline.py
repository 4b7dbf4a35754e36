"""The client pipeline alone, against the replay endpoint: one measurement per process.

``python -m bench.pipeline scan --port P --pages N [--slow]`` runs the Lambda
core's ``scan_segment`` over one segment of ``replay-<N>`` (Scan -> lines ->
gzip -> S3 PutObject with sha256) and prints one JSON line: wall seconds, CPU
seconds of this process (all threads), items, response bytes, peak RSS.

``python -m bench.pipeline write --port P --items N [--slow]`` builds and sends
BatchWriteItem requests for N items read from a gzip part, as restore does.

Each run is its own process, so peak RSS belongs to that run only, and the
replay server's CPU (another process) is not counted.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from bench.replay import ITEM_SIZE, KEYS
from bench.servers import peak_rss_mb
from ddb_backup.format.ddbjson import line_from_client_item
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL
from devkit import sample


def clients(port: int) -> tuple[Any, Any]:
    session = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1")
    url = f"http://127.0.0.1:{port}"
    ddb = session.client(
        "dynamodb",
        endpoint_url=url,
        config=Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64),
    )
    s3 = session.client(
        "s3",
        endpoint_url=url,
        # as ddb_backup.aws.clients configures S3, with path-style addressing for the local endpoint
        config=Config(
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            retries={"mode": "standard", "max_attempts": 10},
            max_pool_connections=64,
        ),
    )
    return ddb, s3


def measure(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    wall, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    out = fn()
    after = resource.getrusage(resource.RUSAGE_SELF)
    out["seconds"] = time.perf_counter() - wall
    out["userSeconds"] = after.ru_utime - before.ru_utime
    out["systemSeconds"] = after.ru_stime - before.ru_stime
    out["cpuSeconds"] = out["userSeconds"] + out["systemSeconds"]
    out["peakRssMB"] = peak_rss_mb()
    return out


def run_scan(port: int, pages: int, slow: bool, gzip_level: int) -> dict[str, Any]:
    from ddb_backup.backup.scan import ScanSettings, scan_segment

    ddb, s3 = clients(port)
    settings = ScanSettings(bucket="bench", fast_path=not slow, gzip_level=gzip_level)
    task = {"table": f"replay-{pages}", "backupDir": "t/b/", "segment": 0, "totalSegments": 1}

    def go() -> dict[str, Any]:
        result = scan_segment(ddb, s3, settings, task, time_left=lambda: 3600.0)
        assert result["done"], result
        return {"items": result["items"], "partBytes": result["bytes"]}

    out = measure(go)
    out["responseBytes"] = pages * 1024 * 1024  # replay pages are 1 MiB of wire JSON each (+ a few bytes)
    return out


def run_file(port: int, pages: int, segments: int, out_path: str) -> dict[str, Any]:
    """The CLI's backup to a local file (``backup_to_file``), ``segments`` threads, ``pages`` pages each."""
    from pathlib import Path

    from ddb_backup_cli.files.backup import backup_to_file

    ddb, _ = clients(port)

    def go() -> dict[str, Any]:
        summary = backup_to_file(ddb, f"replay-{pages}", Path(out_path), segments=segments, workers=segments)
        return {"items": summary["items"], "fileBytes": summary["bytes"]}

    out = measure(go)
    Path(out_path).unlink()
    out["responseBytes"] = pages * segments * 1024 * 1024
    return out


def make_part(path: str, items: int, seed: int = 11) -> dict[str, Any]:
    """A gzip part of ``items`` realistic items at ``path``, as backup writes it; its PartRef as JSON."""
    rng = random.Random(seed)
    raw = 0
    with gzip.open(path, "wb", compresslevel=3) as gz:
        for i in range(items):
            line = line_from_client_item(sample.make_item(KEYS, i, rng, ITEM_SIZE))
            raw += len(line)
            gz.write(line)
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    return {
        "id": "data/000000-000000.json.gz",
        "url": path,
        "dialect": "item",
        "items": items,
        "sha256": digest,
        "raw": raw,
    }


def run_write(
    port: int, part_json: dict[str, Any], slow: bool, concurrency: int, parts: int = 1, workers: int = 1
) -> dict[str, Any]:
    """Restore ``parts`` copies of the part (``workers`` at a time), as restore_part does each."""
    from ddb_backup.format.lines import PartRef
    from ddb_backup.format.sources import read_part
    from ddb_backup.restore import fastwrite
    from ddb_backup.restore import write as restore

    ddb, _ = clients(port)
    part = PartRef.from_json({k: v for k, v in part_json.items() if k != "raw"})

    def dead_letter(items: list[Any]) -> str:
        raise AssertionError(f"{len(items)} items dead-lettered")

    def one(_: int) -> dict[str, Any]:
        items = read_part(part) if slow else fastwrite.read_part(part, ddb=ddb)
        counts: dict[str, Any] = restore.write_items(
            ddb, "replay-1", items, dead_letter=dead_letter, key_names=["pk"], concurrency=concurrency
        )
        return counts

    def go() -> dict[str, Any]:
        with ThreadPoolExecutor(workers) as pool:
            done = list(pool.map(one, range(parts)))
        return {"items": sum(c["written"] for c in done), "requests": sum(c["requests"] for c in done)}

    out = measure(go)
    out["responseBytes"] = part_json["raw"] * parts
    return out


def run_build(part_json: dict[str, Any], slow: bool) -> dict[str, Any]:
    """Restore's request building alone: part -> verified lines -> keys -> 25-item request bodies, nothing sent.

    Fast: RawItems and the body ``fastwrite`` builds. Slow: client-form items and
    botocore's own validation and serialization of the same request.
    """
    from ddb_backup.format.keys import key_value
    from ddb_backup.format.lines import PartRef
    from ddb_backup.format.sources import read_part
    from ddb_backup.restore import fastwrite

    ddb, _ = clients(1)  # never called: only its serializer and validator are used
    part = PartRef.from_json({k: v for k, v in part_json.items() if k != "raw"})
    model = ddb.meta.service_model.operation_model("BatchWriteItem")
    serializer, validator = ddb._serializer, __import__("botocore.validate").validate.ParamValidator()

    def body(batch: list[Any]) -> bytes:
        params = {"RequestItems": {"replay-1": [{"PutRequest": {"Item": i}} for i in batch]}}
        if slow:
            report = validator.validate(params, model.input_shape)
            assert not report.has_errors()
            return bytes(serializer.serialize_to_request(params, model)["body"])
        context: dict[str, Any] = {}
        fastwrite._build_body(params, context)
        return bytes(context[fastwrite._BODY])

    def go() -> dict[str, Any]:
        items = read_part(part) if slow else fastwrite.read_part(part)
        batch, keys, count, size = [], set(), 0, 0
        for item in items:
            key = key_value(item["pk"])
            if key in keys or len(batch) == 25:
                size += len(body(batch))
                batch, keys = [], set()
            batch.append(item)
            keys.add(key)
            count += 1
        if batch:
            size += len(body(batch))
        return {"items": count, "requestBytes": size}

    out = measure(go)
    out["responseBytes"] = part_json["raw"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["scan", "write", "file", "build"])
    parser.add_argument("--port", type=int, default=1, help="the replay endpoint's port (not for build)")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--part", help="JSON of the part to restore (write); made by make_part")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight per part")
    parser.add_argument("--parts", type=int, default=1, help="write the part this many times")
    parser.add_argument("--workers", type=int, default=1, help="parts at a time")
    parser.add_argument(
        "--gzip-level", type=int, default=DEFAULT_GZIP_LEVEL, help="as GZIP_LEVEL (default: the default)"
    )
    parser.add_argument("--segments", type=int, default=4, help="file: segments (threads)")
    parser.add_argument("--out", help="file: where to write")
    parser.add_argument("--slow", action="store_true", help="botocore parses every page (the path before #6)")
    args = parser.parse_args(argv)
    if args.what == "scan":
        out = run_scan(args.port, args.pages, args.slow, args.gzip_level)
    elif args.what == "build":
        out = run_build(json.loads(args.part), args.slow)
    elif args.what == "file":
        out = run_file(args.port, args.pages, args.segments, args.out)
    else:
        out = run_write(args.port, json.loads(args.part), args.slow, args.concurrency, args.parts, args.workers)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
