"""What backups a bucket holds: table, id, items, size, complete or not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from ddb_backup import names
from ddb_backup.aws.s3io import get_json_or_none
from ddb_backup.format import layout


def _children(s3: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        out.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
    return out


def _table_dirs(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The directories under ``prefix`` a table's backups can be in (bookkeeping's is no table name)."""
    return [d for d in _children(s3, bucket, prefix) if names.is_table_name(d[len(prefix) :].rstrip("/"))]


def list_backups(s3: Any, bucket: str, prefix: str = "", *, table: str | None = None) -> list[dict[str, Any]]:
    """One row per backup under ``prefix``, newest last within each table.

    A backup is complete when its ``manifest.json`` exists (it is written last).
    """
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    rows = []
    table_dirs = [f"{prefix}{table}/"] if table else _table_dirs(s3, bucket, prefix)
    for table_dir in table_dirs:
        name = table_dir[len(prefix) :].rstrip("/")
        for backup_dir in _children(s3, bucket, table_dir):
            backup_id = backup_dir[len(table_dir) :].rstrip("/")
            manifest = get_json_or_none(s3, bucket, backup_dir + layout.MANIFEST)
            if manifest is None and name in layout.LEGACY_BOOKKEEPING:
                continue  # old run bookkeeping, not an unfinished backup of a table of that name
            rows.append(
                {
                    "table": name,
                    "backupId": backup_id,
                    "url": f"s3://{bucket}/{backup_dir}",
                    "complete": manifest is not None,
                    "finishedAt": manifest.get("finishedAt") if manifest else None,
                    "items": manifest["totals"]["items"] if manifest else None,
                    "bytes": manifest["totals"]["bytes"] if manifest else None,
                }
            )
    return rows


def newest_backups(s3: Any, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    """Every table under ``prefix``: its newest backup (complete or not) and its newest complete one.

    Backup ids sort by time, so each table's ids are tried newest first until one has a manifest. A row:
    ``table``, ``latest`` (the newest backup id, or None), ``latestComplete``, and ``newestComplete`` (None,
    or its ``backupId``, ``startedAt``, ``finishedAt``, ``items``, ``bytes``). Directories that are no backup
    id (``changes/``) are not backups.
    """
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    rows = []
    for table_dir in _table_dirs(s3, bucket, prefix):
        name = table_dir[len(prefix) :].rstrip("/")
        ids = sorted((d[len(table_dir) :].rstrip("/") for d in _children(s3, bucket, table_dir)), reverse=True)
        ids = [i for i in ids if names.is_backup_id(i)]
        newest = None
        for backup_id in ids:
            manifest = get_json_or_none(s3, bucket, f"{table_dir}{backup_id}/{layout.MANIFEST}")
            if manifest is not None:
                newest = {
                    "backupId": backup_id,
                    "startedAt": manifest.get("startedAt"),
                    "finishedAt": manifest["finishedAt"],
                    "items": manifest["totals"]["items"],
                    "bytes": manifest["totals"]["bytes"],
                }
                break
        if newest is None and name in layout.LEGACY_BOOKKEEPING:
            continue  # old run bookkeeping, not a table that lost its backups
        latest = ids[0] if ids else None
        rows.append(
            {
                "table": name,
                "latest": latest,
                "latestComplete": newest is not None and newest["backupId"] == latest,
                "newestComplete": newest,
            }
        )
    return rows


def age_hours(finished_at: str | None, now: dt.datetime) -> float:
    """Hours from ``finished_at`` (ISO 8601) to ``now``; infinity when there is none."""
    if finished_at is None:
        return float("inf")
    return max(0.0, (now - names.utc_time(finished_at)).total_seconds() / 3600)


def newest_backup_ages(
    s3: Any,
    bucket: str,
    prefix: str = "",
    *,
    now: dt.datetime | None = None,
    tables: Collection[str] | None = None,
) -> dict[str, float]:
    """Hours since the newest complete backup of every table under ``prefix`` (infinity: none is complete);
    with ``tables``, of those only (a deleted table's backups stay until they expire, but it is not stale)."""
    now = now or dt.datetime.now(dt.UTC)
    return {
        row["table"]: age_hours((row["newestComplete"] or {}).get("finishedAt"), now)
        for row in newest_backups(s3, bucket, prefix)
        if tables is None or row["table"] in tables
    }
