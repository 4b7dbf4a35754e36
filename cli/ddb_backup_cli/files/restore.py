"""Restores driven from this process (the CLI), with the restore state machine's own rules.

The same ``prepare_targets`` (check every target, then create) and the same
``write_items`` (25-item batches, backoff, dead letters) as the Lambdas.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shlex
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit
from ddb_backup.changes.consistent import stored_changes
from ddb_backup.errors import BillingNotRestored, DdbBackupError, IntegrityError, RestoreIncomplete
from ddb_backup.format.dialects import item_size
from ddb_backup.format.lines import part_lines
from ddb_backup.format.sources import Source, open_source
from ddb_backup.names import backup_id_time, is_s3_url, utc_time
from ddb_backup.restore import capacity, fastwrite, importtable
from ddb_backup.restore.deadletters import dead_letter_writer
from ddb_backup.restore.preflight import resume_hint
from ddb_backup.restore.resume import Mark, clear_mark
from ddb_backup.restore.run import prepare_targets
from ddb_backup.restore.write import write_items
from ddb_backup.selection import cost
from ddb_backup_cli import endpoint
from ddb_backup_cli.common import UsageError
from ddb_backup_cli.files import cancel, mirror
from ddb_backup_cli.files.select import Selection, overlay
from ddb_backup_cli.progress import Progress, counted

if TYPE_CHECKING:
    from ddb_backup.format.ddbjson import Item

LOG = logging.getLogger(__name__)


@dataclass
class _Run:
    """The options of one restore that each target's writing and finishing use."""

    writers: tuple[int, mirror.Confirm]  # workers, and whether a mirror may delete
    progress_factory: Callable[[str], Progress] | None
    warn: Callable[[str], None]
    note: Callable[[str], None]
    checks: tuple[bool, int | None, Callable[[str], dict[str, Any]] | None]
    select: Selection | None


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
    workers: int = 16,
    progress_factory: Callable[[str], Progress] | None = None,
    warn: Callable[[str], None] = lambda text: None,
    expect_items: int | None = None,
    limit: Limit = NO_LIMIT,
    read: Limit = NO_LIMIT,
    exact: bool = True,
    load_billing: str | None = None,
    within: str | None = None,
    dry_run: bool = False,
    method: str = "write",
    note: Callable[[str], None] = lambda text: None,
    confirm: mirror.Confirm = mirror.refuse,
    after_parts: Callable[[str], dict[str, Any]] | None = None,
    select: Selection | None = None,
) -> list[dict[str, Any]]:
    """Restore ``source`` into ``table`` (or a set, renamed by ``mapping``); one result per table.

    Targets are checked before any write and stay marked until their items are written, counted and
    ``after_parts(target)`` applied (a restore to a time's changes, else an exact backup's own). Options:
    ``expect_items`` checked before and after; ``limit``, ``load_billing``, ``within``: :mod:`ddb_backup.restore.
    capacity`; ``mode``, ``dry_run``, ``read`` (the rate of a mirror's scans): :mod:`.mirror`; ``method``: ``importtable``; ``select``: only the items it
    selects (:mod:`.select`; under its ``preview``, the rows to show and nothing written). Ctrl-C:
    ``cancel.Interrupted``. ``confirm(target, count)``: whether a mirror may delete ``count`` items (default: no).
    """
    _check_expected(source, s3, expect_items) if expect_items is not None else None
    _check_selectable(mode, method, expect_items) if select is not None else None
    extra: dict[str, Any] = {"writeRate": limit.rate, "writePercent": limit.percent, "loadBilling": load_billing}
    extra.update(within=within, tables=tables, allowPartial=allow_partial or None, method=method)
    extra.update(expectItems=expect_items, readRate=read.rate, readPercent=read.percent)  # a mirror: checked count
    request = {**_request(source, table, mapping, backup_id, mode, allow_source, key_names), **extra}
    run_id = f"cli-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    run = _Run((workers, confirm), progress_factory, warn, note, (exact, expect_items, after_parts), select)
    with tempfile.TemporaryDirectory(prefix="ddb-backup-select-") as spool:
        narrowed = _narrowed(ddb, s3, request, run_id, select, Path(spool), note) if select else {}
        if select is not None and select.preview:
            return [_preview_row(src, target, select, after_parts is None) for src, target in narrowed.values()]
        prepared, backup_run, notes = prepare_targets(ddb, s3, request, bucket=None, run_id=run_id, check_only=dry_run)
        if backup_run:  # a resume finishes this run, not a newer one
            request["backupId"] = backup_run
        prepared = [(narrowed[t][0] if t in narrowed else src, t, info) for src, t, info in prepared]
        list(map(warn, notes))
        if dry_run:
            rows = [mirror.dry_run(ddb, src, t, info, mode, mirror.read_of(request)) for src, t, info in prepared]
            return [{**row, "cost": select.cost} for row in rows] if select is not None else rows
        return _restore_prepared(ddb, s3, prepared, request, run_id, run)


