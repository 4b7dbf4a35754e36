"""An exact backup's changes, gathered in bounded files and checkpointed (issue 23 point 8).

After the scan, every change from the scan's start (less a second) up to
``consistentAt`` of the shards open at the scan's start and of their
descendants (a shard closed before the scan holds no change made after it,
and may have left the stream) is written beside the parts, in files of at
most ``chunk`` changes plus one page. After each file, a checkpoint
(``changes/_gather.json`` in the backup's directory) records the moment, the
files, and how far each source was read: each shard's last sequence number,
the next archive file. An invocation that runs out of time (``time_left``)
writes what it holds, checkpoints and says so; the next one resumes there. One
that died between two files redoes the work since the last checkpoint, which
rewrites the same file names.

Where the table has a change archive that names the same stream, covers the
scan's start and records no gap in the span, the changes come from its files:
the stream keeps one reader, the archiver. A shard is read from the stream
(after the last change archived from it) only when the archive cannot show,
within ``archive_wait`` seconds, that it holds the shard's changes up to the
moment: no change past the moment archived from it or a descendant, and not
closed and archived to its end (a shard with no change since the moment).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ddb_backup.aws.s3io import get_json, get_json_or_none, put_json
from ddb_backup.changes import archive
from ddb_backup.changes.consistent import MARGIN, Position, moment
from ddb_backup.changes.replay import gap_in
from ddb_backup.changes.stream import Change, list_shards, read_shard
from ddb_backup.errors import BackupIncomplete
from ddb_backup.names import utc_time

CHECKPOINT = f"{archive.CHANGES}_gather.json"
#: The archive files to read, listed once (the checkpoint holds only the index of the next one).
ARCHIVE_FILES = f"{archive.CHANGES}_gather-files.json"
#: Changes a file holds (plus at most one page): what a finalize holds in memory.
CHUNK = 50_000
#: Seconds finalize waits for the archiver to show it holds every shard's changes up to the moment.
ARCHIVE_WAIT = 60.0


@dataclass
class Limits:
    """How a gathering runs: its file size, its time, its waits."""

    chunk: int = CHUNK
    time_left: Callable[[], float] = field(default=lambda: math.inf)
    settle: float = 2.0
    archive_wait: float = ARCHIVE_WAIT
    sleep: Callable[[float], None] = time.sleep


class _Files:
    """The changes gathered so far, written ``chunk`` at a time; each file followed by the checkpoint."""

    def __init__(self, s3: Any, bucket: str, directory: str, state: dict[str, Any], chunk: int) -> None:
        self.s3, self.bucket, self.directory, self.state, self.chunk = s3, bucket, directory, state, chunk
        self.buffer: list[Change] = []
        self.progressed = False  # this call read something: it may stop (each call moves on, whatever its time)
        self.since, self.until = utc_time(state["changesFrom"]), utc_time(state["consistentAt"])

    def add(self, changes: list[Change]) -> None:
        """Keep the changes of the span; write a file once ``chunk`` are held."""
        self.buffer.extend(c for c in changes if self.since <= utc_time(c["time"]) <= self.until)
        if len(self.buffer) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        """Write the held changes (if any) as the next file, then the checkpoint (always)."""
        if self.buffer:
            name = f"{archive.CHANGES}{len(self.state['files']):06d}.jsonl.gz"
            entry = archive.put_changes(self.s3, self.bucket, self.directory + name, self.buffer)
            self.state["files"].append({**entry, "key": name})
            self.buffer = []
        put_json(self.s3, self.bucket, self.directory + CHECKPOINT, self.state)


def gather(
    s3: Any, streams: Any, bucket: str, directory: str, position: Position, limits: Limits | None = None
) -> dict[str, Any] | None:
    """Gather (or go on gathering) an exact backup's changes; the manifest's fields once all are written,
    None when ``time_left`` ran out first (the checkpoint says where the next call goes on)."""
    limits = limits or Limits()
    state = get_json_or_none(s3, bucket, directory + CHECKPOINT)
    if state is None:
        state = _begin(s3, streams, bucket, directory, position, limits)
    files = _Files(s3, bucket, directory, state, limits.chunk)
    if not state.get("done"):
        done = _from_archive(s3, bucket, directory, files, limits) and _from_stream(streams, position, files, limits)
        state["done"] = done
        files.flush()
        if not done:
            return None
    return {"consistentAt": state["consistentAt"], "changesFrom": state["changesFrom"], "changes": state["files"]}


def _begin(s3: Any, streams: Any, bucket: str, directory: str, position: Position, limits: Limits) -> dict[str, Any]:
    """The first call: the moment, the shards to read and where from, the archive files; checkpointed.

    The shards are listed once DynamoDB's clock has passed the moment: a shard opened later holds only later
    changes."""
    consistent_at = moment(streams, position)
    shards = [s["ShardId"] for s in _relevant(streams, position)]
    limits.sleep(limits.settle)
    since = position.started - MARGIN
    state: dict[str, Any] = {
        "consistentAt": consistent_at.isoformat(),
        "changesFrom": since.isoformat(),
        "files": [],
        "shards": {shard: {"after": None, "done": False} for shard in shards},
    }
    table_dir = directory.rstrip("/").rsplit("/", 1)[0] + "/"
    if _archive_usable(s3, streams, bucket, table_dir, position, since, consistent_at):
        state["shards"] = _await_archive(s3, streams, bucket, table_dir, position, consistent_at, shards, limits)
        keys = sorted(archive.files_between(s3, bucket, table_dir, since, consistent_at))
        put_json(s3, bucket, directory + ARCHIVE_FILES, keys)
        state["archive"] = {"files": len(keys), "next": 0}
    put_json(s3, bucket, directory + CHECKPOINT, state)
    return state


def _trimmed(position: Position, gone: list[str]) -> str:
    return (
        f"table {position.table}: stream shards {gone} were trimmed (24 h retention) during the scan: "
        "the changes since it began are lost; back up again with more segments or workers"
    )


def _relevant(streams: Any, position: Position) -> list[dict[str, Any]]:
    """The shards open at the scan's start and their descendants, parents first; refuses when one of the
    former left the stream (the scan outlasted the retention)."""
    shards, _ = list_shards(streams, position.arn)
    gone = sorted(position.shards - {s["ShardId"] for s in shards})
    if gone:
        raise BackupIncomplete(_trimmed(position, gone))
    wanted = set(position.shards)
    for shard in shards:  # lineage order: a parent before its children
        if shard.get("ParentShardId") in wanted:
            wanted.add(shard["ShardId"])
    return [s for s in shards if s["ShardId"] in wanted]


def _archive_usable(
    s3: Any, streams: Any, bucket: str, table_dir: str, position: Position, since: dt.datetime, until: dt.datetime
) -> bool:
    """Whether the table's change archive can stand in for the stream over [since, until]."""
    info = archive.archive_info(s3, bucket, table_dir)
    if not info or info.get("streamArn") != position.arn:
        return False
    _, created = list_shards(streams, position.arn)  # an archive begun with its stream misses nothing before
    if utc_time(info["coveredFrom"]) > max(since, created or since):
        return False
    return gap_in(archive.gaps(s3, bucket, table_dir), since, until) is None


