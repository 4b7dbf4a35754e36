"""On-demand DynamoDB backups (CreateBackup): make them on a schedule, prune the stack's own, restore one.

A backup made by the stack is named ``<table>-ddbb-<marker>-<UTC stamp>``, e.g.
``mystack-GranulesTable-ddbb-1a2b3c4d-20261122T030000Z``, where the marker is
derived from the stack name, so names sort by time per table and two stacks
in one account never take each other's backups for their own.

Pruning is conservative: a backup is deleted only when its name has this
stack's marker, its type is USER, it is AVAILABLE, both its creation time and
the time in its name are older than the retention, and it is not among the
newest ``keep_latest`` of the stack's backups of that table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ddb_backup import names
from ddb_backup.aws.retry import Retry, error_code, error_text, run_until_done
from ddb_backup.aws.tables import MISSING_CODES, describe
from ddb_backup.errors import BackupNotFound, BadInput, SnapshotsIncomplete, TableNotFound, TargetRefused
from ddb_backup.native.pitr import FAILED, MISSING
from ddb_backup.native.restores import reapply_settings, refuse_existing, sse_override

if TYPE_CHECKING:
    from ddb_backup.events import OnDemandBackupEvent

MARKER = "ddbb"
MAX_NAME = 255
STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(?P<table>[A-Za-z0-9_.-]+)-(?P<marker>ddbb-[0-9a-f]{8})-(?P<stamp>\d{8}T\d{6}Z)$")

CREATED = "created"
RECENT = "recent"
DELETED = "deleted"
WOULD_DELETE = "would-delete"


# ------------------------------------------------------------------ names
def stack_marker(stack_name: str) -> str:
    """``ddbb-`` and 8 hex digits of the stack name's SHA-256: fixed length, valid in a backup name."""
    if not stack_name:
        raise BadInput("a stack name is needed to mark the stack's backups")
    return f"{MARKER}-{hashlib.sha256(stack_name.encode()).hexdigest()[:8]}"


def backup_name(table: str, marker: str, when: dt.datetime) -> str:
    """``<table>-<marker>-<stamp>``; a very long table name is shortened to keep the name within 255."""
    suffix = f"-{marker}-{when.astimezone(dt.UTC):{STAMP}}"
    return table[: MAX_NAME - len(suffix)] + suffix


@dataclass(frozen=True)
class ParsedName:
    table: str
    marker: str
    stamp: dt.datetime


def parse_backup_name(name: str) -> ParsedName | None:
    match = _NAME.match(name or "")
    if not match:
        return None
    stamp = dt.datetime.strptime(match["stamp"], STAMP).replace(tzinfo=dt.UTC)
    return ParsedName(match["table"], match["marker"], stamp)


def is_ours(summary: dict[str, Any], marker: str) -> bool:
    """Made by the stack with ``marker``: USER type, our name pattern and marker, the name's table matches."""
    parsed = parse_backup_name(summary.get("BackupName", ""))
    if parsed is None or parsed.marker != marker or summary.get("BackupType") != "USER":
        return False
    table = str(summary.get("TableName", ""))
    full = len(summary["BackupName"]) < MAX_NAME
    return table == parsed.table if full else table.startswith(parsed.table)


# ------------------------------------------------------------------ listing
def list_backups(ddb: Any, tables: Iterable[str] | None = None, backup_type: str = "ALL") -> list[dict[str, Any]]:
    """ListBackups for each table (every table in the account when ``tables`` is None), oldest first."""
    found: list[dict[str, Any]] = []
    paginator = ddb.get_paginator("list_backups")
    for table in tables if tables is not None else [None]:
        kwargs: dict[str, Any] = {"BackupType": backup_type}
        if table:
            kwargs["TableName"] = table
        for page in paginator.paginate(**kwargs):
            found.extend(page.get("BackupSummaries", []))
    return sorted(found, key=lambda s: (s.get("TableName", ""), s["BackupCreationDateTime"]))


def backup_rows(summaries: list[dict[str, Any]], marker: str | None) -> list[dict[str, Any]]:
    """Summaries as plain rows (ISO times), with ``ours`` when a marker is given."""
    rows = []
    for s in summaries:
        row = {
            "table": s.get("TableName"),
            "name": s.get("BackupName"),
            "created": s["BackupCreationDateTime"].astimezone(dt.UTC).isoformat(),
            "status": s.get("BackupStatus"),
            "type": s.get("BackupType"),
            "bytes": s.get("BackupSizeBytes"),
            "arn": s.get("BackupArn"),
        }
        if marker:
            row["ours"] = is_ours(s, marker)
        rows.append(row)
    return rows


