"""Restores driven from this process (the CLI), with the restore state machine's own rules.

The same ``prepare_targets`` (check every target, then create) and the same
``write_items`` (25-item batches, backoff, dead letters) as the Lambdas.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from ddb_backup.errors import RestoreIncomplete
from ddb_backup.format.location import is_s3
from ddb_backup.format.sources import Source
from ddb_backup.restore import fastwrite
from ddb_backup.restore.deadletters import dead_letter_writer
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
    mode: str = "new",
    allow_source: bool = False,
    key_names: list[str] | None = None,
    workers: int = 4,
    progress_factory: Callable[[str], Progress] | None = None,
    warn: Callable[[str], None] = lambda text: None,
    exact: bool = True,
) -> list[dict[str, Any]]:
    """Restore ``source`` into ``table`` (or a set, renamed by ``mapping``); one result per table.

    Raises ``TargetRefused`` before anything is written if any target is
    unsafe, and ``RestoreIncomplete`` naming the dead-letter location if
    items could not be written.
    """
    request = _request(source, table, mapping, backup_id, mode, allow_source, key_names)
    prepared, _ = prepare_targets(ddb, s3, request, bucket=None)
    run_id = f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    results = []
    for src, target, info in prepared:
        for text in src.warnings + info.get("warnings", []):
            warn(text)
        progress = progress_factory(target) if progress_factory else None
        results.append(_restore_one(ddb, s3, src, target, info, run_id, workers, progress))
        if exact and src.format == "ddb-backup-v1" and is_s3(src.location):
            results[-1].update(_exact(ddb, s3, src.location, target))
    return results


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
    workers: int,
    progress: Progress | None,
) -> dict[str, Any]:
    """Write one prepared source into ``target``; its result row."""
    save = dead_letter_writer(src.dead_letter_base or ".", run_id, s3)

    def dead_letter(items: list[dict[str, Any]]) -> str:
        return str(save(target, items))

    started = time.monotonic()
    counts = write_items(
        ddb,
        target,
        fastwrite.source_items(src, ddb),
        dead_letter=dead_letter,
        concurrency=workers,
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
        "duplicateKeys": counts["duplicateKeys"],
        "seconds": round(time.monotonic() - started, 3),
    }
