"""A restore's changes applied from this machine: partitioned to a local directory, then folded and written in a
loop, one partition in memory at a time (the machine's steps, in one process)."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ddb_backup.restore.partitioned import split
from ddb_backup.restore.partitioned.apply import apply_partition, each_partition
from ddb_backup.restore.partitioned.store import DirStore

if TYPE_CHECKING:
    from ddb_backup.changes.stream import Change
    from ddb_backup.restore.partitioned.files import ChangeFile


def apply_changes(
    ddb: Any,
    s3: Any,
    files: Sequence[ChangeFile],
    until: dt.datetime,
    target: str,
    *,
    keep: Callable[[Change], bool] | None = None,
    write_rate: float = 0.0,
    partition_bytes: int = split.PARTITION_BYTES,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Bring ``target`` to the state the changes leave at ``until`` (those ``keep`` accepts); the counts.

    ``dry_run``: only count the changes that would be applied (after the fold), writing nothing to the table.
    """
    counts = {"changes": 0, "puts": 0, "deletes": 0, "retries": 0}
    with tempfile.TemporaryDirectory(prefix="ddb-backup-changes-") as spool:
        store = DirStore(spool)
        partitions = split.partitions_for(files, partition_bytes)
        index = split.partition(s3, store, files, until, partitions=partitions, keep=keep)
        for _, lines in each_partition(store):
            if dry_run:
                counts["changes"] += len(lines)
                continue
            done = apply_partition(ddb, target, lines, {}, write_rate=write_rate)  # one at a time: the whole rate
            for name in counts:
                counts[name] += int(done[name])
    return {**counts, "partitions": index["partitions"], "read": index["changes"]}
