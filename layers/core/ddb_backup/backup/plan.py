"""Plan a backup run: which tables, how each is described, how many segments."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ddb_backup import __version__
from ddb_backup.aws.ratelimit import NO_LIMIT, Limit, segment_share, table_rate
from ddb_backup.aws.s3io import put_json
from ddb_backup.aws.tables import describe
from ddb_backup.errors import BadInput, TableNotFound
from ddb_backup.format import layout
from ddb_backup.names import check_backup_id, check_table_name, new_backup_id

GiB = 1024**3
MAX_SEGMENTS = 1_000_000
#: Under a run's bookkeeping prefix: the scan Map's work list, and the finalize Map's table list.
WORK = "segments.json"
TABLES = "tables.json"
#: The exact-backup hook (see :mod:`ddb_backup.backup.exact`): (table, description, segments, rate) -> plan fields.
Exact = Callable[[str, dict[str, Any], int, float | None], dict[str, Any] | None]


def resolve_tables(ddb: Any, tables: list[str] | None, prefix: str | None) -> list[str]:
    """The tables of a run: an explicit list (checked to exist) or every table starting with ``prefix``."""
    if bool(tables) == bool(prefix):
        raise BadInput("give either 'tables' (a list of names) or 'tablePrefix', not both and not neither")
    if tables:
        for name in tables:
            check_table_name(name)
        return list(dict.fromkeys(tables))
    found = [
        name
        for page in ddb.get_paginator("list_tables").paginate()
        for name in page["TableNames"]
        if name.startswith(prefix or "")
    ]
    if not found:
        raise TableNotFound(f"no table name starts with {prefix!r}")
    return sorted(found)


def choose_segments(size_bytes: int, bytes_per_segment: int, max_segments: int) -> int:
    """TotalSegments for a table of ``size_bytes``: one per ``bytes_per_segment``, within [1, max]."""
    if bytes_per_segment <= 0:
        raise BadInput("bytes per segment must be positive")
    upper = max(1, min(max_segments, MAX_SEGMENTS))
    return max(1, min(upper, math.ceil(size_bytes / bytes_per_segment)))


def _segments(table: str, directory: str, total: int, share: float) -> list[dict[str, Any]]:
    """The work items of one table: one per segment, each with its share of the read rate (0: no limit)."""
    return [
        {"table": table, "backupDir": directory, "segment": s, "totalSegments": total, "readRate": share}
        for s in range(total)
    ]


@dataclass(frozen=True)
class Settings:
    bucket: str
    prefix: str = ""
    bytes_per_segment: int = GiB // 2
    max_segments: int = 1000
    read_percent: float | None = None  # the stack's ReadPercent: a share of each table's read capacity
    concurrency: int = 100  # segments scanned at once: a table's rate is shared among this many


def _record_run(s3: Any, settings: Settings, backup_id: str, names: list[str], now: dt.datetime) -> None:
    """The run's ``run.json``: every table it plans, so a set restore can tell a complete run from a cut one."""
    record = {"backupId": backup_id, "startedAt": now.isoformat(), "tables": names}
    put_json(s3, settings.bucket, layout.run_dir(settings.prefix, backup_id) + layout.RUN_RECORD, record)


