"""Compare a table with a backup, item by item, in bounded memory (the diff is the layer's: ddb_backup.compare).

The table is scanned in parallel segments on the backup's fast path (:mod:`.tablescan`), within a read rate,
in a thread of its own while the backup is read; each side is spilled to partition files and compared one
partition at a time, so memory holds one partition, whatever the table's size.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit
from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.compare import Diff, Sides, attribute_changes, key_hash
from ddb_backup.errors import TableNotFound
from ddb_backup.format.ddbjson import item_from_wire
from ddb_backup.format.sources import open_source
from ddb_backup_cli.files import tablescan
from ddb_backup_cli.progress import Progress, counted

LOG = logging.getLogger(__name__)


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
    with Sides(names, estimate) as sides:
        with tablescan.Behind(table, sides.add_table) as behind:
            for item in backup:
                sides.add_backup(item)
            _stage(progress, f"{label}: scan table", table_total, True)
            behind.wait(progress)
        _stage(progress, f"{label}: compare", sides.partitions, False, "partitions")
        step = None if progress is None else (lambda done, _total: progress.add(1 if done else 0))
        return sides.compare(limit, on_differs, on_extra, step)


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


def _staged(
    items: Iterable[dict[str, Any]], progress: Progress | None, label: str, total: int | None, approximate: bool
) -> Iterator[dict[str, Any]]:
    """``items``, counted on ``progress``; the stage is logged and shown when the first is asked for."""
    _stage(progress, label, total, approximate)
    yield from counted(items, progress)