def _restore_prepared(
    ddb: Any,
    s3: Any,
    prepared: list[tuple[Source, str, dict[str, Any]]],
    request: dict[str, Any],
    run_id: str,
    run: _Run,
) -> list[dict[str, Any]]:
    """Write each prepared target, check and finish it; every target switched to on-demand for the load put back."""
    loaded = {target: info["loadBilling"] for _, target, info in prepared if info.get("loadBilling")}
    results = []
    try:
        for src, target, info in prepared:
            list(map(run.warn, src.warnings + info.get("warnings", []) + info.get("capacity", [])))
            if request.get("method", "write") != "write":  # a choice made (auto): why; --method write needs none
                run.note(info["reason"])
            if info["method"] == "import":
                result = _import_one(ddb, src, target, info, run_id, run.warn)
            else:
                result = _write_selected(ddb, s3, (src, target, info), run_id, request, run)
            result["methodReason"] = info["reason"]
            if run.select is not None:
                result["selected"] = [s.label for s in run.select.selectors]
            results.append(_finish_one(ddb, src, result, run.checks, run.warn, run.select))
            if target in loaded:
                capacity.put_back(ddb, target, loaded.pop(target))
    except (DdbBackupError, cancel.Interrupted) as exc:
        if len(results) < len(prepared) > 1:  # a set: where each table stands, and the command that finishes it
            hint = not isinstance(exc, cancel.Interrupted)  # Ctrl-C's own message already names the command
            exc.args = (f"{exc}\n{set_state([t for _, t, _ in prepared], results, request, hint=hint)}",)
        raise
    except Exception as exc:  # an AWS, network or other failure: the same summary, after the failure's own words
        if len(results) < len(prepared) > 1:
            state = set_state([t for _, t, _ in prepared], results, request)
            raise RestoreIncomplete(
                f"{endpoint.describe_failure(exc) or f'{type(exc).__name__}: {exc}'}\n{state}"
            ) from exc
        raise
    finally:
        _put_back_all(ddb, loaded, run.warn)
    return results


def set_state(targets: list[str], results: list[dict[str, Any]], request: dict[str, Any], *, hint: bool = True) -> str:
    """Where a failed set restore left each target: finished, marked and partial (the one that failed), or marked
    and not started (every target is created and marked before the first is written); the command that resumes."""
    done = {r["table"]: r for r in results}
    width = max(map(len, targets))
    lines = ["the set restore stopped; its tables:"]
    for number, target in enumerate(targets):
        if target in done:
            state = f"finished ({done[target].get('items', 0):,} items written and counted)"
        elif number == len(results):
            state = "marked, partial: its restore failed while writing it"
        else:
            state = "marked, not started: nothing written yet"
        lines.append(f"  {target:{width}}  {state}")
    if hint:
        lines.append(resume_hint(request, targets[len(results)]))
    return "\n".join(lines)


def _write_selected(
    ddb: Any, s3: Any, prepared: tuple[Source, str, dict[str, Any]], run_id: str, request: dict[str, Any], run: _Run
) -> dict[str, Any]:
    """:func:`_write_one`; stopped by Ctrl-C under a selection, the command that resumes repeats the selection
    (without it, a resumed run would write every item of the backup)."""
    try:
        return _write_one(ddb, s3, prepared, run_id, request, run.writers, run.progress_factory)
    except cancel.Interrupted as exc:
        if run.select is None:
            raise
        words = shlex.join(w for pair in run.select.given for w in pair)
        raise cancel.Interrupted(f"{exc}; add this run's selection to it, {words}, or every item is restored") from None