# ------------------------------------------------------------------ creating
@dataclass(frozen=True)
class SnapshotResult:
    table: str
    status: str
    name: str = ""
    arn: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != ""}


def create_one(ddb: Any, table: str, name: str) -> SnapshotResult:
    """CreateBackup, with "does not exist" as a result; raises retryable errors (new or busy table)."""
    names.check_table_name(table)
    try:
        details = ddb.create_backup(TableName=table, BackupName=name)["BackupDetails"]
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            return SnapshotResult(table, MISSING, reason="the table does not exist")
        raise
    return SnapshotResult(table, CREATED, details["BackupName"], details["BackupArn"])


def _recent(ddb: Any, table: str, marker: str, since: dt.datetime) -> dict[str, Any] | None:
    for summary in reversed(list_backups(ddb, [table], "USER")):
        if is_ours(summary, marker) and summary["BackupCreationDateTime"] >= since:
            return dict(summary)
    return None


def create_backups(
    ddb: Any,
    tables: Iterable[str],
    marker: str,
    *,
    retry: Retry,
    now: dt.datetime | None = None,
    min_interval: dt.timedelta = dt.timedelta(0),
) -> list[SnapshotResult]:
    """One on-demand backup per table, named with ``marker``; one result per table, nothing raised.

    A table that already has one of ours younger than ``min_interval`` is left
    alone (``recent``): a repeated or retried schedule does not double up.
    """
    now = now or dt.datetime.now(dt.UTC)

    def attempt(table: str) -> SnapshotResult:
        if min_interval > dt.timedelta(0):
            recent = _recent(ddb, table, marker, now - min_interval)
            if recent is not None:
                reason = f"one of ours is younger than {min_interval}"
                return SnapshotResult(table, RECENT, recent["BackupName"], recent["BackupArn"], reason)
        return create_one(ddb, table, backup_name(table, marker, now))

    return run_until_done(tables, attempt, lambda t, reason: SnapshotResult(t, FAILED, reason=reason), retry)


# ------------------------------------------------------------------ pruning
@dataclass(frozen=True)
class PruneResult:
    table: str
    name: str
    arn: str
    created: str
    status: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != ""}


