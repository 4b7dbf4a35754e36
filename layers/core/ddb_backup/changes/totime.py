"""Restore to a time: the newest exact backup at or before it, then the archived changes up to it.

Refused, naming the reason, when no exact backup precedes the time, when
the archive does not reach from the backup's ``consistentAt`` to the time,
or when a recorded gap lies between them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ddb_backup.aws.s3io import get_json_or_none
from ddb_backup.changes import archive
from ddb_backup.changes.consistent import backup_changes, server_now
from ddb_backup.changes.replay import gap_in
from ddb_backup.changes.stream import Change, list_shards, read_shard
from ddb_backup.errors import BadInput
from ddb_backup.format import layout
from ddb_backup.names import is_backup_id, utc_time


def newest_exact(s3: Any, bucket: str, table_dir: str, when: dt.datetime) -> tuple[str, dict[str, Any]]:
    """The backup directory and manifest of the newest exact backup with ``consistentAt`` <= ``when``."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=table_dir, Delimiter="/")
    ids = sorted(
        (p["Prefix"][len(table_dir) :].rstrip("/") for page in pages for p in page.get("CommonPrefixes", ())),
        reverse=True,
    )
    earliest = None
    for backup_id in filter(is_backup_id, ids):
        manifest = get_json_or_none(s3, bucket, f"{table_dir}{backup_id}/{layout.MANIFEST}")
        if not manifest or "consistentAt" not in manifest:
            continue
        if utc_time(manifest["consistentAt"]) <= when:
            return f"{table_dir}{backup_id}/", manifest
        earliest = manifest["consistentAt"]
    hint = f"; the earliest is consistent at {earliest}" if earliest else ": make one with backup --consistent"
    raise BadInput(f"s3://{bucket}/{table_dir}: no exact backup consistent at or before {when.isoformat()}{hint}")


def unarchived(streams: Any, s3: Any, bucket: str, table_dir: str, when: dt.datetime) -> str | None:
    """Why the archive may not yet hold every change up to ``when`` (None: it holds them all).

    Lambda reads a stream's shards concurrently, so one shard's progress says
    nothing of another's. Each shard still in the stream is read after the
    last change archived from it (from its trim horizon when none was): a
    change stamped at or before ``when`` found there is not archived yet. A
    shard read to its end, to its tip, or to a change past ``when`` is covered.
    Changes older than the stream holds were archived or recorded as gaps
    (the mapping's maximum record age is below the stream's retention).
    """
    info = archive.archive_info(s3, bucket, table_dir) or {}
    arn = info.get("streamArn")
    if not arn:
        return "the archive does not name its stream yet (an earlier version started it): wait for the archiver's next batch, or run ddb-backup changes follow once"
    states = {s["shard"]: s for s in archive.all_states(s3, bucket, table_dir)}
    if server_now(streams, arn) <= when:
        return f"{when.isoformat()} is not yet past on DynamoDB's clock"
    shards, _ = list_shards(streams, arn)
    for shard in shards:
        state = states.get(shard["ShardId"]) or {}
        if state.get("closed"):
            continue
        for page in read_shard(streams, arn, shard["ShardId"], after=state.get("seq"), stop=lambda b: True):
            if page.records and utc_time(page.records[0]["time"]) <= when:
                return (
                    f"shard {shard['ShardId']} holds a change of {page.records[0]['time']} the archive has not "
                    "received yet (the archiver is behind: see its IteratorAge)"
                )
    return None


def changes_to(s3: Any, bucket: str, table_dir: str, manifest: dict[str, Any], when: dt.datetime) -> list[Change]:
    """The changes that bring the backup from its ``consistentAt`` to ``when`` (:func:`check_reach` proves them)."""
    directory = f"{table_dir}{manifest['backupId']}/"
    changes = backup_changes(s3, bucket, directory, manifest)
    if when == utc_time(manifest["consistentAt"]):
        return changes
    since = utc_time(manifest.get("changesFrom", manifest["consistentAt"]))
    for key in archive.files_between(s3, bucket, table_dir, since, when):
        changes.extend(archive.get_changes(s3, bucket, key))
    return changes


def check_reach(
    streams: Any, s3: Any, bucket: str, table_dir: str, manifest: dict[str, Any], when: dt.datetime
) -> None:
    """Refuses, naming why, unless the archive holds every change from the backup's ``consistentAt`` to ``when``."""
    consistent_at = utc_time(manifest["consistentAt"])
    if when == consistent_at:
        return
    where = f"s3://{bucket}/{table_dir}{archive.CHANGES}"
    info = archive.archive_info(s3, bucket, table_dir)
    start = utc_time(info["coveredFrom"]) if info else None
    if start is None or start > consistent_at:
        raise BadInput(
            f"{where}: the change archive {'begins at ' + start.isoformat() if start else 'does not exist'}, after the "
            f"newest exact backup before {when.isoformat()} (consistent at {consistent_at.isoformat()})"
        )
    behind = unarchived(streams, s3, bucket, table_dir, when)
    if behind:
        raise BadInput(
            f"{where}: the change archive does not reach {when.isoformat()}: {behind}; wait a minute and try "
            "again, or pick an earlier time"
        )
    gap = gap_in(archive.gaps(s3, bucket, table_dir), consistent_at, when)
    if gap:
        raise BadInput(
            f"{when.isoformat()}: the changes from {gap['from']} to {gap['to']} on {gap['shard']} may be missing "
            f"({gap['reason']}); restore to a time before {gap['from']}, or after a later exact backup"
        )
