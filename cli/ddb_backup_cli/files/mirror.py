"""Mirror restores and dry runs: both start from the diff of the target against the backup.

``restore --mode mirror`` makes the target exactly the backup, in this order:

1. diff: the target (Scan) against the backup, as ``verify`` compares them;
2. write the backup's items whose key is missing from the target or whose item differs;
3. verify: the target against the backup again; every item of the backup must
   now be there, equal. A write that failed (dead letters), a count that
   differs from the manifest, or any difference here stops the run before
   anything is deleted, and the target keeps its restore-in-progress mark;
4. delete the keys the target holds and the backup does not (BatchWriteItem
   DeleteRequests, 25 a request, retried and dead-lettered as puts are).

Items written between the diff and the deletes by someone else are deleted
too if the backup lacks them: a mirror is for a target nobody else writes to.

Memory: the diff spills one small record per item to a private temporary
directory and holds one partition at a time (see :mod:`ddb_backup.compare`); besides it,
a mirror keeps the 16-byte key hashes of the items that differ (about 100 bytes
each in Python; none for an empty target) and the keys to delete (one dict each).
Reads: the target is scanned twice (parallel segments, within ``--read-rate`` / ``--read-percent``: see
:mod:`.tablescan`), the backup read three times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit
from ddb_backup.compare import Diff, key_hash
from ddb_backup.errors import RestoreIncomplete
from ddb_backup.format.ddbjson import Item
from ddb_backup.restore import fastwrite
from ddb_backup.restore.target import is_empty
from ddb_backup.selection.cost import describe
from ddb_backup_cli.files.verify import diff_items, key_names, scan_items

if TYPE_CHECKING:
    from ddb_backup.format.sources import Source

#: Keys shown of each kind (add, change, delete) by a dry run.
EXAMPLES = 10
#: ``write(items, delete)``: the restore's write_items, with its dead letters, pace and progress.
Write = Callable[[Iterable[Item], bool], dict[str, Any]]
#: ``confirm(target, count)``: whether the mirror may delete ``count`` items of ``target`` (asked once, before).
Confirm = Callable[[str, int], bool]


def refuse(target: str, count: int) -> bool:
    """The default ``Confirm``: nobody agreed to delete, so nothing is."""
    return False


def read_of(request: dict[str, Any]) -> Limit:
    """The read rate a restore's request gives its mirror's (or dry run's) scans of the target."""
    return Limit(request.get("readRate"), request.get("readPercent"))


def check_count(src: Source, read: int, target: str) -> None:
    """The items read against the count the backup promises (``RestoreIncomplete`` on a difference)."""
    expected = src.expected_items
    if expected is not None and read != expected:
        raise RestoreIncomplete(
            f"{src.location}: read {read} items but the backup promises {expected}; {target} is incomplete"
        )


def _diff(ddb: Any, src: Source, target: str, names: list[str], read: Limit, **calls: Any) -> Diff:
    """The target's items (scanned within ``read``'s rate) against the backup's, partitions sized from the larger
    count."""
    estimate = max(src.expected_items or 0, key_names(ddb, target)[1])
    table = scan_items(ddb, target, read)
    return diff_items(src.items(), table, names, estimate=estimate, limit=EXAMPLES, **calls)


def mirror_one(
    ddb: Any,
    src: Source,
    target: str,
    info: dict[str, Any],
    write: Write,
    confirm: Confirm = refuse,
    reads: Limit = NO_LIMIT,
) -> dict[str, Any]:
    """Make ``target`` (prepared by ``prepare_targets`` in mode mirror) hold exactly the items of ``src``.

    Returns the counts: ``added``, ``changed``, ``unchanged``, ``deleted``,
    ``items`` (written), ``itemsRead``. Raises ``RestoreIncomplete`` (or the
    write's ``DeadLettered``) before any delete when the writes did not make
    every item of the backup present and equal, or when ``confirm`` does not
    agree to the deletes. ``reads``: the read rate its two scans of ``target`` keep to.
    """
    names = [k["AttributeName"] for k in info["keySchema"]]
    started = time.monotonic()
    differs: set[bytes] | None = None if is_empty(ddb, target) else set()
    before = _diff(ddb, src, target, names, reads, on_differs=differs.add) if differs is not None else None
    read = 0

    def to_write() -> Iterator[Item]:
        nonlocal read
        for item in fastwrite.source_items(src, ddb):
            read += 1
            if differs is None or key_hash(item, names) in differs:
                yield item

    counts = write(to_write(), False)
    check_count(src, read, target)
    extra: list[Item] = []
    after = _diff(ddb, src, target, names, reads, on_extra=extra.append)
    if after.missing or after.changed:
        keys = (after.examples["missing"] + after.examples["changed"])[:3]
        raise RestoreIncomplete(
            f"table {target}: after writing, {after.missing} items of the backup are missing and {after.changed} "
            f"differ (first keys: {keys}): nothing was deleted; the table keeps its restore-in-progress mark: "
            "rerun the restore with --mode mirror"
        )
    if extra and not confirm(target, len(extra)):
        raise _not_agreed(target, extra, names)
    deleted = write(extra, True)["written"] if extra else 0
    return {
        "source": src.location,
        "format": src.format,
        "table": target,
        "created": info["created"],
        "mode": "mirror",
        "items": counts["written"],
        "itemsRead": read,
        "countChecked": src.expected_items is not None,
        "duplicateKeys": counts["duplicateKeys"],
        "added": before.missing if before else after.same,
        "changed": before.changed if before else 0,
        "unchanged": before.same if before else 0,
        "deleted": deleted,
        "seconds": round(time.monotonic() - started, 3),
    }


def _not_agreed(target: str, extra: list[Item], names: list[str]) -> RestoreIncomplete:
    """The refusal of a mirror whose deletes nobody agreed to."""
    keys = [{n: next(iter(item[n].values())) for n in names} for item in extra[:3]]
    return RestoreIncomplete(
        f"the mirror would delete {len(extra):,} items of {target} that the backup lacks (first keys: {keys}), "
        "and that was not agreed to: nothing was deleted; every item of the backup is written and checked; "
        "the table keeps its restore-in-progress mark: rerun the restore with --mode mirror on a terminal "
        "(it asks), or with --yes"
    )


def dry_run(
    ddb: Any, src: Source, target: str, info: dict[str, Any], mode: str, read: Limit = NO_LIMIT
) -> dict[str, Any]:
    """What a restore of ``src`` into ``target`` in ``mode`` would add, change and delete; nothing is written.

    ``info``: the target as ``prepare_targets(check_only=True)`` checked it. In
    mode ``overwrite`` the target's items the backup lacks stay (``keep``); in
    mode ``mirror`` they would be deleted.
    """
    names = [k["AttributeName"] for k in info["keySchema"]]
    if info["exists"]:
        diff = _diff(ddb, src, target, names, read)
    else:
        diff = diff_items(src.items(), (), names, estimate=src.expected_items or 0, limit=EXAMPLES)
    mirror = mode == "mirror"
    return {
        "source": src.location,
        "format": src.format,
        "table": target,
        "mode": mode,
        "dryRun": True,
        "createTable": not info["exists"],
        "backupItems": diff.backup_items,
        "tableItems": diff.table_items,
        "add": diff.missing,
        "change": diff.changed,
        "unchanged": diff.same,
        "delete": diff.extra if mirror else 0,
        "keep": 0 if mirror else diff.extra,
        "duplicateKeysInBackup": diff.duplicates,
        "examples": {
            "add": diff.examples["missing"],
            "change": diff.examples["changed"],
            "delete": diff.examples["extra"] if mirror else [],
        },
    }


def dry_run_lines(row: dict[str, Any]) -> list[str]:
    """A dry run's row as text: one summary line, then the first keys of each kind."""
    create = " (the table would be created)" if row["createTable"] else ""
    keep = f", {row['keep']:,} kept (not in the backup)" if row["keep"] else ""
    lines = [
        f"{row['source']} -> {row['table']}: dry run, mode {row['mode']}{create}: {row['add']:,} to add, "
        f"{row['change']:,} to change, {row['unchanged']:,} unchanged, {row['delete']:,} to delete{keep}"
    ]
    for kind in ("add", "change", "delete"):
        lines += [f"  {kind}: {json.dumps(key, sort_keys=True)}" for key in row["examples"][kind]]
    return lines + ([describe(row["cost"])] if row.get("cost") else [])
