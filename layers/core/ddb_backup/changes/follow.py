"""Following a table's stream into the archive, with gaps recorded, never glossed over.

Gaps: a shard's records trimmed (past the 24-hour retention) before they were
archived; a shard that left the stream before it was archived to its end
(lineage: its children's changes would follow a hole). Each is written to
``changes/_gaps/`` and refuses restores to a time inside it.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from ddb_backup.changes import archive
from ddb_backup.changes.stream import list_shards, read_shard, stream_of

Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def follow(
    ddb: Any,
    streams: Any,
    s3: Any,
    bucket: str,
    prefix: str,
    table: str,
    *,
    until_idle: float | None = None,
    poll: float = 1.0,
    lag: float = 2.0,
    clock: Clock = _now,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Archive the table's changes under ``prefix<table>/changes/``; with ``until_idle``, stop after that long without one.

    A caught-up shard is covered until ``lag`` seconds before the clock (a
    change takes a moment to appear in the stream).
    """
    arn = stream_of(ddb, table)
    table_dir = f"{prefix}{table}/"
    _, created = list_shards(streams, arn)
    horizon = clock() - archive.RETENTION + dt.timedelta(minutes=5)
    archive.start_archive(s3, bucket, table_dir, table, arn, max(created or horizon, horizon))
    totals = {"table": table, "changes": 0, "files": 0, "gaps": 0}
    idle_since = clock()
    while True:
        got = pass_once(streams, s3, bucket, table_dir, arn, lambda: clock() - dt.timedelta(seconds=lag), totals)
        if got:
            idle_since = clock()
        elif until_idle is not None and (clock() - idle_since).total_seconds() >= until_idle:
            return totals
        else:
            sleep(poll)


def pass_once(
    streams: Any, s3: Any, bucket: str, table_dir: str, arn: str, clock: Clock, totals: dict[str, Any]
) -> int:
    """Read every shard once to where it is caught up (or closed); the number of changes archived."""
    shards, _ = list_shards(streams, arn)
    listed = {s["ShardId"] for s in shards}
    states = {s["shard"]: s for s in archive.all_states(s3, bucket, table_dir)}
    for state in states.values():
        if state["shard"] not in listed and not state.get("closed"):
            _lost(
                s3,
                bucket,
                table_dir,
                state,
                clock(),
                "shard left the stream (24 h retention) before it was archived to its end",
            )
            totals["gaps"] += 1
    got = 0
    for shard in shards:
        state = states.get(shard["ShardId"]) or {}
        if state.get("closed"):
            continue
        got += _read(streams, s3, bucket, table_dir, arn, shard["ShardId"], state, clock, totals)
    totals["changes"] += got
    return got


def _lost(s3: Any, bucket: str, table_dir: str, state: dict[str, Any], now: dt.datetime, reason: str) -> None:
    start = state.get("time") or state.get("coveredUntil") or now.isoformat()
    archive.record_gap(s3, bucket, table_dir, state["shard"], start, now.isoformat(), reason)
    archive.save_state(s3, bucket, table_dir, state["shard"], closed=True, lost=True)


def _read(
    streams: Any,
    s3: Any,
    bucket: str,
    table_dir: str,
    arn: str,
    shard: str,
    state: dict[str, Any],
    clock: Clock,
    totals: dict[str, Any],
) -> int:
    got = 0
    for batch in read_shard(streams, arn, shard, after=state.get("seq")):
        if batch.trimmed:
            end = batch.records[0]["time"] if batch.records else clock().isoformat()
            start = state.get("time") or state.get("coveredUntil") or end
            archive.record_gap(
                s3,
                bucket,
                table_dir,
                shard,
                start,
                end,
                "records past the 24 h retention were trimmed before they were archived",
            )
            totals["gaps"] += 1
        if archive.append(s3, bucket, table_dir, batch.records):
            totals["files"] += 1
            got += len(batch.records)
        if batch.closed:
            archive.save_state(s3, bucket, table_dir, shard, closed=True)
        elif batch.tip:  # empty pages before and between records say nothing; only the tip does
            archive.save_state(s3, bucket, table_dir, shard, coveredUntil=clock().isoformat())
    return got