def _check_selectable(mode: str, method: str, expect_items: int | None) -> None:
    """A selection restores some items with BatchWriteItem, into a new table or over an existing one."""
    if mode == "mirror":
        raise UsageError(
            "--mode mirror makes the whole table the backup (deleting what the backup lacks): it cannot be "
            "limited to selected items; use --mode overwrite to put the selected items back"
        )
    if method != "write":
        raise UsageError(
            "--method import loads a whole backup into a new table; selected items are written: leave it out"
        )
    if expect_items is not None:
        raise UsageError("--expect-items counts the whole source; a selection's matches are counted and checked anyway")


def _narrowed(
    ddb: Any, s3: Any, request: dict[str, Any], run_id: str, select: Selection, spool: Path, note: Callable[[str], None]
) -> dict[str, tuple[Source, str]]:
    """Each target's source narrowed to the selected items (checked: nothing created or marked), by target; what
    reading the source costs said (``note``) before it is read."""
    checked, _, _ = prepare_targets(ddb, s3, request, bucket=None, run_id=run_id, check_only=True)
    if len(checked) != 1:
        raise UsageError("--key, --key-prefix and --keys-file select items of one table: give --table, not --map")
    ((src, target, info),) = checked
    select.bind(info["keySchema"], target)
    note(cost.describe({"read": cost.read_cost(src.parts)}))
    return {target: (select.narrow(src, spool, target), target)}


def _preview_row(src: Source, target: str, select: Selection, own_changes: bool) -> dict[str, Any]:
    """What ``--preview`` shows: the selected items as of the backup's moment (an exact backup's own changes
    applied, when ``own_changes``), and that moment."""
    items = list(src.items())
    moment = _backup_time(src)
    stored = stored_changes(src.s3, src.location) if own_changes and src.consistent_at else None
    if stored is not None:
        moment = stored[0]
        items = overlay(items, [c for c in stored[1] if select.keeps(c)], utc_time(moment), select.key_names)
    row = {"source": src.location, "table": target, "keyNames": select.key_names, "items": items, "moment": moment}
    return {**row, "cost": select.cost}


def _backup_time(src: Source) -> str | None:
    """The time a backup was taken, from its id (``20261122T030000Z-1a2b3c4d``); None when the source has none."""
    try:
        taken = backup_id_time(src.backup_id or "")
    except ValueError:
        return None
    return taken.isoformat()


def _finish_one(
    ddb: Any,
    src: Source,
    result: dict[str, Any],
    checks: tuple[bool, int | None, Callable[[str], dict[str, Any]] | None],
    warn: Callable[[str], None],
    select: Selection | None = None,
) -> dict[str, Any]:
    """After one table's writes: the counts checked, then the changes to apply (``checks[2]``, else an exact
    backup's own when ``checks[0]``), and only then the mark removed (an interrupted run still looks unfinished)."""
    exact, expect, after_parts = checks
    target = result["table"]
    result.setdefault("bytes", _source_bytes(src))
    _check_restored(src, result, expect, warn)
    if after_parts is not None:
        result.update(after_parts(target))
    elif exact and src.format == "ddb-backup-v1":
        result.update(_exact(ddb, src, target, select))
    clear_mark(ddb, target)
    return result


def _source_bytes(src: Source) -> int | None:
    """The backup's size as stored (every part's bytes; a local file's size), or None when a part's is unknown."""
    sizes = [p.bytes if p.bytes is not None else _local_size(p.url) for p in src.parts]
    return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)


def _local_size(url: str) -> int | None:
    """A local file's size, None for an S3 object or a file that cannot be read."""
    if is_s3_url(url):
        return None
    try:
        return os.path.getsize(url)
    except OSError:
        return None


def _put_back_all(ddb: Any, loaded: dict[str, dict[str, Any]], warn: Callable[[str], None]) -> None:
    """Targets still on-demand for the load after a failure: switch each back, or say how to (never silently)."""
    for target, spec in loaded.items():
        try:
            capacity.put_back(ddb, target, spec)
        except BillingNotRestored as exc:
            warn(str(exc))


