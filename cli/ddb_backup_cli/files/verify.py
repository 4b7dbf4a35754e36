"""Compare a table with a backup, item by item, in bounded memory.

Each side (the backup's items, then the table's) is reduced to one record per
item: a 16-byte hash of its key, a 16-byte digest of the whole item, and the
key itself (for the examples). Records are spilled to partition files in a
private temporary directory, partitioned by key hash; the partitions are then
compared one at a time. Memory holds one partition, sized from the item
counts to about :data:`PARTITION_ITEMS` items, whatever the table's size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.errors import TableNotFound
from ddb_backup.format.ddbjson import canonical, item_to_wire
from ddb_backup.format.sources import open_source
from ddb_backup_cli.progress import Progress, counted

LOG = logging.getLogger(__name__)

#: Items per partition the partition count aims at (a partition is held in memory while compared).
PARTITION_ITEMS = 20_000
#: Records buffered in memory before they are appended to the partition files.
BUFFER_BYTES = 4 * 1024 * 1024
_HEAD = 36  # key hash (16), item digest (16), key length (4)


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class _Spill:
    """One side's records, appended to ``partitions`` files under ``directory``, buffered in bounded memory."""

    def __init__(self, directory: Path, side: str, partitions: int) -> None:
        self.paths = [directory / f"{side}-{p:05d}" for p in range(partitions)]
        self.buffers: dict[int, bytearray] = {}
        self.buffered = 0
        self.count = 0

    def add(self, item: dict[str, Any], names: list[str]) -> None:
        key = _key(item, names).encode()
        key_hash = _hash(key)
        record = key_hash + _hash(canonical(item).encode()) + len(key).to_bytes(4, "big") + key
        part = int.from_bytes(key_hash[:8], "big") % len(self.paths)
        self.buffers.setdefault(part, bytearray()).extend(record)
        self.buffered += len(record)
        self.count += 1
        if self.buffered >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        for part, data in self.buffers.items():
            with open(self.paths[part], "ab") as fh:
                fh.write(data)
        self.buffers.clear()
        self.buffered = 0

    def records(self, part: int) -> Iterator[tuple[bytes, bytes, bytes]]:
        """(key hash, item digest, key JSON) of every record of one partition, in the order added."""
        path = self.paths[part]
        data = path.read_bytes() if path.exists() else b""
        at = 0
        while at < len(data):
            size = int.from_bytes(data[at + 32 : at + _HEAD], "big")
            yield data[at : at + 16], data[at + 16 : at + 32], data[at + _HEAD : at + _HEAD + size]
            at += _HEAD + size


def partitions_for(items: int) -> int:
    """Partitions for about ``items`` items a side: one per :data:`PARTITION_ITEMS`, 16 to 8192."""
    return max(16, min(8192, math.ceil(items / PARTITION_ITEMS)))


def verify_table(
    ddb: Any,
    s3: Any,
    table: str,
    source: str,
    *,
    limit: int = 10,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Items of ``source`` (any format restore reads) against the items of ``table``.

    Memory holds one partition of records (see the module), not one record per
    item. Returns counts of missing, extra and changed items and up to
    ``limit`` examples. ``warn`` receives the source's warnings (default: stderr).
    ``progress``: shows each stage (read the backup, scan the table, compare).
    """
    try:
        described = ddb.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            raise TableNotFound(f"table {table!r} does not exist") from None
        raise
    names = [k["AttributeName"] for k in described["KeySchema"]]
    backup = open_source(source, s3)
    for text in backup.warnings:
        (warn or _stderr)(text)
    approx = int(described.get("ItemCount") or 0)
    estimate = max(backup.expected_items or 0, approx)
    with tempfile.TemporaryDirectory(prefix="ddb-backup-verify-") as directory:
        sides = [_Spill(Path(directory), side, partitions_for(estimate)) for side in ("backup", "table")]
        _stage(progress, f"{table}: read backup", backup.expected_items, False)
        _fill(sides[0], counted(backup.items(), progress), names)
        _stage(progress, f"{table}: scan table", approx, True)
        _fill(sides[1], counted(_scan(ddb, table), progress), names)
        _stage(progress, f"{table}: compare", len(sides[0].paths), False, "partitions")
        report = _compare(*sides, limit=limit, progress=progress)
    missing = report["missing"]
    return {
        "table": table,
        "source": source,
        "identical": not (missing or report["extra"] or report["changed"] or report["duplicates"]),
        "backupItems": sides[0].count,
        "tableItems": sides[1].count,
        "missing": missing,
        "extra": report["extra"],
        "changed": report["changed"],
        "duplicateKeysInBackup": report["duplicates"],
        "examples": report["examples"],
    }


def _stage(progress: Progress | None, label: str, total: int | None, approximate: bool, unit: str = "items") -> None:
    """Log a stage of the comparison and show it on ``progress``."""
    LOG.info(
        "verify %s (%s %s%s)", label, "?" if total is None else total, unit, ", approximate" if approximate else ""
    )
    if progress is not None:
        progress.stage(label, total=total, approximate=approximate, unit=unit)


def _stderr(text: str) -> None:
    print(f"ddb-backup: warning: {text}", file=sys.stderr)


def _scan(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        yield from page["Items"]


def _fill(spill: _Spill, items: Iterable[dict[str, Any]], names: list[str]) -> None:
    for item in items:
        spill.add(item, names)
    spill.flush()


def _compare(backup: _Spill, table: _Spill, *, limit: int, progress: Progress | None = None) -> dict[str, Any]:
    """Compare the two sides partition by partition: counts and up to ``limit`` examples."""
    counts = {"missing": 0, "extra": 0, "changed": 0, "duplicates": 0}
    found: list[dict[str, Any]] = []
    absent: list[dict[str, Any]] = []
    for part in range(len(backup.paths)):
        expected: dict[bytes, tuple[bytes, bytes]] = {}
        for key_hash, digest, key in backup.records(part):
            counts["duplicates"] += key_hash in expected
            expected[key_hash] = (digest, key)
        for key_hash, digest, key in table.records(part):
            want = expected.pop(key_hash, None)
            kind = "extra in table" if want is None else "changed" if want[0] != digest else None
            if kind is None:
                continue
            counts["extra" if want is None else "changed"] += 1
            if len(found) < limit:
                found.append({"kind": kind, "key": json.loads(key)})
        counts["missing"] += len(expected)
        for _, key in list(expected.values())[: max(0, limit - len(absent))]:
            absent.append({"kind": "missing from table", "key": json.loads(key)})
        if progress is not None:
            progress.add(1)
    return {**counts, "examples": (found + absent)[: max(0, limit)]}


def _key(item: dict[str, Any], names: list[str]) -> str:
    return json.dumps(item_to_wire({n: item[n] for n in names if n in item}), sort_keys=True)
