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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit
from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.errors import TableNotFound
from ddb_backup.format.ddbjson import canonical, canonical_wire, item_from_wire, item_to_wire
from ddb_backup.format.sources import open_source
from ddb_backup_cli.files import tablescan
from ddb_backup_cli.progress import Progress, counted

LOG = logging.getLogger(__name__)

#: Items per partition the partition count aims at (a partition is held in memory while compared).
PARTITION_ITEMS = 20_000
#: Records buffered in memory before they are appended to the partition files.
BUFFER_BYTES = 4 * 1024 * 1024
_HEAD = 36  # key hash (16), item digest (16), key length (4)


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def key_hash(item: dict[str, Any], names: list[str]) -> bytes:
    """The 16-byte hash an item's key (client form) is known by in a :class:`Diff` (``names``: its key attributes)."""
    return _hash(_key(item_to_wire({n: item[n] for n in names if n in item}), names).encode())


class _Spill:
    """One side's records, appended to ``partitions`` files under ``directory``, buffered in bounded memory."""

    def __init__(self, directory: Path, side: str, partitions: int) -> None:
        self.paths = [directory / f"{side}-{p:05d}" for p in range(partitions)]
        self.buffers: dict[int, bytearray] = {}
        self.buffered = 0
        self.count = 0

    def add(self, item: dict[str, Any], names: list[str]) -> None:
        """One item in wire form (binary as base64 text: both sides are compared so)."""
        key = _key(item, names).encode()
        key_hash = _hash(key)
        record = key_hash + _hash(canonical_wire(item)) + len(key).to_bytes(4, "big") + key
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


@dataclass
class Diff:
    """A table against a backup: counts by kind, and up to ``limit`` keys of each kind (client form).

    ``missing``: keys the backup holds and the table lacks (a restore adds them);
    ``changed``: keys both hold, with other attributes; ``extra``: keys only the
    table holds; ``same``: keys whose items are equal.
    """

    backup_items: int = 0
    table_items: int = 0
    missing: int = 0
    changed: int = 0
    extra: int = 0
    same: int = 0
    duplicates: int = 0
    examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"missing": [], "changed": [], "extra": []}
    )

    def note(self, kind: str, key: bytes, limit: int) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples[kind]) < limit:
            self.examples[kind].append(json.loads(key))


def diff_items(
    backup: Iterable[dict[str, Any]],
    table: Iterable[dict[str, Any]],
    names: list[str],
    *,
    estimate: int,
    limit: int = 10,
    on_differs: Callable[[bytes], None] | None = None,
    on_extra: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
    label: str = "",
    table_total: int | None = None,
) -> Diff:
    """Compare two item streams by key in bounded memory (see the module); ``names``: the key attributes.

    ``backup``: items in client form (as sources read them); ``table``: in wire form (as :mod:`.tablescan` reads).

    ``estimate``: about how many items a side holds (sizes the partitions).
    ``on_differs(key hash)`` is called for every backup key missing or changed
    in the table, ``on_extra(key)`` for every key only the table holds.
    ``progress``: counts the partitions compared (``label``: the table), and the table's items after the
    backup's (``table_total``: about how many). The table is read while the backup is (its scan waits on
    DynamoDB, the backup's read on this process), into its own spill.
    """
    with tempfile.TemporaryDirectory(prefix="ddb-backup-diff-") as directory:
        sides = [_Spill(Path(directory), side, partitions_for(estimate)) for side in ("backup", "table")]
        with tablescan.Behind(table, lambda item: sides[1].add(item, names)) as behind:
            _fill(sides[0], map(item_to_wire, backup), names)
            _stage(progress, f"{label}: scan table", table_total, True)
            behind.wait(progress)
        sides[1].flush()
        diff = Diff(backup_items=sides[0].count, table_items=sides[1].count)
        _stage(progress, f"{label}: compare", len(sides[0].paths), False, "partitions")
        for part in range(len(sides[0].paths)):
            _compare(sides[0], sides[1], part, diff, limit, (on_differs, on_extra))
            if progress is not None:
                progress.add(1)
    return diff


def _compare(
    backup: _Spill,
    table: _Spill,
    part: int,
    diff: Diff,
    limit: int,
    calls: tuple[Callable[[bytes], None] | None, Callable[[dict[str, Any]], None] | None],
) -> None:
    """Compare one partition of the two sides into ``diff``."""
    on_differs, on_extra = calls
    expected: dict[bytes, tuple[bytes, bytes]] = {}
    for key_hash_, digest, key in backup.records(part):
        diff.duplicates += key_hash_ in expected
        expected[key_hash_] = (digest, key)
    for key_hash_, digest, key in table.records(part):
        want = expected.pop(key_hash_, None)
        if want is None:
            diff.note("extra", key, limit)
            if on_extra:
                on_extra(item_from_wire(json.loads(key)))
        elif want[0] != digest:
            diff.note("changed", key, limit)
            if on_differs:
                on_differs(key_hash_)
        else:
            diff.same += 1
    for key_hash_, (_, key) in expected.items():
        diff.note("missing", key, limit)
        if on_differs:
            on_differs(key_hash_)