def _stopped(request: dict[str, Any], src: Source, target: str, written: int) -> str:
    """What a restore stopped by Ctrl-C says: the items written, the mark left, the command that finishes the job.

    The command names the exact backup begun (not a table's directory, whose latest backup a newer one replaces)
    and keeps a mirror a mirror.
    """
    expected = src.expected_items
    of = f" of {expected:,}" if expected is not None else ""
    exact = None if request.get("map") else src.location
    hint = resume_hint(request, target, exact)
    if written == 0:
        return (
            f"the restore into {target} stopped before any item was written; the table is marked as a restore in "
            f"progress until a run completes it: {hint}"
        )
    return (
        f"the restore into {target} stopped after {written:,}{of} items were written; the table is marked "
        f"as holding a partial restore until a run completes it: {hint}"
    )


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
    prepared: tuple[Source, str, dict[str, Any]],
    run_id: str,
    request: dict[str, Any],
    workers: tuple[int, mirror.Confirm],
    progress_factory: Callable[[str], Progress] | None,
) -> dict[str, Any]:
    """Restore one prepared source into its target with BatchWriteItem; Ctrl-C says what was written and how to go on.

    ``workers``: requests in flight, and whether a mirror may delete (``confirm``).
    """
    src, target, info = prepared
    progress = progress_factory(target) if progress_factory else Progress(target, enabled=False)
    pace = (workers[0], info["writeRate"])
    mode = request.get("mode") or "new"
    try:  # _restore_one closes the progress
        row = _restore_one(
            ddb, s3, src, target, info, run_id, pace, progress, (mode, workers[1], mirror.read_of(request))
        )
    except KeyboardInterrupt:
        raise cancel.Interrupted(_stopped(request, src, target, progress.items)) from None
    return {**row, "method": "write"}


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


def _exact(ddb: Any, src: Source, target: str, select: Selection | None = None) -> dict[str, Any]:
    """An exact backup's changes applied after its parts (issue 14), from S3 or a local copy of the backup's
    directory (under a selection: the selected keys' only); nothing for other backups."""
    from ddb_backup.restore.partitioned.files import backup_files
    from ddb_backup.restore.partitioned.local import apply_changes

    listed = backup_files(src.s3, src.location)
    if listed is None:
        return {}
    moment, files = listed
    done = apply_changes(ddb, src.s3, files, utc_time(moment), target, keep=select.keeps if select else None)
    return {"consistentAt": moment, "changes": done["changes"]}


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
    how: tuple[str, mirror.Confirm, Limit] = ("new", mirror.refuse, NO_LIMIT),
) -> dict[str, Any]:
    """Write one prepared source into ``target`` with ``pace`` (requests in flight, write units a second) and ``how``
    (the mode, and for a mirror whether it may delete and its scans' read rate); its result row."""
    save = dead_letter_writer(src.dead_letter_base or ".", run_id, s3)

    def write(items: Iterable[Item], delete: bool) -> dict[str, Any]:
        return write_items(
            ddb,
            target,
            items,
            dead_letter=lambda xs: str(save(f"{target}-deletes" if delete else target, xs)),
            concurrency=pace[0],
            write_rate=pace[1],
            key_names=[k["AttributeName"] for k in info["keySchema"]],
            progress=progress.add if progress and not delete else None,
            delete=delete,
            sleep=cancel.sleep,
        )

    started = time.monotonic()
    expected = src.expected_items
    LOG.info(
        "%s -> %s: %d part(s), %s items",
        src.location,
        target,
        len(src.parts),
        expected if expected is not None else "uncounted",
    )
    if progress:
        progress.set_total(expected)
    try:
        if how[0] == "mirror":
            return mirror.mirror_one(ddb, src, target, info, write, how[1], how[2])
        items = counted(_logged_items(src, ddb, target), progress, size=_line_bytes, count_items=False)
        counts = write(items, False)
    finally:
        if progress:
            progress.close()
    mirror.check_count(src, counts["items"], target)
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


def _logged_items(src: Source, ddb: Any, target: str) -> Iterator[Any]:
    """Every item of ``src`` for writing (:func:`fastwrite.read_part`), each part's start logged."""
    for number, part in enumerate(src.parts, 1):
        LOG.info("%s: part %d/%d %s (%s items)", target, number, len(src.parts), part.id, part.items)
        yield from fastwrite.read_part(part, src.s3, ddb=ddb)


def _line_bytes(item: Any) -> int:
    """An item's bytes: its backup line as read (with the newline), else its DynamoDB item size."""
    return len(item.line) + 1 if isinstance(item, fastwrite.RawItem) else item_size(item)
