"""Finalize a table's backup: gather the segment chains, write ``manifest.json`` last."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ddb_backup import FORMAT_VERSION, __version__
from ddb_backup.aws.s3io import get_json, get_json_or_none, list_keys, put_json
from ddb_backup.errors import BackupIncomplete
from ddb_backup.format import layout


def segment_parts(s3: Any, bucket: str, directory: str, table: str, segment: int, total: int) -> list[dict[str, Any]]:
    """Follow one segment's checkpoint chain to its end; raise naming the segment if it never finished."""
    parts: list[dict[str, Any]] = []
    seq = 0
    while True:
        checkpoint = get_json_or_none(s3, bucket, directory + layout.checkpoint_key(segment, seq))
        if checkpoint is None:
            error = get_json_or_none(s3, bucket, directory + layout.error_key(segment))
            why = f": {error['error']}: {error['message']}" if error else ""
            raise BackupIncomplete(
                f"table {table} segment {segment} of {total} did not finish (no checkpoint {seq}){why}"
            )
        parts.extend(checkpoint["parts"])
        if checkpoint["done"]:
            return parts
        seq += 1


def all_parts(s3: Any, bucket: str, directory: str, plan: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every part of a backup, in segment order; raises ``BackupIncomplete`` naming the first unfinished segment."""
    plan = plan or get_json(s3, bucket, directory + layout.PLAN)
    table, total = plan["table"], int(plan["totalSegments"])
    parts: list[dict[str, Any]] = []
    for segment in range(total):
        parts.extend(segment_parts(s3, bucket, directory, table, segment, total))
    return parts


def finalize_table(s3: Any, bucket: str, directory: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Write the manifest of one table's backup and return its summary.

    Parts that no checkpoint lists (left by an invocation that died before its
    checkpoint, and then redone) are deleted, so the backup directory holds
    exactly what the manifest describes.
    """
    plan = get_json(s3, bucket, directory + layout.PLAN)
    parts = all_parts(s3, bucket, directory, plan)
    table, total = plan["table"], int(plan["totalSegments"])
    listed = {p["key"] for p in parts}
    present = {k[len(directory) :] for k in list_keys(s3, bucket, directory + layout.DATA_DIR)}
    missing = listed - present
    if missing:
        raise BackupIncomplete(f"table {table}: parts listed by checkpoints are missing: {sorted(missing)[:5]}")
    orphans = sorted(present - listed)
    for start in range(0, len(orphans), 1000):
        s3.delete_objects(
            Bucket=bucket,
            Delete={
                "Objects": [{"Key": directory + k} for k in orphans[start : start + 1000]],
                "Quiet": True,
            },
        )
    finished = now or dt.datetime.now(dt.UTC)
    totals = {
        "items": sum(p["items"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
        "uncompressedBytes": sum(p["uncompressedBytes"] for p in parts),
        "parts": len(parts),
    }
    manifest = {
        "format": "ddb-backup",
        "formatVersion": FORMAT_VERSION,
        "toolVersion": __version__,
        "table": table,
        "backupId": plan["backupId"],
        "startedAt": plan["startedAt"],
        "finishedAt": finished.isoformat(),
        "segments": total,
        "itemFormat": "DYNAMODB_JSON",
        "compression": "GZIP",
        "description": plan["description"],
        "parts": parts,
        "totals": totals,
    }
    put_json(s3, bucket, directory + layout.MANIFEST, manifest)
    started = dt.datetime.fromisoformat(plan["startedAt"])
    return {
        "table": table,
        "backupId": plan["backupId"],
        "manifest": directory + layout.MANIFEST,
        **totals,
        "orphansDeleted": len(orphans),
        "seconds": round((finished - started).total_seconds(), 3),
    }
