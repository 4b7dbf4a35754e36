"""Backups driven from this process (the CLI), on the same core the Lambdas run.

``backup_to_s3`` runs plan -> scan every segment -> finalize exactly as the
state machine does, with threads instead of a Distributed Map, and writes
backup format v1. ``backup_to_file`` writes the single-file local format
(the Cumulus habit: ``backups/<table>.json``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit, RateLimiter, table_rate
from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.aws.s3io import get_json
from ddb_backup.aws.tables import describe
from ddb_backup.backup import fastscan
from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Settings, choose_segments, plan_run
from ddb_backup.backup.scan import FastPages, ScanSettings, scan_segment
from ddb_backup.format.localfile import LocalFileWriter
from ddb_backup_cli.files import cancel
from ddb_backup_cli.progress import Progress

MiB = 1024 * 1024


def segment_pages(
    ddb: Any, table: str, segment: int, total: int, *, page_limit: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every page of one scan segment, items in client form."""
    request: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": total}
    if page_limit:
        request["Limit"] = page_limit
    while True:
        page = call_with_backoff(ddb.scan, **request)
        yield page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


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
    total = segments or local_segments(description, workers)
    rate = table_rate(description, "read", rate=limit.rate, percent=limit.percent)
    limiter = RateLimiter(rate) if rate else None
    lock = threading.Lock()

    def run(segment: int) -> None:
        for data, n in segment_lines(ddb, table, segment, total, limiter=limiter):
            cancel.check()
            if not n:
                continue
            with lock:
                writer.write_lines([data], n)
            if progress:
                progress.add(n, len(data))

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
) -> list[dict[str, Any]]:
    """Back up tables to ``s3://bucket/prefix`` in format v1, with the state machine's own steps.

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
    )
    settings = scan_settings or ScanSettings(bucket=bucket)
    work = get_json(s3, bucket, run["workKey"])

    parts: Counter[str] = Counter()  # parts written, by backup directory

    def run_segment(task: dict[str, Any]) -> None:
        while not task.get("done"):
            cancel.check()
            before = int(task.get("items", 0)), int(task.get("bytes", 0)), int(task.get("nextPart", 0))
            task = scan_segment(ddb, s3, settings, task, time_left=cancel.time_left(600.0))
            parts[task["backupDir"]] += task["nextPart"] - before[2]
            if progress:
                progress.add(task["items"] - before[0], task["bytes"] - before[1])

    try:
        cancel.run_all(run_segment, [dict(t) for t in work], workers)
    except KeyboardInterrupt:
        raise cancel.Interrupted(_left_in_s3(bucket, run, parts)) from None
    s3.delete_object(Bucket=bucket, Key=run["workKey"])
    return [finalize_table(s3, bucket, t["backupDir"]) for t in run["tables"]]


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
