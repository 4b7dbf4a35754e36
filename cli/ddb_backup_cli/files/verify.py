"""``ddb-backup verify``: a table against a backup, item by item, in bounded memory.

The diff itself is the layer's (:mod:`ddb_backup.compare`); this module reads the two
sides (the backup, a Scan of the table), shows the stages, and names the attributes
of the changed examples.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.compare import attribute_changes, diff_items, key_hash
from ddb_backup.errors import TableNotFound
from ddb_backup.format.ddbjson import item_from_wire
from ddb_backup.format.sources import open_source
from ddb_backup_cli.progress import Progress, counted

LOG = logging.getLogger(__name__)


def scan_items(ddb: Any, table: str) -> Iterator[dict[str, Any]]:
    """Every item of ``table``, page by page; a throttled page is retried with backoff."""
    request: dict[str, Any] = {"TableName": table}
    while True:
        page = call_with_backoff(ddb.scan, **request)
        yield from page.get("Items", [])
        if not page.get("LastEvaluatedKey"):
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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
) -> dict[str, Any]:
    """Items of ``source`` (any format restore reads) against the items of ``table``.

    Memory holds one partition of records (see the module), not one record per
    item. Returns counts of missing, extra and changed items and up to
    ``limit`` examples; a changed example names the attributes that differ
    (``added``: only the table has them, ``removed``: only the backup,
    ``changed``: both, with other values). ``warn`` receives the source's
    warnings (default: stderr).
    ``progress``: shows each stage (read the backup, scan the table, compare).
    """
    names, count = key_names(ddb, table)
    backup = open_source(source, s3)
    for text in backup.warnings:
        (warn or _stderr)(text)
    estimate = max(backup.expected_items or 0, count)
    read = _staged(backup.items(), progress, f"{table}: read backup", backup.expected_items, False)
    scanned = _staged(scan_items(ddb, table), progress, f"{table}: scan table", count, True)
    compared = _compared(progress, table)
    diff = diff_items(read, scanned, names, estimate=estimate, limit=limit, progress=compared)
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
        out.append(None if item is None or saved is None else attribute_changes(saved, item))
    return out


def _stage(progress: Progress | None, label: str, total: int | None, approximate: bool, unit: str = "items") -> None:
    """Log a stage of the comparison and show it on ``progress``."""
    LOG.info(
        "verify %s (%s %s%s)", label, "?" if total is None else total, unit, ", approximate" if approximate else ""
    )
    if progress is not None:
        progress.stage(label, total=total, approximate=approximate, unit=unit)


def _stderr(text: str) -> None:
    print(f"ddb-backup: warning: {text}", file=sys.stderr)


def _compared(progress: Progress | None, table: str) -> Callable[[int, int], None]:
    """The diff's progress callback: the compare stage is logged and shown, then its partitions counted."""

    def show(compared: int, partitions: int) -> None:
        if compared == 0:
            _stage(progress, f"{table}: compare", partitions, False, "partitions")
        elif progress is not None:
            progress.add(1)

    return show


def _staged(
    items: Iterable[dict[str, Any]], progress: Progress | None, label: str, total: int | None, approximate: bool
) -> Iterator[dict[str, Any]]:
    """``items``, counted on ``progress``; the stage is logged and shown when the first is asked for."""
    _stage(progress, label, total, approximate)
    yield from counted(items, progress)
