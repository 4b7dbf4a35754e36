"""Change files in S3, and the continuous archive of a table's stream.

A change file is gzip JSON Lines, one change a line (see
:mod:`ddb_backup.changes.stream`), in sequence order within a shard. The
archive of a table lives beside its backups::

    <prefix><table>/changes/<first time>_<last time>_<shard>_<first seq>.jsonl.gz
    <prefix><table>/changes/_state/<shard>.json   last archived seq and time, closed?
    <prefix><table>/changes/_gaps/<from>_<shard>.json   a span whose changes may be missing, and why
    <prefix><table>/changes/_archive.json         when the archive's coverage begins

A change file's name follows from its content, so a retried batch rewrites
the same object; an overlapping one (a bisected batch) only repeats changes,
which replay drops by sequence number. Each change lands at least once.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.s3io import get_json, get_json_or_none, list_keys, put_json
from ddb_backup.errors import BadInput, IntegrityError
from ddb_backup.names import utc_time

if TYPE_CHECKING:
    from ddb_backup.changes.stream import Change

CHANGES = "changes/"
RETENTION = dt.timedelta(hours=24)


def encode(changes: list[Change]) -> bytes:
    """A change file's bytes: gzip JSON Lines (mtime 0, so the same changes give the same bytes)."""
    text = "".join(json.dumps(c, separators=(",", ":"), ensure_ascii=False) + "\n" for c in changes)
    return gzip.compress(text.encode("utf-8"), mtime=0)


def decode(data: bytes, where: str) -> list[Change]:
    """The changes of a change file; every line checked for the fields replay needs."""
    return [parse_line(line, where, n) for n, line in enumerate(gzip.decompress(data).splitlines(), 1)]


def parse_line(line: bytes, where: str, n: int) -> Change:
    """One line of a change file (line ``n`` of ``where``), checked for the fields replay needs."""
    try:
        change = json.loads(line)
    except ValueError as exc:
        raise BadInput(f"{where} line {n}: not JSON ({exc})") from None
    if not isinstance(change, dict) or not {"seq", "time", "event", "Keys"} <= set(change):
        raise BadInput(f"{where} line {n}: a change needs seq, time, event and Keys")
    if change["event"] != "REMOVE" and "NewImage" not in change:
        raise BadInput(f"{where} line {n}: {change['event']} without NewImage")
    return change


def put_changes(s3: Any, bucket: str, key: str, changes: list[Change]) -> dict[str, Any]:
    """Write one change file; its manifest entry (key, records, bytes, sha256)."""
    body = encode(changes)
    digest = hashlib.sha256(body).hexdigest()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson", ContentEncoding="gzip")
    return {"key": key, "records": len(changes), "bytes": len(body), "sha256": digest}


def get_changes(s3: Any, bucket: str, key: str, sha256: str | None = None) -> list[Change]:
    """Read one change file, checking its sha256 when the manifest gives one."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if sha256 is not None and hashlib.sha256(body).hexdigest() != sha256:
        raise IntegrityError(f"s3://{bucket}/{key}: sha256 differs from the manifest's")
    return decode(body, f"s3://{bucket}/{key}")


def _stamp(text: str) -> str:
    return utc_time(text).astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def archive_key(table_dir: str, changes: list[Change]) -> str:
    """The change file name for a batch of one shard's changes (sortable by time)."""
    first, last = changes[0], changes[-1]
    return (
        f"{table_dir}{CHANGES}{_stamp(first['time'])}_{_stamp(last['time'])}_{first['shard']}_{first['seq']}.jsonl.gz"
    )


def append(s3: Any, bucket: str, table_dir: str, changes: list[Change]) -> dict[str, Any] | None:
    """Archive one shard's batch, then move the shard's state past it (so a crash in between repeats it)."""
    if not changes:
        return None
    entry = put_changes(s3, bucket, archive_key(table_dir, changes), changes)
    last = changes[-1]
    state = shard_state(s3, bucket, table_dir, last["shard"]) or {}
    if int(state.get("seq", "0")) < int(last["seq"]):
        save_state(s3, bucket, table_dir, last["shard"], seq=last["seq"], time=last["time"])
    return entry


def shard_state(s3: Any, bucket: str, table_dir: str, shard: str) -> dict[str, Any] | None:
    state: dict[str, Any] | None = get_json_or_none(s3, bucket, f"{table_dir}{CHANGES}_state/{shard}.json")
    return state


def save_state(s3: Any, bucket: str, table_dir: str, shard: str, **fields: Any) -> None:
    key = f"{table_dir}{CHANGES}_state/{shard}.json"
    state = get_json_or_none(s3, bucket, key) or {"shard": shard}
    state.update(fields)
    put_json(s3, bucket, key, state)


def all_states(s3: Any, bucket: str, table_dir: str) -> list[dict[str, Any]]:
    return [get_json(s3, bucket, k) for k in list_keys(s3, bucket, f"{table_dir}{CHANGES}_state/")]


def record_gap(s3: Any, bucket: str, table_dir: str, shard: str, start: str, end: str, reason: str) -> dict[str, Any]:
    """Record a span whose changes may be missing; restores to a time inside it are refused."""
    gap = {"shard": shard, "from": start, "to": end, "reason": reason}
    put_json(s3, bucket, f"{table_dir}{CHANGES}_gaps/{_stamp(start)}_{shard}.json", gap)
    return gap


def gaps(s3: Any, bucket: str, table_dir: str) -> list[dict[str, Any]]:
    return [get_json(s3, bucket, k) for k in list_keys(s3, bucket, f"{table_dir}{CHANGES}_gaps/")]


def archive_info(s3: Any, bucket: str, table_dir: str) -> dict[str, Any] | None:
    info: dict[str, Any] | None = get_json_or_none(s3, bucket, f"{table_dir}{CHANGES}_archive.json")
    return info


def start_archive(
    s3: Any, bucket: str, table_dir: str, table: str, stream_arn: str, covered_from: dt.datetime
) -> dict[str, Any]:
    """The archive's start record, written once: changes since ``covered_from`` are all in the stream.

    An archive started before the stream's ARN was recorded gets it now (restores to a time read the stream).
    """
    info = archive_info(s3, bucket, table_dir)
    if info is None or "streamArn" not in info:
        info = info or {"table": table, "coveredFrom": covered_from.astimezone(dt.UTC).isoformat()}
        info["streamArn"] = stream_arn
        put_json(s3, bucket, f"{table_dir}{CHANGES}_archive.json", info)
    return info


def files_between(s3: Any, bucket: str, table_dir: str, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Change files of the archive with a change in [start, end] (by the times in their names)."""
    return [key for key, _ in sized_files_between(s3, bucket, table_dir, start, end)]


def sized_files_between(
    s3: Any, bucket: str, table_dir: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[str, int]]:
    """:func:`files_between` with each file's size in bytes (a restore sizes its partitions by them)."""
    lo, hi = (moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ") for moment in (start, end))
    out = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{table_dir}{CHANGES}")
    for obj in (o for page in pages for o in page.get("Contents", ())):
        name = obj["Key"].rsplit("/", 1)[-1]
        if name.startswith("_") or not name.endswith(".jsonl.gz"):
            continue
        first, last = name.split("_")[:2]
        if first <= hi and last >= lo:
            out.append((obj["Key"], int(obj.get("Size", 0))))
    return out
