"""Cumulus-like tables and realistic records, for the demo, tests and benchmarks.

Every table's items use all ten DynamoDB types (S, N with 38 digits, B, SS, NS,
BS, M, L, BOOL, NULL), empty strings, Unicode and binary nested in maps.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

from ddb_backup.aws.retry import backoff_delay, call_with_backoff

#: name -> (key schema [(attribute, HASH|RANGE)], extra create_table arguments)
CUMULUS_TABLES: dict[str, list[tuple[str, str]]] = {
    "Users": [("userName", "HASH")],
    "Collections": [("name", "HASH"), ("version", "RANGE")],
    "Providers": [("id", "HASH")],
    "Rules": [("name", "HASH")],
    "Executions": [("arn", "HASH")],
    "Granules": [("granuleId", "HASH")],
    "Pdrs": [("pdrName", "HASH")],
    "Files": [("bucket", "HASH"), ("key", "RANGE")],
}


def table_name(prefix: str, short: str) -> str:
    """``mystack-`` + ``Granules`` -> ``mystack-GranulesTable`` (Cumulus naming)."""
    return f"{prefix}{short}Table"


def create_table(ddb: Any, name: str, keys: list[tuple[str, str]], *, gsi: bool = False) -> None:
    """Create an on-demand table with string keys (and, with ``gsi``, a status index)."""
    attrs = [{"AttributeName": a, "AttributeType": "S"} for a, _ in keys]
    kwargs: dict[str, Any] = {}
    if gsi:
        attrs.append({"AttributeName": "status", "AttributeType": "S"})
        kwargs["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "status-index",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in keys],
        AttributeDefinitions=attrs,
        BillingMode="PAY_PER_REQUEST",
        Tags=[{"Key": "stack", "Value": name.split("-", maxsplit=1)[0]}],
        **kwargs,
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


_STATUS = ["completed", "failed", "running", "queued"]


def make_item(keys: list[tuple[str, str]], i: int, rng: random.Random, size: int = 600) -> dict[str, Any]:
    """One item in client form (binary as bytes) with every attribute type."""
    item: dict[str, Any] = {}
    for attr, kind in keys:
        item[attr] = {"S": f"{attr}-{i:07d}" if kind == "HASH" else f"v{i % 7}"}
    digits = "".join(rng.choice("0123456789") for _ in range(37))
    item.update(
        {
            "status": {"S": _STATUS[i % 4]},
            "createdAt": {"N": str(1_550_000_000_000 + i * 1000)},
            "precise": {"N": f"{rng.choice('123456789')}{digits[:19]}.{digits[19:]}"},
            "negative": {"N": f"-{rng.randint(1, 10**6)}E-{rng.randint(1, 100)}"},
            "checksum": {"B": rng.randbytes(16)},
            "tags": {"SS": sorted({f"tag{rng.randint(0, 20)}" for _ in range(3)} | {"é-ü-中"})},
            "sizes": {"NS": sorted({str(rng.randint(0, 10**12)) for _ in range(3)})},
            "chunks": {"BS": [b"\x00" + rng.randbytes(5), b"\xff" + rng.randbytes(3)]},
            "published": {"BOOL": bool(i % 2)},
            "error": {"NULL": True} if i % 3 else {"M": {"Error": {"S": "FileNotFound"}, "Cause": {"S": ""}}},
            "empty": {"S": ""},
            "files": {
                "L": [
                    {
                        "M": {
                            "bucket": {"S": "mystack-protected"},
                            "key": {"S": f"MOD09GQ/{i}/file{j}.hdf"},
                            "size": {"N": str(rng.randint(1, 10**9))},
                            "md5": {"B": rng.randbytes(16)},
                            "flags": {"L": [{"BOOL": True}, {"NULL": True}, {"N": "0"}]},
                        }
                    }
                    for j in range(2)
                ]
            },
            "meta": {"M": {"nested": {"M": {"deep": {"BS": [rng.randbytes(4)]}, "list": {"L": []}, "map": {"M": {}}}}}},
        }
    )
    pad = max(0, size - 500)
    if pad:
        item["notes"] = {"S": "".join(rng.choice("abcdefghij klmnop") for _ in range(pad))}
    return item


def items(keys: list[tuple[str, str]], count: int, seed: int = 0, size: int = 600) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(count):
        yield make_item(keys, i, rng, size)


def fill(ddb: Any, name: str, records: Iterator[dict[str, Any]]) -> int:
    """BatchWriteItem ``records`` into ``name``, resending anything unprocessed; returns the count."""
    batch: list[dict[str, Any]] = []
    written = 0

    def send(requests: list[dict[str, Any]]) -> None:
        for attempt in range(20):
            out = call_with_backoff(ddb.batch_write_item, RequestItems={name: requests})
            requests = out.get("UnprocessedItems", {}).get(name, [])
            if not requests:
                return
            time.sleep(backoff_delay(attempt))
        raise RuntimeError(f"{len(requests)} sample items stayed unprocessed in {name}")

    for record in records:
        batch.append({"PutRequest": {"Item": record}})
        if len(batch) == 25:
            send(batch)
            written += len(batch)
            batch = []
    if batch:
        send(batch)
        written += len(batch)
    return written


def create_cumulus_tables(ddb: Any, prefix: str, counts: dict[str, int], seed: int = 0) -> dict[str, int]:
    """Create the eight Cumulus tables (those in ``counts``) and fill them; returns name -> items."""
    made = {}
    for short, count in counts.items():
        keys = CUMULUS_TABLES[short]
        name = table_name(prefix, short)
        create_table(ddb, name, keys, gsi=short == "Granules")
        made[name] = fill(ddb, name, items(keys, count, seed=seed + sum(map(ord, short))))
    return made