def scan_items(ddb: Any, table: str, limit: Limit = NO_LIMIT, workers: int = 8) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` in wire form: parallel segments on the backup's fast path, within ``limit``'s rate."""
    described = call_with_backoff(ddb.describe_table, TableName=table)
    segments = tablescan.segments_for(described, workers)
    limiter = tablescan.read_limiter(described, limit)
    return tablescan.table_items(ddb, table, segments=segments, workers=workers, limiter=limiter)


def key_names(ddb: Any, table: str) -> tuple[list[str], int]:
    """The key attribute names of ``table`` and its (approximate) item count; ``TableNotFound`` if it is absent."""
    try:
        described = call_with_backoff(ddb.describe_table, TableName=table)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            raise TableNotFound(f"table {table!r} does not exist") from None
        raise
    return [k["AttributeName"] for k in described["KeySchema"]], int(described.get("ItemCount") or 0)


def verify_table(
    ddb: Any,
    s3: Any,
    table: str,
    source: str,
    *,
    limit: int = 10,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    read: Limit = NO_LIMIT,
) -> dict[str, Any]:
    """Items of ``source`` (any format restore reads) against the items of ``table``.

    Memory holds one partition of records (see the module), not one record per
    item. Returns counts of missing, extra and changed items and up to
    ``limit`` examples; a changed example names the attributes that differ
    (``added``: only the table has them, ``removed``: only the backup,
    ``changed``: both, with other values). ``warn`` receives the source's
    warnings (default: stderr).
    ``progress``: shows each stage (read the backup, scan the table, compare). ``read``: the table's read rate.
    """
    names, count = key_names(ddb, table)
    backup = open_source(source, s3)
    for text in backup.warnings:
        (warn or _stderr)(text)
    estimate = max(backup.expected_items or 0, count)
    saved = _staged(backup.items(), progress, f"{table}: read backup", backup.expected_items, False)
    scanned = scan_items(ddb, table, read)
    diff = diff_items(
        saved, scanned, names, estimate=estimate, limit=limit, progress=progress, label=table, table_total=count
    )
    changed = attribute_diffs(ddb, table, backup.items(), names, diff.examples["changed"])
    examples = [
        {"kind": "changed", "key": key, "attributes": changed[i]} for i, key in enumerate(diff.examples["changed"])
    ]
    examples += [{"kind": "extra in table", "key": key} for key in diff.examples["extra"]]
    examples += [{"kind": "missing from table", "key": key} for key in diff.examples["missing"]]
    return {
        "table": table,
        "source": source,
        "identical": not (diff.missing or diff.extra or diff.changed or diff.duplicates),
        "backupItems": diff.backup_items,
        "tableItems": diff.table_items,
        "missing": diff.missing,
        "extra": diff.extra,
        "changed": diff.changed,
        "duplicateKeysInBackup": diff.duplicates,
        "examples": examples[: max(0, limit)],
    }


def attribute_diffs(
    ddb: Any, table: str, backup: Iterable[dict[str, Any]], names: list[str], keys: list[dict[str, Any]]
) -> list[dict[str, list[str]] | None]:
    """For each key, the attribute names that differ between the table's item and the backup's (None: gone since).

    The backup is read once more, keeping only the items of ``keys`` (the last
    one of a key, as a restore would leave it); the table's items are read by
    GetItem (strongly consistent).
    """
    if not keys:
        return []
    keys = [item_from_wire(key) for key in keys]  # examples are in wire form (JSON); GetItem takes client form
    wanted = {key_hash(key, names) for key in keys}
    held: dict[bytes, dict[str, Any]] = {}
    for item in backup:
        found = key_hash(item, names)
        if found in wanted:
            held[found] = dict(item)
    out: list[dict[str, list[str]] | None] = []
    for key in keys:
        item = call_with_backoff(ddb.get_item, TableName=table, Key=key, ConsistentRead=True).get("Item")
        saved = held.get(key_hash(key, names))
        out.append(None if item is None or saved is None else _attributes(saved, item))
    return out


def _attributes(backup: dict[str, Any], table: dict[str, Any]) -> dict[str, list[str]]:
    """``added`` (only in the table), ``removed`` (only in the backup), ``changed`` (values differ)."""
    both = set(backup) & set(table)
    return {
        "added": sorted(set(table) - set(backup)),
        "removed": sorted(set(backup) - set(table)),
        "changed": sorted(n for n in both if canonical({n: backup[n]}) != canonical({n: table[n]})),
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


def _fill(spill: _Spill, items: Iterable[dict[str, Any]], names: list[str]) -> None:
    for item in items:
        spill.add(item, names)
    spill.flush()


def _staged(
    items: Iterable[dict[str, Any]], progress: Progress | None, label: str, total: int | None, approximate: bool
) -> Iterator[dict[str, Any]]:
    """``items``, counted on ``progress``; the stage is logged and shown when the first is asked for."""
    _stage(progress, label, total, approximate)
    yield from counted(items, progress)


def _key(item: dict[str, Any], names: list[str]) -> str:
    """The key of an item in wire form, as text."""
    return json.dumps({n: item[n] for n in names if n in item}, sort_keys=True)
