"""Backups driven from this process (the CLI), on the same core the Lambdas run.

``backup_to_s3`` runs plan -> scan every segment -> finalize exactly as the
state machine does, with threads instead of a Distributed Map, and writes
backup format v1. ``backup_to_file`` writes the single-file local format
(the Cumulus habit: ``backups/<table>.json``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit, RateLimiter, table_rate
from ddb_backup.aws.s3io import get_json
from ddb_backup.aws.tables import describe
from ddb_backup.backup import fastscan
from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Exact, Settings, choose_segments, plan_run
from ddb_backup.backup.sample import may_be_stale, sample_size, sampled_note
from ddb_backup.backup.scan import FastPages, ScanSettings, scan_segment
from ddb_backup.format.localfile import LocalFileWriter
from ddb_backup_cli.files import cancel

if TYPE_CHECKING:
    from ddb_backup_cli.progress import Progress

MiB = 1024 * 1024
LOG = logging.getLogger(__name__)


def segment_lines(
    ddb: Any,
    table: str,
    segment: int,
    total: int,
    *,
    page_limit: int | None = None,
    limiter: RateLimiter | None = None,
) -> Iterator[tuple[bytes, int]]:
    """Every page of one scan segment as backup lines (joined) and their count, on the fast path (fastscan).

    ``limiter``: the read rate this segment keeps to (shared with the table's other segments, in this process).
    """
    request: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": total}
    if page_limit:
        request["Limit"] = page_limit
    pages = FastPages(ddb, request, limiter)
    while True:
        page = pages.next_page()
        yield page.data, page.items
        if page.last_key is None:
            return
        fastscan.next_request(request, page.last_key)


def local_segments(description: dict[str, Any], workers: int) -> int:
    """Segments for a local backup: one per 64 MiB of table, at least one per worker for big tables."""
    size = int(description["Table"].get("TableSizeBytes", 0))
    return max(choose_segments(size, 64 * MiB, 4096), workers if size > 16 * MiB else 1)


def backup_to_file(
    ddb: Any,
    table: str,
    path: Path,
    *,
    segments: int | None = None,
    workers: int = 8,
    progress: Progress | None = None,
    replace: bool = False,
    run_of: tuple[str, list[str]] | None = None,
    limit: Limit = NO_LIMIT,
) -> dict[str, Any]:
    """Write ``table`` to ``path`` in the local file format; returns a summary.

    ``run_of``: (run id, every table of the run), recorded in the header so a set
    restore of a directory can tell files of one run from a mix of runs.
    ``limit``: the table's read rate; the segments, all in this process, share
    one token bucket, so a segment that finishes early leaves its share to the others.

    The file is written under a temporary name of its own and moved into
    place when complete, so ``path`` never holds a partial backup; an
    existing ``path`` is replaced only when ``replace`` (else ``BadInput``,
    before the table is read). On Ctrl-C the segments stop at their next
    page, the temporary file is removed and ``cancel.Interrupted`` says so.
    """
    description = describe(ddb, table)
    approx, size, figures = _about(ddb, description, sample=bool(progress and progress.enabled))
    total = segments or local_segments({"Table": {"TableSizeBytes": size}}, workers)
    rate = table_rate(description, "read", rate=limit.rate, percent=limit.percent)
    limiter = RateLimiter(rate) if rate else None
    lock = threading.Lock()
    if progress:
        progress.set_total(approx, approximate=True)
    LOG.info("%s: %d segment(s), about %d items (%s), to %s", table, total, approx, figures, path)

    def run(segment: int) -> None:
        items = 0
        for data, n in segment_lines(ddb, table, segment, total, limiter=limiter):
            cancel.check()
            if not n:
                continue
            with lock:
                writer.write_lines([data], n)
            items += n
            if progress:
                progress.add(n, len(data))
        LOG.info("%s segment %d/%d: %d items", table, segment + 1, total, items)

    writer = LocalFileWriter(path, table=table, description=description, extra=_extra(total, run_of), replace=replace)
    try:
        with writer:
            cancel.run_all(run, range(total), workers)
    except KeyboardInterrupt:
        raise cancel.Interrupted(
            f"the backup of {table} stopped after {writer.items:,} items; {path} was not written "
            f"(its temporary file {writer.tmp.name} was removed): run the same command again to back it up"
        ) from None
    count = writer.items
    return {"table": table, "file": str(path), "items": count, "segments": total, "bytes": path.stat().st_size}


def _about(ddb: Any, description: dict[str, Any], sample: bool) -> tuple[int, int, str]:
    """About how many items and bytes a table holds, and from where: DescribeTable, or (``sample``: a progress is
    drawn) a sample when its figures may be stale (a table filled an hour ago says 0): the progress keeps a total,
    and the segments fit the size."""
    table = description["Table"]
    why = may_be_stale(table)
    if why is None or not sample:
        return int(table["ItemCount"]), int(table["TableSizeBytes"]), "ItemCount"
    sampled = sample_size(ddb, table["TableName"])
    return (
        int(sampled["items"]),
        max(int(table.get("TableSizeBytes") or 0), int(sampled["bytes"])),
        sampled_note(sampled, why),
    )


def _extra(segments: int, run: tuple[str, list[str]] | None) -> dict[str, Any]:
    """The local file header's fields beyond the format's own."""
    return {"segments": segments, **({"run": run[0], "runTables": run[1]} if run else {})}


def backup_to_s3(
    ddb: Any,
    s3: Any,
    bucket: str,
    prefix: str,
    *,
    tables: list[str] | None = None,
    table_prefix: str | None = None,
    segments: int | None = None,
    workers: int = 8,
    progress: Progress | None = None,
    scan_settings: ScanSettings | None = None,
    limit: Limit = NO_LIMIT,
    exact: Exact | None = None,
    streams: Any = None,
    settle: float = 2.0,
) -> list[dict[str, Any]]:
    """Back up tables to ``s3://bucket/prefix`` in format v1, with the state machine's own steps.

    ``exact`` (with ``streams``): the tables it notes a stream position for are backed up exactly.
    On Ctrl-C the segments stop at their next page, no manifest is written (each backup reads
    INCOMPLETE) and ``cancel.Interrupted`` names what was left and how to delete it.
    """
    run = plan_run(
        ddb,
        s3,
        Settings(bucket=bucket, prefix=prefix, bytes_per_segment=64 * MiB, max_segments=4096, concurrency=workers),
        tables=tables,
        table_prefix=table_prefix,
        segments=segments,
        limit=limit,
        exact=exact,
    )
    settings = scan_settings or ScanSettings(bucket=bucket)
    work = get_json(s3, bucket, run["workKey"])
    if progress:
        progress.set_total(sum(int(t.get("items") or 0) for t in run["tables"]), approximate=True)
    _log_plan(run)

    parts: Counter[str] = Counter()  # parts written, by backup directory

    def run_segment(task: dict[str, Any]) -> None:
        on_page = progress.add if progress else None
        while not task.get("done"):
            cancel.check()
            before = int(task.get("nextPart", 0))
            task = scan_segment(ddb, s3, settings, task, time_left=cancel.time_left(600.0), on_page=on_page)
            parts[task["backupDir"]] += task["nextPart"] - before
            _log_segment(task)

    try:
        cancel.run_all(run_segment, [dict(t) for t in work], workers)
    except KeyboardInterrupt:
        raise cancel.Interrupted(_left_in_s3(bucket, run, parts)) from None
    s3.delete_object(Bucket=bucket, Key=run["workKey"])
    return [_finalized(s3, bucket, t["backupDir"], streams, settle) for t in run["tables"]]


def _log_segment(task: dict[str, Any]) -> None:
    """A segment's progress after one scan call: items and parts so far, and whether it goes on."""
    segment = f"{int(task['segment']) + 1}/{int(task['totalSegments'])}"
    more = "" if task["done"] else ", going on"
    LOG.info("%s segment %s: %d items, %d part(s)%s", task["table"], segment, task["items"], task["nextPart"], more)


def _log_plan(run: dict[str, Any]) -> None:
    """Each table of a planned run: its backup id, segments and about how many items."""
    for t in run["tables"]:
        LOG.info(
            "%s: backup %s, %d segment(s), about %d items (ItemCount)",
            t["table"],
            run["backupId"],
            t["totalSegments"],
            t["items"],
        )


def _finalized(s3: Any, bucket: str, directory: str, streams: Any, settle: float) -> dict[str, Any]:
    """Finalize one table's backup (its manifest), logged."""
    summary = finalize_table(s3, bucket, directory, streams=streams, settle=settle)
    LOG.info(
        "%s: manifest s3://%s/%s, %d items in %d part(s)",
        summary["table"],
        bucket,
        summary["manifest"],
        summary["items"],
        summary["parts"],
    )
    return summary


def _left_in_s3(bucket: str, run: dict[str, Any], parts: Counter[str]) -> str:
    """What a backup to S3 stopped by Ctrl-C leaves: each backup's parts, no manifest, and how to delete them."""
    dirs = [f"s3://{bucket}/{t['backupDir']}" for t in run["tables"]]
    held = "; ".join(f"{url} holds {parts[t['backupDir']]} part(s)" for url, t in zip(dirs, run["tables"], strict=True))
    stopping = cancel.threads_left()
    if stopping:
        held += f" (and up to {stopping} more from the segment(s) still stopping when this process ended)"
    remove = " && ".join(f"aws s3 rm --recursive {url}" for url in [*dirs, f"s3://{bucket}/{run['runPrefix']}"])
    return (
        f"the backup stopped before its manifest was written, so it reads INCOMPLETE and restore refuses it: "
        f"{held}. Delete what it left with `{remove}`, and run the same command again for a new backup"
    )
