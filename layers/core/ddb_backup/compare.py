"""Compare a backup's items with a table's, item by item, in bounded memory (the diff behind verify and mirror).

Each side (the backup's items, then the table's) is reduced to one record per
item: a 16-byte hash of its key, a 16-byte digest of the whole item, and the
key itself (for the examples). Records are spilled to partition files in a
private temporary directory, partitioned by key hash; the partitions are then
compared one at a time. Memory holds one partition, sized from the item
counts to about :data:`PARTITION_ITEMS` items, whatever the table's size.

The comparison is pure: it takes two iterables of items (client form) and
reads nothing itself, so any reader (a parallel scan, a backup of any format)
feeds it.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddb_backup.format.ddbjson import canonical, canonical_wire, item_from_wire, item_to_wire

#: Items per partition the partition count aims at (a partition is held in memory while compared).
PARTITION_ITEMS = 20_000
#: Records buffered in memory before they are appended to the partition files.
BUFFER_BYTES = 4 * 1024 * 1024
_HEAD = 36  # key hash (16), item digest (16), key length (4)

#: ``progress(compared, partitions)``: called with 0 before the first partition, then after each.
Progress = Callable[[int, int], None]


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _key(item: dict[str, Any], names: list[str]) -> str:
    """The key of an item in wire form, as text."""
    return json.dumps({n: item[n] for n in names if n in item}, sort_keys=True)


def key_json(item: dict[str, Any], names: list[str]) -> str:
    """An item's key (client form; ``names``: the table's key attributes) as canonical wire-form JSON."""
    return _key(item_to_wire({n: item[n] for n in names if n in item}), names)


def key_hash(item: dict[str, Any], names: list[str]) -> bytes:
    """The 16-byte hash an item's key (client form) is known by in a :class:`Diff`."""
    return _hash(key_json(item, names).encode())


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
        hashed = _hash(key)
        record = hashed + _hash(canonical_wire(item)) + len(key).to_bytes(4, "big") + key
        part = int.from_bytes(hashed[:8], "big") % len(self.paths)
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
    """A table against a backup: counts by kind, and up to ``limit`` keys of each kind (wire form).

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


class Sides:
    """The two sides of one comparison, spilled under a private temporary directory (a context manager).

    :meth:`add_backup` and :meth:`add_table` may run in two threads at once (each side has its own files),
    so a reader of the table can fill its side while the backup is read; then :meth:`compare`.
    """

    def __init__(self, names: list[str], estimate: int) -> None:
        self.names, self.estimate = names, estimate
        self._directory = tempfile.TemporaryDirectory(prefix="ddb-backup-diff-")
        where = Path(self._directory.name)
        self.backup, self.table = (_Spill(where, side, partitions_for(estimate)) for side in ("backup", "table"))

    def __enter__(self) -> Sides:
        return self

    def __exit__(self, *exc: object) -> None:
        self._directory.cleanup()

    @property
    def partitions(self) -> int:
        return len(self.backup.paths)

    def add_backup(self, item: dict[str, Any]) -> None:
        """One of the backup's items (client form, as sources read them)."""
        self.backup.add(item_to_wire(item), self.names)

    def add_table(self, item: dict[str, Any]) -> None:
        """One of the table's items (wire form, as a scan's raw pages hold them)."""
        self.table.add(item, self.names)

    def compare(
        self,
        limit: int = 10,
        on_differs: Callable[[bytes], None] | None = None,
        on_extra: Callable[[dict[str, Any]], None] | None = None,
        progress: Progress | None = None,
    ) -> Diff:
        """Compare the sides partition by partition (see :func:`diff_items` for the callbacks)."""
        self.backup.flush()
        self.table.flush()
        diff = Diff(backup_items=self.backup.count, table_items=self.table.count)
        if progress is not None:
            progress(0, self.partitions)
        for part in range(self.partitions):
            _compare(self.backup, self.table, part, diff, limit, (on_differs, on_extra))
            if progress is not None:
                progress(part + 1, self.partitions)
        return diff


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
) -> Diff:
    """Compare two item streams (client form) by key in bounded memory (see the module); ``names``: the key
    attributes.

    ``backup`` is read to its end before ``table`` is asked for its first item.
    ``estimate``: about how many items a side holds (sizes the partitions).
    ``on_differs(key hash)`` is called for every backup key missing or changed
    in the table, ``on_extra(key)`` for every key only the table holds.
    ``progress(compared, partitions)``: see :data:`Progress`.
    """
    with Sides(names, estimate) as sides:
        for item in backup:
            sides.add_backup(item)
        for item in table:
            sides.add_table(item_to_wire(item))
        return sides.compare(limit, on_differs, on_extra, progress)


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
    for hashed, digest, key in backup.records(part):
        diff.duplicates += hashed in expected
        expected[hashed] = (digest, key)
    for hashed, digest, key in table.records(part):
        want = expected.pop(hashed, None)
        if want is None:
            diff.note("extra", key, limit)
            if on_extra:
                on_extra(item_from_wire(json.loads(key)))
        elif want[0] != digest:
            diff.note("changed", key, limit)
            if on_differs:
                on_differs(hashed)
        else:
            diff.same += 1
    for hashed, (_, key) in expected.items():
        diff.note("missing", key, limit)
        if on_differs:
            on_differs(hashed)


def attribute_changes(backup: dict[str, Any], table: dict[str, Any]) -> dict[str, list[str]]:
    """How two items of one key differ: ``added`` (only in the table), ``removed`` (only in the backup),
    ``changed`` (values differ)."""
    both = set(backup) & set(table)
    return {
        "added": sorted(set(table) - set(backup)),
        "removed": sorted(set(backup) - set(table)),
        "changed": sorted(n for n in both if canonical({n: backup[n]}) != canonical({n: table[n]})),
    }