def _await_archive(
    s3: Any,
    streams: Any,
    bucket: str,
    table_dir: str,
    position: Position,
    until: dt.datetime,
    wanted: list[str],
    limits: Limits,
) -> dict[str, dict[str, Any]]:
    """Each wanted shard: done (the archive holds its changes to ``until``), or the sequence number to read
    the stream after. Waits up to ``archive_wait`` seconds for the archiver (DescribeStream only, no reads)."""
    deadline = time.monotonic() + limits.archive_wait
    while True:
        shards, _ = list_shards(streams, position.arn)
        states = {s["shard"]: s for s in archive.all_states(s3, bucket, table_dir)}
        covered = _covered(shards, states, until)
        if covered >= set(wanted) or time.monotonic() >= deadline:
            break
        limits.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    return {shard: {"after": (states.get(shard) or {}).get("seq"), "done": shard in covered} for shard in wanted}


def _covered(shards: list[dict[str, Any]], states: dict[str, dict[str, Any]], until: dt.datetime) -> set[str]:
    """The shards whose changes up to ``until`` the archive holds: a change past it archived from the shard
    or a descendant (Lambda finishes a parent before its children), or closed and archived to its end."""
    covered: set[str] = set()
    for shard in reversed(shards):  # children first: a covered child covers its parent
        sid, state = shard["ShardId"], states.get(shard["ShardId"]) or {}
        end = shard["SequenceNumberRange"].get("EndingSequenceNumber")
        past = "time" in state and utc_time(state["time"]) > until
        to_end = end is not None and "seq" in state and int(state["seq"]) >= int(end)
        child = any(
            s.get("ParentShardId") == sid and (s["ShardId"] in covered or s["ShardId"] in states) for s in shards
        )
        if past or to_end or child:
            covered.add(sid)
    return covered


def _from_archive(s3: Any, bucket: str, directory: str, files: _Files, limits: Limits) -> bool:
    """Read the archive files from the checkpoint's next one; False when time ran out first."""
    progress = files.state.get("archive")
    if not progress or progress["next"] >= progress["files"]:
        return True
    keys = get_json(s3, bucket, directory + ARCHIVE_FILES)
    table_dir = directory.rstrip("/").rsplit("/", 1)[0] + "/"
    for key in keys[progress["next"] :]:
        if files.progressed and limits.time_left() <= 0:
            return False
        if not key.startswith(table_dir):
            raise BackupIncomplete(f"{key}: not an archive file of {table_dir}")
        progress["next"] += 1  # first: a file written now holds this one's changes, and its checkpoint says so
        files.add(archive.get_changes(s3, bucket, key))
        files.progressed = True
    return True


def _from_stream(streams: Any, position: Position, files: _Files, limits: Limits) -> bool:
    """Read each shard not yet done from its checkpointed position to the moment; False when time ran out."""
    until = utc_time(files.state["consistentAt"])
    for shard, progress in files.state["shards"].items():
        if progress["done"]:
            continue
        if files.progressed and limits.time_left() <= 0:
            return False
        pages = read_shard(
            streams,
            position.arn,
            shard,
            after=progress["after"],
            stop=lambda b: utc_time(b[-1]["time"]) > until,
        )
        for page in pages:
            if page.trimmed:
                raise BackupIncomplete(
                    f"table {position.table}: shard {shard} was trimmed past sequence number {progress['after']} "
                    "(24 h retention) before finalize read it: back up again"
                )
            if page.records:  # the position first: a file written now holds this page, and its checkpoint says so
                progress["after"] = page.records[-1]["seq"]
                files.add(page.records)
            files.progressed = True
            # stop after a page of records only: a shard's tip is a run of empty pages, which a new call restarts
            if page.records and limits.time_left() <= 0 and not (page.closed or _past(page.records, until)):
                return False
        progress["done"] = True
    return True


def _past(records: list[Change], until: dt.datetime) -> bool:
    return bool(records) and utc_time(records[-1]["time"]) > until