def plan_run(
    ddb: Any,
    s3: Any,
    settings: Settings,
    *,
    tables: list[str] | None = None,
    table_prefix: str | None = None,
    segments: int | None = None,
    backup_id: str | None = None,
    now: dt.datetime | None = None,
    limit: Limit = NO_LIMIT,
    exact: Exact | None = None,
) -> dict[str, Any]:
    """Describe every table, write the run's ``run.json``, each backup's ``plan.json`` and the run's work list.

    Returns the run: its S3 keys, counts and tables (for the state machine,
    :func:`for_the_state` drops the table list). The work list (one entry per
    table and segment) and the table list go to S3 under the run's
    bookkeeping prefix, where the Distributed Maps read them, so their size
    is not bound by the 256 KiB state payload.
    Each segment carries ``readRate``: its share of the table's (``limit``, else ``settings.read_percent``).
    ``exact``: notes the stream position of each table backed up exactly (``plan.json``'s ``stream``), before any scan.
    """
    now = now or dt.datetime.now(dt.UTC)
    backup_id = check_backup_id(backup_id) if backup_id else new_backup_id(now)
    if segments is not None and not 1 <= segments <= MAX_SEGMENTS:
        raise BadInput(f"segments must be between 1 and {MAX_SEGMENTS}, got {segments}")
    names = resolve_tables(ddb, tables, table_prefix)
    _record_run(s3, settings, backup_id, names, now)  # first: a set restore knows every table planned
    run_tables: list[dict[str, Any]] = []
    work: list[dict[str, Any]] = []
    for name in names:
        entry, segment_tasks = _plan_table(ddb, s3, settings, name, backup_id, now, segments, limit, exact)
        run_tables.append(entry)
        work.extend(segment_tasks)
    return _write_lists(s3, settings.bucket, run_prefix(settings.prefix, backup_id), backup_id, run_tables, work)


def _write_lists(
    s3: Any, bucket: str, prefix: str, backup_id: str, tables: list[dict[str, Any]], work: list[dict[str, Any]]
) -> dict[str, Any]:
    """Write the work list and the table list under the run's prefix; the run as the state carries it."""
    put_json(s3, bucket, prefix + WORK, work)
    put_json(s3, bucket, prefix + TABLES, tables)
    return {
        "backupId": backup_id,
        "bucket": bucket,
        "runPrefix": prefix,
        "workKey": prefix + WORK,
        "tablesKey": prefix + TABLES,
        "segments": len(work),
        "tables": tables,
    }


def _plan_table(
    ddb: Any,
    s3: Any,
    settings: Settings,
    name: str,
    backup_id: str,
    now: dt.datetime,
    segments: int | None,
    limit: Limit,
    exact: Exact | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Describe one table and write its ``plan.json``; its entry in the run and its segment tasks."""
    description = describe(ddb, name)
    total = segments or choose_segments(
        int(description["Table"].get("TableSizeBytes", 0)),
        settings.bytes_per_segment,
        settings.max_segments,
    )
    rate = table_rate(
        description, "read", rate=limit.rate, percent=limit.percent, default_percent=settings.read_percent
    )
    directory = layout.backup_dir(settings.prefix, name, backup_id)
    plan = {"table": name, "backupId": backup_id, "startedAt": now.isoformat(), "totalSegments": total}
    noted = (exact(name, description, total, rate or None) if exact else None) or {}
    plan.update(noted)
    put_json(
        s3,
        settings.bucket,
        directory + layout.PLAN,
        {**plan, "toolVersion": __version__, "description": description},
    )
    size = {k: int(description["Table"].get(f, 0)) for k, f in (("items", "ItemCount"), ("bytes", "TableSizeBytes"))}
    entry = {"table": name, "backupDir": directory, "totalSegments": total, "readRate": rate or 0, **size}
    entry.update(exact="stream" in noted, **({"warning": noted["warning"]} if "warning" in noted else {}))
    return entry, _segments(name, directory, total, segment_share(rate, total, settings.concurrency))


def for_the_state(run: dict[str, Any]) -> dict[str, Any]:
    """The run as the state machine carries it: no list that grows with the tables (they are at ``tablesKey``)."""
    state = {k: v for k, v in run.items() if k != "tables"}
    return {**state, "tableCount": len(run["tables"]), "scanError": None}  # the scan Map's Catch sets scanError


def run_prefix(prefix: str, backup_id: str) -> str:
    """A backup run's bookkeeping prefix: work list, table list, per-table notes, Map results, report."""
    return layout.run_dir(prefix, backup_id)
