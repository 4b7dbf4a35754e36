"""Which backup run a set restore takes, knowing every table the run planned.

A run records the tables it planned in ``<prefix>@ddb-backup/runs/<id>/run.json``
before it writes anything else (runs from before that record: every table
directory holding ``<id>/``, which a plan creates first). A table of a run is
complete when its ``manifest.json`` exists.

"Latest" is the newest run whose planned tables (those the name mapping
selects) are all complete; newer incomplete runs are skipped and named. A
set restore refuses, naming every table, when the chosen run lacks a
complete backup of a planned table, or when the latest run leaves out tables
that have backups under the prefix, unless the person asks for a partial
set by name (``tables``) or explicitly (``allowPartial``).

A local directory of backup files (``backup --dir``) is a set when every
file comes from one run (``run`` in each file's header) and holds every table
that run planned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from ddb_backup import names
from ddb_backup.errors import BackupIncomplete, BadInput, UnknownFormat
from ddb_backup.format import layout, location
from ddb_backup.format.lines import file_lines

#: How a person asks for less than the whole set, quoted in every refusal.
PARTIAL_HINT = "name the tables wanted (tables / --tables A,B) or accept a partial set (allowPartial / --allow-partial)"


@dataclass
class RunChoice:
    """The run a set restore takes: its id, the complete backups to restore, and what was left out and why."""

    backup_id: str
    directories: list[str]
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Bucket:
    """What a prefix holds: table directories and their backup ids, run records, manifests seen."""

    root: str
    s3: Any
    ids: dict[str, list[str]]
    records: set[str]
    _complete: dict[tuple[str, str], bool] = field(default_factory=dict)
    _planned: dict[str, list[str]] = field(default_factory=dict)

    def directory(self, table: str, backup_id: str) -> str:
        return location.as_dir(location.join(location.join(self.root, table), backup_id))

    def planned(self, backup_id: str) -> list[str]:
        """The tables run ``backup_id`` planned: its ``run.json``, or (older runs) the tables holding its directory."""
        if backup_id not in self._planned:
            if backup_id in self.records:
                record = location.read_json(self._record_url(backup_id), self.s3)
                tables = [t for t in record.get("tables", []) if isinstance(t, str)]
            else:
                tables = [t for t, ids in self.ids.items() if backup_id in ids]
                # Old bookkeeping directories are valid table names: count them only with a manifest.
                tables = [t for t in tables if t not in layout.LEGACY_BOOKKEEPING or self.complete(t, backup_id)]
            self._planned[backup_id] = sorted(tables)
        return self._planned[backup_id]

    def complete(self, table: str, backup_id: str) -> bool:
        key = (table, backup_id)
        if key not in self._complete:
            self._complete[key] = location.exists(
                location.join(self.directory(table, backup_id), layout.MANIFEST), self.s3
            )
        return self._complete[key]

    def check(self, tables: list[str], backup_id: str) -> list[str]:
        """The tables of ``tables`` with no complete backup in run ``backup_id`` (HEADs side by side)."""
        with ThreadPoolExecutor(max_workers=16) as pool:
            done = list(pool.map(lambda t: self.complete(t, backup_id), tables))
        return [t for t, ok in zip(tables, done, strict=True) if not ok]

    def _record_url(self, backup_id: str) -> str:
        return location.join(self.root, f"{layout.BOOKKEEPING}runs/{backup_id}/{layout.RUN_RECORD}")


def _scan(root: str, s3: Any) -> _Bucket:
    tables = [t for t in location.list_dirs(root, s3) if names.is_table_name(t)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        listed = pool.map(lambda t: location.list_dirs(location.as_dir(location.join(root, t)), s3), tables)
        ids = {t: [i for i in found if _is_id(i)] for t, found in zip(tables, listed, strict=True)}
    records = {i for i in location.list_dirs(location.join(root, f"{layout.BOOKKEEPING}runs/"), s3) if _is_id(i)}
    return _Bucket(root, s3, ids, records)


def _is_id(name: str) -> bool:
    try:
        names.check_backup_id(name)
    except BadInput:
        return False
    return True


def find_run(
    root: str,
    s3: Any = None,
    backup_id: str | None = None,
    *,
    wanted: Callable[[str], bool] = lambda table: True,
    tables: list[str] | None = None,
    allow_partial: bool = False,
) -> RunChoice:
    """The run to restore under ``root`` (``s3://bucket/<prefix>``) and its complete backup directories.

    ``wanted``: which source tables the request restores (the name mapping);
    ``tables``: restore exactly these source tables; ``allow_partial``:
    restore what is complete and name the rest. Raises ``UnknownFormat`` when
    no run is there, ``BackupIncomplete`` naming every planned table without a
    complete backup (or every table the latest run left out).
    """
    s3 = location.s3_client(s3) if names.is_s3_url(root) else s3
    root = location.as_dir(root)
    found = _scan(root, s3)
    if tables:
        unknown = [t for t in tables if t not in found.ids]
        if unknown:
            raise UnknownFormat(f"{root}: no backup of table(s) {', '.join(unknown)} here")

    def asked(bid: str) -> list[str]:
        planned = found.planned(bid)
        return [t for t in tables if t in planned] if tables else [t for t in planned if wanted(t)]

    candidates = sorted({i for ids in found.ids.values() for i in ids} | found.records, reverse=True)
    if backup_id:
        if backup_id not in candidates or not asked(backup_id):
            raise UnknownFormat(f"{root}: no backup {backup_id} of a table this restore asks for")
        return _take(found, backup_id, asked(backup_id), tables, allow_partial)
    if candidates and not any(asked(c) for c in candidates):
        raise BadInput(
            f"{root}: this prefix has no table the name mapping applies to (tables here: {', '.join(sorted(found.ids))})"
        )
    candidates = [c for c in candidates if asked(c)]
    if not candidates:
        raise UnknownFormat(f"{root}: no complete backup found (expected <table>/<backup-id>/manifest.json under it)")
    return _latest(root, found, candidates, asked, tables, allow_partial, wanted)


def _latest(
    root: str,
    found: _Bucket,
    candidates: list[str],
    asked: Callable[[str], list[str]],
    tables: list[str] | None,
    allow_partial: bool,
    wanted: Callable[[str], bool],
) -> RunChoice:
    """The newest of ``candidates`` (newest first) whose asked tables are complete, naming the runs skipped."""
    skipped: list[str] = []
    for bid in candidates:
        want = asked(bid)
        if tables and len(want) < len(tables):
            continue  # a run that did not back up every table named
        missing = found.check(want, bid)
        if not missing or (allow_partial and len(missing) < len(want)):
            choice = _take(found, bid, want, tables, allow_partial)
            choice.skipped[:0] = skipped
            if not tables and not allow_partial:
                _check_coverage(found, choice, wanted)
            return choice
        skipped.append(f"backup run {bid} skipped: incomplete, no complete backup of {', '.join(missing)}")
    if tables and not skipped:
        raise BackupIncomplete(f"{root}: no backup run backed up all of {', '.join(tables)}: name fewer tables")
    newest = next(c for c in candidates if not tables or len(asked(c)) == len(tables))
    raise BackupIncomplete(
        f"{root}: no backup run has a complete backup of every table asked for; the newest, {newest}, planned "
        f"{', '.join(found.planned(newest))} and lacks a complete backup of {', '.join(found.check(asked(newest), newest))}; "
        "restore another run (--backup-id), or " + PARTIAL_HINT
    )


def _take(found: _Bucket, bid: str, asked: list[str], tables: list[str] | None, allow_partial: bool) -> RunChoice:
    """Run ``bid``'s complete backups of ``asked``; ``BackupIncomplete`` naming the others unless partial is allowed."""
    missing = found.check(asked, bid)
    if tables:
        missing += [t for t in tables if t not in asked]
    if missing and (not allow_partial or len(missing) == len(asked)):
        raise BackupIncomplete(
            f"backup run {bid} planned {', '.join(found.planned(bid))}; no complete backup (manifest.json) of "
            f"{', '.join(missing)}: it did not finish or is still running; restore another run (--backup-id), or "
            + PARTIAL_HINT
        )
    skipped = [f"table {t} of backup run {bid} skipped: no complete backup (allowPartial)" for t in missing]
    return RunChoice(bid, [found.directory(t, bid) for t in asked if t not in missing], skipped)


def _check_coverage(found: _Bucket, choice: RunChoice, wanted: Callable[[str], bool]) -> None:
    """Refuse when tables with backups under the prefix are not in the latest complete run (an ad-hoc run, say)."""
    left_out = sorted(
        t
        for t, ids in found.ids.items()
        if ids and wanted(t) and t not in layout.LEGACY_BOOKKEEPING and t not in found.planned(choice.backup_id)
    )
    if left_out:
        raise BackupIncomplete(
            f"the latest complete backup run, {choice.backup_id}, backed up only "
            f"{', '.join(found.planned(choice.backup_id))}; {', '.join(left_out)} have backups from other runs: "
            "restore one run whole (--backup-id), or " + PARTIAL_HINT
        )


# ------------------------------------------------------------------ local directories
def local_run(url: str, s3: Any = None) -> tuple[str | None, list[str]]:
    """(run id, tables the run planned) from a local backup file's header; (None, []) for files without them."""
    with closing(file_lines(url, s3)) as lines:  # type: ignore[type-var]
        first = next(lines, None)
    try:
        header = json.loads(first[1]).get("ddbBackupFile") if first else None
    except (ValueError, AttributeError):
        header = None
    if not isinstance(header, dict):
        return None, []
    run, planned = header.get("run"), header.get("runTables")
    return (run if isinstance(run, str) else None), [t for t in planned or [] if isinstance(t, str)]


def check_local_set(directory: str, files: dict[str, str], wanted: Callable[[str], bool]) -> list[str]:
    """Refuse a directory whose files (table -> file URL) mix runs or lack a table their run planned.

    Returns warnings (files that record no run cannot be checked). Raises
    ``BackupIncomplete`` naming each table and its run.
    """
    runs: dict[str | None, list[str]] = {}
    planned: set[str] = set()
    for table, url in sorted(files.items()):
        run, tables = local_run(url)
        runs.setdefault(run, []).append(table)
        planned.update(t for t in tables if wanted(t))
    if None in runs:
        return [f"{directory}: {', '.join(runs[None])} record no backup run: cannot check they are one set"]
    absent = sorted(planned - set(files))
    if len(runs) > 1 or absent:
        mixed = "; ".join(f"{', '.join(t)} from run {r}" for r, t in sorted(runs.items(), key=lambda kv: str(kv[0])))
        lacks = f"; no file of {', '.join(absent)}, which the run planned" if absent else ""
        raise BackupIncomplete(
            f"{directory} is not one complete backup run: {mixed}{lacks}: back the set up again, or " + PARTIAL_HINT
        )
    return []
