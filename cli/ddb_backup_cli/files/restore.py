"""Restores driven from this process (the CLI), with the restore state machine's own rules.

The same ``prepare_targets`` (check every target, then create) and the same
``write_items`` (25-item batches, backoff, dead letters) as the Lambdas.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable
from typing import Any

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit, table_rate
from ddb_backup.aws.tables import describe_table
from ddb_backup.errors import IntegrityError, RestoreIncomplete
from ddb_backup.format.lines import part_lines
from ddb_backup.format.location import is_s3
from ddb_backup.format.sources import Source, open_source
from ddb_backup.restore import fastwrite, importtable
from ddb_backup.restore.deadletters import dead_letter_writer
from ddb_backup.restore.resume import Mark, clear_mark
from ddb_backup.restore.run import prepare_targets
from ddb_backup.restore.write import write_items
from ddb_backup_cli.progress import Progress


def restore_sources(
    ddb: Any,
    s3: Any,
    source: str,
    *,
    table: str | None = None,
    mapping: list[tuple[str, str]] | None = None,
    backup_id: str | None = None,
    tables: list[str] | None = None,
    allow_partial: bool = False,
    mode: str = "new",
    allow_source: bool = False,
    key_names: list[str] | None = None,
    workers: int = 4,
    progress_factory: Callable[[str], Progress] | None = None,
    warn: Callable[[str], None] = lambda text: None,
    expect_items: int | None = None,
    limit: Limit = NO_LIMIT,
    exact: bool = True,
    method: str = "write",
    note: Callable[[str], None] = lambda text: None,
) -> list[dict[str, Any]]:
    """Restore ``source`` into ``table`` (or a set, renamed by ``mapping``); one result per table.

    Raises ``TargetRefused`` before anything is written if any target is
    unsafe, and ``RestoreIncomplete`` naming the dead-letter location if
    items could not be written. Every target carries the restore-in-progress
    mark until its items are written and counted. ``expect_items`` (one
    table): the source must hold exactly that many items, counted before
    anything is created or written (``IntegrityError``) and checked again
    after writing (``RestoreIncomplete``). Without it, a source that carries
    no count is restored with a warning saying how many items it held.
    ``limit``: each target's write rate (all workers together). ``method``: ``write``,
    ``import`` or ``auto`` (see :mod:`ddb_backup.restore.importtable`); ``note`` hears each choice and why.
    """
    if expect_items is not None:
        _check_expected(source, s3, expect_items)
    request = {**_request(source, table, mapping, backup_id, mode, allow_source, key_names), "method": method}
    request.update({"tables": tables} if tables else {}, **({"allowPartial": True} if allow_partial else {}))
    run_id = f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    prepared, _, notes = prepare_targets(ddb, s3, request, bucket=None, run_id=run_id)
    for text in notes:
        warn(text)
    results = []
    for src, target, info in prepared:
        for text in [*src.warnings, *info.get("warnings", [])]:
            warn(text)
        note(info["reason"])
        if info["method"] == "import":
            result = _import_one(ddb, src, target, info, run_id, warn)
        else:
            result = _write_one(ddb, s3, src, target, info, run_id, (workers, limit), progress_factory)
        result["methodReason"] = info["reason"]
        if exact and src.format == "ddb-backup-v1" and is_s3(src.location):
            result.update(_exact(ddb, src.s3, src.location, target))
        _check_restored(src, result, expect_items, warn)
        results.append(result)
        clear_mark(ddb, target)
    return results


def _import_one(
    ddb: Any, src: Source, target: str, info: dict[str, Any], run_id: str, warn: Callable[[str], None]
) -> dict[str, Any]:
    """Restore one prepared source into the new table ``target`` by ImportTable; its result row."""
    started = time.monotonic()
    arn = importtable.start_import(ddb, src, target, info["keySchema"], f"{run_id}-{target}")
    desc = importtable.wait_import(ddb, arn)
    done = importtable.finish_import(ddb, desc, src, target, Mark(src.backup_id or target, run_id))
    for text in done["warnings"]:
        warn(text)
    return {
        "source": src.location,
        "format": src.format,
        "table": target,
        "created": True,
        "method": "import",
        "items": done["imported"],
        "itemsRead": done["processed"],
        "countChecked": True,
        "duplicateKeys": 0,
        "settings": done["settings"],
        "seconds": round(time.monotonic() - started, 3),
    }


def _write_one(
    ddb: Any,
    s3: Any,
    src: Source,
    target: str,
    info: dict[str, Any],
    run_id: str,
    pace: tuple[int, Limit],
    progress_factory: Callable[[str], Progress] | None,
) -> dict[str, Any]:
    """Restore one prepared source into ``target`` with BatchWriteItem at ``pace`` (workers, limit)."""
    workers, limit = pace
    progress = progress_factory(target) if progress_factory else None
    described = (describe_table(ddb, target) or {}) if limit.percent is not None else {}
    rate = table_rate(described, "write", rate=limit.rate, percent=limit.percent)
    return {**_restore_one(ddb, s3, src, target, info, run_id, (workers, rate or 0.0), progress), "method": "write"}


def _check_expected(source: str, s3: Any, expect: int) -> None:
    """Count the items of ``source`` (its promised count, or its lines when it has none); refuse a difference."""
    src = open_source(source, s3)
    held = src.expected_items
    if held is None:
        held = sum(sum(1 for _ in part_lines(part, src.s3)) for part in src.parts)
    if held != expect:
        raise IntegrityError(
            f"{src.location} holds {held} items, --expect-items says {expect}: nothing restored "
            "(a file cut short, or the wrong file?)"
        )


def _check_restored(src: Source, result: dict[str, Any], expect: int | None, warn: Callable[[str], None]) -> None:
    """After writing: the items read against ``expect``; for a source without a count, say how many there were."""
    read = result["itemsRead"]
    if expect is not None and read != expect:
        raise RestoreIncomplete(
            f"{src.location}: read {read} items but --expect-items says {expect}; {result['table']} is incomplete"
        )
    if expect is None and src.expected_items is None:
        warn(
            f"{src.location}: {read:,} items restored into {result['table']}; the source carries no count "
            "to check that against (give --expect-items N to have the run fail on a difference)"
        )


def _exact(ddb: Any, s3: Any, location: str, target: str) -> dict[str, Any]:
    """An exact backup's changes applied after its parts (issue 14); nothing for other backups."""
    from ddb_backup.aws.s3io import split_s3_url
    from ddb_backup.changes.consistent import finish_restore

    bucket, directory = split_s3_url(location)
    done = finish_restore(ddb, s3, bucket, directory, target)
    return {"consistentAt": done["consistentAt"], "changes": done["changes"]} if done else {}


