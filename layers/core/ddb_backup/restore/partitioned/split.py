"""One pass over the change files into N partitions by a hash of the key, in bounded memory, checkpointed.

A partition is a run of gzip JSON Lines chunks (``p<partition>/<chunk>.jsonl.gz``
in the store). Lines wait in buffers that together hold at most
:data:`BUFFER_BYTES`; past it, the largest buffer is written as the next
chunk of its partition. Every key's changes land in one partition, so a
partition folds alone. Changes after the moment (``until``), or that ``keep``
refuses, are left out here.

The pass saves where it is (file, line, chunks written) when its time budget
is spent, after writing every buffer, and raises ``ChangesPending``; the next
call resumes there. Chunks are numbered on from the saved counts, so a call
killed between saves rewrites the same names and no chunk is counted twice.
``index.json`` (partitions, chunks of each, changes) is written last: a
partition set without it is not finished.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import time
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ddb_backup.errors import ChangesPending
from ddb_backup.names import utc_time
from ddb_backup.restore.partitioned.files import ChangeFile, read_lines
from ddb_backup.restore.partitioned.store import Store, get_doc, put_doc

if TYPE_CHECKING:
    from ddb_backup.changes.stream import Change

INDEX = "index.json"
PROGRESS = "progress.json"
#: The lines all partitions' buffers hold together before the largest is written out.
BUFFER_BYTES = 16 * 1024 * 1024
#: Compressed change-file bytes a partition is sized for (about 50,000 changes of 500 bytes each).
PARTITION_BYTES = 4 * 1024 * 1024
MAX_PARTITIONS = 2000
#: Lines between two looks at the clock.
CHECK_EVERY = 5000


def partitions_for(files: Sequence[ChangeFile], partition_bytes: int = PARTITION_BYTES) -> int:
    """How many partitions the files need, so that each holds about ``partition_bytes`` of them."""
    total = sum(max(f.size, 1) for f in files)
    return max(1, min(MAX_PARTITIONS, math.ceil(total / max(1, partition_bytes))))


def key_text(change: Change) -> str:
    """A change's key as one canonical string (the fold's dictionary key and the hash's input)."""
    return json.dumps(change["Keys"], sort_keys=True, separators=(",", ":"))


def partition_of(change: Change, partitions: int) -> int:
    return zlib.crc32(key_text(change).encode()) % partitions


def chunk_name(partition: int, chunk: int) -> str:
    return f"p{partition:05d}/{chunk:06d}.jsonl.gz"


class _Buffers:
    """Per-partition lines waiting to be written, at most ``limit`` bytes in all."""

    def __init__(self, store: Store, chunks: list[int], limit: int) -> None:
        self.store, self.chunks, self.limit = store, chunks, limit
        self.lines: list[list[bytes]] = [[] for _ in chunks]
        self.sizes = [0] * len(chunks)
        self.total = 0
        self.peak = 0

    def add(self, partition: int, line: bytes) -> None:
        self.lines[partition].append(line)
        self.sizes[partition] += len(line) + 1
        self.total += len(line) + 1
        self.peak = max(self.peak, self.total)
        if self.total > self.limit:
            self.write(max(range(len(self.sizes)), key=self.sizes.__getitem__))

    def write(self, partition: int) -> None:
        if not self.lines[partition]:
            return
        body = gzip.compress(b"\n".join(self.lines[partition]) + b"\n", compresslevel=1, mtime=0)
        self.store.put(chunk_name(partition, self.chunks[partition]), body)
        self.chunks[partition] += 1
        self.total -= self.sizes[partition]
        self.lines[partition], self.sizes[partition] = [], 0

    def write_all(self) -> None:
        for partition in range(len(self.lines)):
            self.write(partition)


def partition(
    s3: Any,
    store: Store,
    files: Sequence[ChangeFile],
    until: dt.datetime,
    *,
    partitions: int,
    keep: Callable[[Change], bool] | None = None,
    budget: float = math.inf,
    clock: Callable[[], float] = time.monotonic,
    buffer_bytes: int = BUFFER_BYTES,
) -> dict[str, Any]:
    """Split the changes at or before ``until`` (and that ``keep`` accepts) into ``partitions``; the index.

    Returns the index at once when the store already holds one. Raises ``ChangesPending`` (position saved) when
    ``budget`` seconds pass with lines left.
    """
    done = get_doc(store, INDEX)
    if done is not None:
        return dict(done)
    state = get_doc(store, PROGRESS) or {"file": 0, "line": 0, "chunks": [0] * partitions, "changes": 0}
    buffers = _Buffers(store, list(state["chunks"]), buffer_bytes)
    start, changes = clock(), int(state["changes"])
    for number in range(int(state["file"]), len(files)):
        skip = int(state["line"]) if number == state["file"] else 0
        for n, (line, change) in enumerate(read_lines(s3, files[number]), 1):
            if n <= skip:
                continue
            if utc_time(change["time"]) <= until and (keep is None or keep(change)):
                buffers.add(partition_of(change, partitions), line)
                changes += 1
            if n % CHECK_EVERY == 0 and clock() - start >= budget:
                _pause(store, buffers, (number, n), changes, len(files))
        if number + 1 < len(files) and clock() - start >= budget:
            _pause(store, buffers, (number + 1, 0), changes, len(files))
    buffers.write_all()
    index = {"partitions": partitions, "chunks": buffers.chunks, "changes": changes, "until": until.isoformat()}
    index["bufferPeakBytes"] = buffers.peak
    put_doc(store, INDEX, index)
    return index


def _pause(store: Store, buffers: _Buffers, where: tuple[int, int], changes: int, files: int) -> None:
    """Write every buffer, save the position (lines of ``where``'s file up to its line are done), stop."""
    buffers.write_all()
    put_doc(store, PROGRESS, {"file": where[0], "line": where[1], "chunks": buffers.chunks, "changes": changes})
    raise ChangesPending(
        f"{store.where('')}: {changes:,} changes partitioned, up to file {where[0] + 1} of {files}; "
        "resuming in the next try"
    )
