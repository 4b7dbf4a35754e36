"""Exact backups: the scan, then the stream's changes from before it began to a moment after it ended.

Applying every change from before the scan's start up to ``consistentAt``,
in sequence order, over the scanned items leaves each key as it was at
``consistentAt``: a key the scan saw in any state ends at its last change,
and a key nobody changed is as scanned. Changes from before the scan are
harmless (later ones follow them); those from a second before the scan's start
on are kept. :mod:`ddb_backup.changes.gather` reads them, bounded and checkpointed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.aws.s3io import get_json
from ddb_backup.changes import archive
from ddb_backup.changes.stream import Change, list_shards, server_time, stream_of
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError
from ddb_backup.format import layout
from ddb_backup.names import is_s3_url, split_s3_url, utc_time

MARGIN = dt.timedelta(seconds=1)  # stream times are approximate (whole seconds on AWS)
SECOND = dt.timedelta(seconds=1) - dt.timedelta(microseconds=1)  # a second's start to its last instant


@dataclass(frozen=True)
class Position:
    """The stream as it stood before the scan: its ARN, its shards, the time."""

    table: str
    arn: str
    shards: frozenset[str]
    started: dt.datetime


def note_position(ddb: Any, streams: Any, table: str) -> Position:
    """Before the scan: the shards open then (a closed one holds no change made after, and may be trimmed
    during the scan without loss), and the time. Refuses a table without a stream of new images.

    The time is DynamoDB's (the response's ``Date``), not this machine's: a skewed clock changes nothing.
    """
    arn = stream_of(ddb, table)
    shards, _ = list_shards(streams, arn)
    open_ = frozenset(s["ShardId"] for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"])
    return Position(table, arn, open_, server_now(streams, arn))


def server_now(streams: Any, arn: str) -> dt.datetime:
    """DynamoDB's clock, to the second it is in (the ``Date`` header of a DescribeStream response)."""
    response = call_with_backoff(streams.describe_stream, StreamArn=arn, Limit=1)
    return server_time(response)


def moment(streams: Any, position: Position) -> dt.datetime:
    """``consistentAt``: the last instant of the second DynamoDB's clock is in now, once that clock has passed it.

    Stream times have whole seconds, so every change stamped at or before it
    happened before the moment, and none after.
    """
    consistent_at = server_now(streams, position.arn) + SECOND
    for _ in range(60):  # within about a second DynamoDB's clock passes the moment's second (real time)
        if server_now(streams, position.arn) > consistent_at:
            return consistent_at
        time.sleep(0.05)
    raise BackupIncomplete(f"table {position.table}: DynamoDB's clock (the Date header) did not pass {consistent_at}")


def position_json(position: Position) -> dict[str, Any]:
    """The position as ``plan.json`` records it (the scan's finalize reads the stream from it)."""
    return {"arn": position.arn, "shards": sorted(position.shards), "startedAt": position.started.isoformat()}


def position_of(table: str, doc: dict[str, Any]) -> Position:
    """The position ``plan.json`` recorded (see :func:`position_json`)."""
    return Position(table, str(doc["arn"]), frozenset(doc["shards"]), utc_time(doc["startedAt"]))


def _change_files(manifest: dict[str, Any], where: str) -> Iterator[tuple[str, str | None]]:
    """Each change file an exact backup's manifest lists: its key under the backup directory, and sha256."""
    for entry in manifest.get("changes") or []:
        key = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key, str) or not key.startswith(archive.CHANGES) or ".." in key.split("/"):
            raise BadInput(f"{where}{layout.MANIFEST}: change file {key!r} is not under changes/")
        yield key, entry.get("sha256")


def change_files(manifest: dict[str, Any], where: str) -> list[tuple[str, str | None]]:
    """Each change file an exact backup's manifest lists (key under the backup directory, sha256), checked."""
    return list(_change_files(manifest, where))


def backup_changes(s3: Any, bucket: str, directory: str, manifest: dict[str, Any]) -> list[Change]:
    """The changes an exact backup stores, each file checked against the manifest's sha256."""
    out: list[Change] = []
    for key, sha256 in _change_files(manifest, f"s3://{bucket}/{directory}"):
        out.extend(archive.get_changes(s3, bucket, directory + key, sha256))
    return out


def local_backup_changes(directory: str, manifest: dict[str, Any]) -> list[Change]:
    """The changes of an exact backup copied to a local directory, each file checked against its sha256."""
    out: list[Change] = []
    for key, sha256 in _change_files(manifest, f"{directory.rstrip('/')}/"):
        path = Path(directory) / key
        if not path.is_file():
            raise IntegrityError(
                f"{path}: missing; this exact backup's changes must be copied with it (aws s3 cp --recursive)"
            )
        body = path.read_bytes()
        if sha256 and hashlib.sha256(body).hexdigest() != sha256:
            raise IntegrityError(f"{path}: sha256 differs from the manifest's")
        out.extend(archive.decode(body, str(path)))
    return out


def stored_changes(s3: Any, url: str) -> tuple[str, list[Change]] | None:
    """An exact backup's ``consistentAt`` and its stored changes, from S3 or a local copy of its directory (each
    file checked against its sha256); None for a backup that is not exact."""
    if is_s3_url(url):
        bucket, directory = split_s3_url(url)
        directory = directory if not directory or directory.endswith("/") else directory + "/"
        manifest = get_json(s3, bucket, directory + layout.MANIFEST)
        if "consistentAt" not in manifest:
            return None
        return manifest["consistentAt"], backup_changes(s3, bucket, directory, manifest)
    manifest = json.loads((Path(url) / layout.MANIFEST).read_text())
    if "consistentAt" not in manifest:
        return None
    return manifest["consistentAt"], local_backup_changes(url, manifest)