def prune_candidates(
    summaries: list[dict[str, Any]],
    marker: str,
    *,
    retention: dt.timedelta,
    keep_latest: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The summaries that pruning may delete (see the module's rules)."""
    if keep_latest < 1:
        raise BadInput("keep_latest must be at least 1: pruning never removes a table's last backup")
    cutoff = now - retention
    by_table: dict[str, list[dict[str, Any]]] = {}
    for s in summaries:
        if is_ours(s, marker) and s.get("BackupStatus") == "AVAILABLE":
            by_table.setdefault(s["TableName"], []).append(s)
    doomed = []
    for ours in by_table.values():
        ours.sort(key=lambda s: s["BackupCreationDateTime"])
        for s in ours[: max(0, len(ours) - keep_latest)]:
            parsed = parse_backup_name(s["BackupName"])
            if parsed and s["BackupCreationDateTime"] < cutoff and parsed.stamp < cutoff:
                doomed.append(s)
    return doomed


def prune_backups(
    ddb: Any,
    tables: Iterable[str],
    marker: str,
    *,
    retention_days: int,
    retry: Retry,
    keep_latest: int = 1,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> list[PruneResult]:
    """Delete the stack's own backups of ``tables`` older than ``retention_days``; one result per deletion."""
    if retention_days < 1:
        raise BadInput(f"retention must be at least 1 day, got {retention_days}")
    now = now or dt.datetime.now(dt.UTC)
    summaries = list_backups(ddb, list(tables), "USER")
    doomed = prune_candidates(
        summaries, marker, retention=dt.timedelta(days=retention_days), keep_latest=keep_latest, now=now
    )
    info = {s["BackupArn"]: s for s in doomed}

    def row(arn: str, status: str, reason: str = "") -> PruneResult:
        s = info[arn]
        created = s["BackupCreationDateTime"].astimezone(dt.UTC).isoformat()
        return PruneResult(s["TableName"], s["BackupName"], arn, created, status, reason)

    if dry_run:
        return [row(arn, WOULD_DELETE) for arn in info]

    def attempt(arn: str) -> PruneResult:
        try:
            ddb.delete_backup(BackupArn=arn)
        except ClientError as exc:
            if error_code(exc) != "BackupNotFoundException":
                raise
        return row(arn, DELETED)

    return run_until_done(info, attempt, lambda arn, reason: row(arn, FAILED, reason), retry)


# ------------------------------------------------------------------ the scheduled run
def scheduled_run(
    ddb: Any,
    event: OnDemandBackupEvent,
    marker: str,
    retry: Retry,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Back up every configured table, then prune the stack's old backups of them."""
    now = now or dt.datetime.now(dt.UTC)
    tables = event.names()
    made = create_backups(
        ddb, tables, marker, retry=retry, now=now, min_interval=dt.timedelta(minutes=event.min_interval_minutes)
    )
    pruned: list[PruneResult] = []
    if event.prune and tables:
        pruned = prune_backups(
            ddb,
            tables,
            marker,
            retention_days=event.retention_days,
            retry=retry,
            keep_latest=event.keep_latest,
            now=now,
        )
    return {
        "marker": marker,
        "created": [r.as_dict() for r in made],
        "pruned": [r.as_dict() for r in pruned],
        "counts": {
            "created": sum(r.status == CREATED for r in made),
            "recent": sum(r.status == RECENT for r in made),
            "missing": sum(r.status == MISSING for r in made),
            "failed": sum(r.status == FAILED for r in made) + sum(r.status == FAILED for r in pruned),
            "deleted": sum(r.status == DELETED for r in pruned),
        },
    }


def check(report: dict[str, Any]) -> None:
    """Raise :class:`SnapshotsIncomplete` naming every backup not made or not deleted."""
    failed = [r for r in report["created"] + report["pruned"] if r["status"] == FAILED]
    if failed:
        detail = "; ".join(f"{r.get('name') or r['table']}: {r['reason']}" for r in failed)
        raise SnapshotsIncomplete(f"{len(failed)} on-demand backup operation(s) failed: {detail}")


# ------------------------------------------------------------------ restoring
def _source_description(ddb: Any, backup: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The settings to re-apply: the live source table's, with TTL and stream as they were at backup time."""
    source = backup.get("SourceTableDetails", {}).get("TableName", "")
    notes: list[str] = []
    try:
        description = describe(ddb, source)
    except TableNotFound:
        description = {"Table": {}, "TimeToLive": {}, "ContinuousBackups": {}, "Tags": []}
        notes.append(f"source table {source!r} no longer exists: its tags and PITR were not re-applied")
    features = backup.get("SourceTableFeatureDetails") or {}
    if features.get("TimeToLiveDescription"):
        description["TimeToLive"] = features["TimeToLiveDescription"]
    if features.get("StreamDescription"):
        description["Table"]["StreamSpecification"] = features["StreamDescription"]
    if features.get("SSEDescription"):
        description["Table"]["SSEDescription"] = features["SSEDescription"]
    return description, notes


def restore_from_backup(ddb: Any, backup_arn: str, target: str, *, retry: Retry) -> dict[str, Any]:
    """RestoreTableFromBackup into a new table, wait for it, re-apply TTL, stream, tags and PITR."""
    names.check_table_name(target)
    try:
        backup = ddb.describe_backup(BackupArn=backup_arn)["BackupDescription"]
    except ClientError as exc:
        if error_code(exc) in ("BackupNotFoundException", "ValidationException"):
            raise BackupNotFound(f"backup {backup_arn!r}: {error_text(exc)}") from None
        raise
    status = backup.get("BackupDetails", {}).get("BackupStatus")
    if status != "AVAILABLE":
        raise BadInput(f"backup {backup_arn!r} is {status}, not AVAILABLE")
    refuse_existing(ddb, target)
    description, notes = _source_description(ddb, backup)
    try:
        ddb.restore_table_from_backup(TargetTableName=target, BackupArn=backup_arn, **sse_override(description))
    except ClientError as exc:
        if error_code(exc) == "TableAlreadyExistsException":
            raise TargetRefused(f"table {target!r} already exists") from None
        raise
    applied = reapply_settings(ddb, description, target, retry)
    return {
        "backup": backup_arn,
        "source": backup.get("SourceTableDetails", {}).get("TableName"),
        "target": target,
        "reapplied": applied,
        "notes": notes,
    }
