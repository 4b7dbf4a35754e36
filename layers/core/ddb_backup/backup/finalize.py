"""Finalize a table's backup: gather the segment chains, write ``manifest.json`` last."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from ddb_backup import FORMAT_VERSION, __version__
from ddb_backup.aws.retry import backoff_delay
from ddb_backup.aws.s3io import get_json, get_json_many, list_keys, put_json
from ddb_backup.changes import consistent, gather
from ddb_backup.errors import BackupIncomplete
from ddb_backup.format import layout

CHECKPOINTS = "checkpoints/"
#: Unfinished segments quoted by name in one message (the rest are counted).
NAMED = 10


def _chains(s3: Any, bucket: str, directory: str) -> dict[int, dict[int, dict[str, Any]]]:
    """Every checkpoint of a backup, listed once and read concurrently: segment -> seq -> checkpoint."""
    keys = [k for k in list_keys(s3, bucket, directory + CHECKPOINTS) if k.endswith(".json")]
    chains: dict[int, dict[int, dict[str, Any]]] = {}
    for checkpoint in get_json_many(s3, bucket, keys).values():
        if checkpoint is not None:
            chains.setdefault(int(checkpoint["segment"]), {})[int(checkpoint["seq"])] = checkpoint
    return chains


def all_parts(s3: Any, bucket: str, directory: str, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Every part of a backup (its ``plan.json`` read), in segment order.

    Follows each segment's checkpoint chain (seq 0, 1, ... to the one marked
    done). Raises ``BackupIncomplete`` naming every segment that did not
    finish, with the error its scan left, if any.
    """
    table, total = plan["table"], int(plan["totalSegments"])
    chains = _chains(s3, bucket, directory)
    parts: list[dict[str, Any]] = []
    unfinished: list[tuple[int, int]] = []
    for segment in range(total):
        chain, seq = chains.get(segment, {}), 0
        while seq in chain and not chain[seq]["done"]:
            seq += 1
        if seq not in chain:
            unfinished.append((segment, seq))
            continue
        for step in range(seq + 1):
            parts.extend(chain[step]["parts"])
    if unfinished:
        raise BackupIncomplete(_unfinished_message(s3, bucket, directory, table, total, unfinished))
    return parts


def _unfinished_message(
    s3: Any, bucket: str, directory: str, table: str, total: int, unfinished: list[tuple[int, int]]
) -> str:
    """'table T segment S of N did not finish (no checkpoint Q): Error: message; ...' for the first few."""
    named = unfinished[:NAMED]
    errors = get_json_many(s3, bucket, [directory + layout.error_key(segment) for segment, _ in named])
    said = []
    for segment, seq in named:
        error = errors[directory + layout.error_key(segment)]
        why = f": {error['error']}: {error['message']}" if error else ""
        said.append(f"table {table} segment {segment} of {total} did not finish (no checkpoint {seq}){why}")
    more = f"; and {len(unfinished) - len(named)} more segments of table {table}" if len(unfinished) > NAMED else ""
    return "; ".join(said) + more


def finalize_table(
    s3: Any,
    bucket: str,
    directory: str,
    *,
    now: dt.datetime | None = None,
    streams: Any = None,
    settle: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    limits: gather.Limits | None = None,
) -> dict[str, Any]:
    """Write the manifest of one table's backup and return its summary (``done``: true).

    Parts no checkpoint lists (left by an invocation that died before its checkpoint, then redone) are
    deleted first: the directory holds exactly what the manifest describes. An exact backup (a stream
    position in its ``plan.json``) gathers its changes to ``consistentAt`` (``streams``; ``limits``: the
    files' size and the time this call has), which the manifest says; when the time runs out first, the
    summary says ``done``: false and no manifest is written (call again: it goes on from its checkpoint).
    """
    plan = get_json(s3, bucket, directory + layout.PLAN)
    parts = all_parts(s3, bucket, directory, plan)
    table = plan["table"]
    listed = {p["key"] for p in parts}
    present = {k[len(directory) :] for k in list_keys(s3, bucket, directory + layout.DATA_DIR)}
    missing = listed - present
    if missing:
        raise BackupIncomplete(f"table {table}: parts listed by checkpoints are missing: {sorted(missing)[:5]}")
    orphans = _delete_orphans(s3, bucket, directory, present - listed, sleep)
    limits = limits or gather.Limits()
    limits.settle, limits.sleep = settle, sleep
    exact = _exact(s3, streams, bucket, directory, plan, limits)
    if exact is None:
        return {"table": table, "backupId": plan["backupId"], "done": False, "items": 0, "parts": len(parts)}
    finished = now or dt.datetime.now(dt.UTC)
    totals = {
        "items": sum(p["items"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
        "uncompressedBytes": sum(p["uncompressedBytes"] for p in parts),
        "parts": len(parts),
    }
    manifest = _manifest(plan, parts, totals, finished, exact)
    put_json(s3, bucket, directory + layout.MANIFEST, manifest)
    started = dt.datetime.fromisoformat(plan["startedAt"])
    return {
        "table": table,
        "backupId": plan["backupId"],
        "done": True,
        "manifest": directory + layout.MANIFEST,
        **totals,
        "orphansDeleted": len(orphans),
        "seconds": round((finished - started).total_seconds(), 3),
        **(
            {"consistentAt": exact["consistentAt"], "changes": sum(e["records"] for e in exact["changes"])}
            if exact
            else {}
        ),
    }


def _manifest(
    plan: dict[str, Any],
    parts: list[dict[str, Any]],
    totals: dict[str, Any],
    finished: dt.datetime,
    exact: dict[str, Any],
) -> dict[str, Any]:
    """``manifest.json``'s document."""
    table, total = plan["table"], int(plan["totalSegments"])
    return {
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
        **exact,
    }


def _delete_orphans(
    s3: Any, bucket: str, directory: str, keys: set[str], sleep: Callable[[float], None], attempts: int = 5
) -> list[str]:
    """Delete the parts no checkpoint lists (1,000 a request); their keys.

    Keys S3 answers with an error are tried again (backoff); any still there
    after ``attempts`` tries raise ``BackupIncomplete`` naming them, before the
    manifest is written: the directory never holds more than the manifest says.
    """
    orphans, left = sorted(keys), sorted(keys)
    for attempt in range(attempts):
        errors = []
        for start in range(0, len(left), 1000):
            batch = [{"Key": directory + k} for k in left[start : start + 1000]]
            errors += s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
        if not errors:
            return orphans
        left = sorted(e["Key"][len(directory) :] for e in errors)
        if attempt + 1 < attempts:
            sleep(backoff_delay(attempt, base=0.5, cap=5.0))
    codes = ", ".join(sorted({str(e.get("Code")) for e in errors}))
    raise BackupIncomplete(
        f"{len(left)} part(s) no checkpoint lists could not be deleted from s3://{bucket}/{directory} "
        f"({codes}): {left[:5]}; no manifest was written: delete them (or allow s3:DeleteObject) and run the backup again"
    )


def _exact(
    s3: Any, streams: Any, bucket: str, directory: str, plan: dict[str, Any], limits: gather.Limits
) -> dict[str, Any] | None:
    """An exact backup's manifest fields (its changes stored beside the parts); {} for a plain backup; None
    when the time ran out before every change was gathered."""
    if "stream" not in plan:
        return {}
    if streams is None:
        raise BackupIncomplete(f"table {plan['table']}: an exact backup's finalize needs a DynamoDB Streams client")
    position = consistent.position_of(plan["table"], plan["stream"])
    return gather.gather(s3, streams, bucket, directory, position, limits)