def _request(
    source: str,
    table: str | None,
    mapping: list[tuple[str, str]] | None,
    backup_id: str | None,
    mode: str,
    allow_source: bool,
    key_names: list[str] | None,
) -> dict[str, Any]:
    """The restore state machine's input for these options."""
    request: dict[str, Any] = {"source": source, "mode": mode, "allowSource": allow_source}
    if table:
        request["table"] = table
    if mapping:
        request["map"] = [{"from": a, "to": b} for a, b in mapping]
    if backup_id:
        request["backupId"] = backup_id
    if key_names:
        request["keys"] = key_names
    return request


def _restore_one(
    ddb: Any,
    s3: Any,
    src: Source,
    target: str,
    info: dict[str, Any],
    run_id: str,
    pace: tuple[int, float],
    progress: Progress | None,
) -> dict[str, Any]:
    """Write one prepared source into ``target`` with (requests in flight, write units a second); its result row."""
    save = dead_letter_writer(src.dead_letter_base or ".", run_id, s3)

    def dead_letter(items: list[dict[str, Any]]) -> str:
        return str(save(target, items))

    started = time.monotonic()
    counts = write_items(
        ddb,
        target,
        fastwrite.source_items(src, ddb),
        dead_letter=dead_letter,
        concurrency=pace[0],
        write_rate=pace[1],
        key_names=[k["AttributeName"] for k in info["keySchema"]],
        progress=progress.add if progress else None,
    )
    if progress:
        progress.close()
    expected = src.expected_items
    if expected is not None and counts["items"] != expected:
        raise RestoreIncomplete(
            f"{src.location}: read {counts['items']} items but the backup promises {expected}; {target} is incomplete"
        )
    return {
        "source": src.location,
        "format": src.format,
        "table": target,
        "created": info["created"],
        "items": counts["written"],
        "itemsRead": counts["items"],
        "countChecked": expected is not None,
        "duplicateKeys": counts["duplicateKeys"],
        "seconds": round(time.monotonic() - started, 3),
    }
