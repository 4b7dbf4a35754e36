"""The restore machine's steps for an exact or to-time table's changes (issue 23 point 8).

After the parts (and any import), *Partition the changes* splits each exact
table's changes under ``<runPrefix>changes/<table>/`` and writes the
Distributed Map's items (``changes/partitions.json``, one per partition:
small, so the state stays far below 256 KiB). *Apply the changes* runs one
child per partition, each with its share of the table's write rate, looping
until its partition is written (``done/p<partition>.json`` says how far).
Finalize trusts none of the Map's accounting: every partition must have
its note saying it finished.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ddb_backup.aws.ratelimit import segment_share
from ddb_backup.aws.s3io import get_json, put_json
from ddb_backup.changes.stream import Change
from ddb_backup.errors import ChangesPending, IntegrityError
from ddb_backup.format import layout
from ddb_backup.names import split_s3_url, utc_time
from ddb_backup.restore.partitioned import split
from ddb_backup.restore.partitioned.apply import apply_partition, folded
from ddb_backup.restore.partitioned.files import ChangeFile, backup_files, to_time_files
from ddb_backup.restore.partitioned.store import S3Store, Store, get_doc, put_doc

ITEMS = "changes/partitions.json"
FILES = "files.json"
#: The last error that failed a split or a child of the table (finalize quotes it).
ERROR = "error.json"

#: A table's key predicate, by its plan entry (None: every change). Key selectors on the restore machine
#: give one here; today the machine restores whole tables.
KeepFor = Callable[[dict[str, Any]], Callable[[Change], bool] | None]


def table_store(s3: Any, bucket: str, prefix: str, index: int) -> S3Store:
    return S3Store(s3, bucket, f"{prefix}changes/{index}/")


def _files(s3: Any, store: Store, exact: dict[str, Any]) -> list[ChangeFile]:
    """The table's change files, listed once (a retry reads the same list, whatever the archive gained since)."""
    listed = get_doc(store, FILES)
    if listed is None:
        if "toTime" in exact:
            bucket, directory = split_s3_url(exact["source"])
            manifest = get_json(s3, bucket, directory + layout.MANIFEST)
            files = to_time_files(s3, bucket, exact["tableDir"], manifest, utc_time(exact["toTime"]))
        else:
            files = (backup_files(s3, exact["source"]) or ("", []))[1]
        listed = [f.to_json() for f in files]
        put_doc(store, FILES, listed)
    return [ChangeFile.from_json(doc) for doc in listed]


def partition_run(
    s3: Any,
    bucket: str,
    prefix: str,
    *,
    concurrency: int,
    budget: float = math.inf,
    partition_bytes: int = split.PARTITION_BYTES,
    keep_for: KeepFor = lambda table: None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Partition every exact table's changes (resuming a paused split); the Map's items, in S3.

    ``concurrency``: the Map's children at once (each gets its share of the table's write rate).
    Returns ``{"partitions": count, "itemsKey": key}`` (0: nothing to apply). Raises ``ChangesPending`` when
    ``budget`` seconds pass first (the machine retries; the next call resumes)."""
    plan = get_json(s3, bucket, prefix + "plan.json")
    items: list[dict[str, Any]] = []
    start = clock()
    for table in (t for t in plan["tables"] if t.get("exact")):
        exact, store = table["exact"], table_store(s3, bucket, prefix, table["index"])
        files = _files(s3, store, exact)
        count = split.partitions_for(files, partition_bytes)
        left = max(0.0, budget - (clock() - start))
        until = utc_time(exact.get("toTime", exact["consistentAt"]))
        with _noted(store, ERROR):
            index = split.partition(s3, store, files, until, partitions=count, keep=keep_for(table), budget=left)
        share = segment_share(table.get("writeRate") or None, index["partitions"], concurrency)
        base = {"table": table["index"], "target": table["target"], "writeRate": share}
        items.extend({**base, "partition": p} for p in range(index["partitions"]))
    put_json(s3, bucket, prefix + ITEMS, items)
    return {"partitions": len(items), "itemsKey": prefix + ITEMS}


def done_name(partition: int) -> str:
    return f"done/p{partition:05d}.json"


@contextmanager
def _noted(store: Store, name: str) -> Iterator[None]:
    """Note what failed the block (not a pause) under ``name`` for finalize to quote, then raise it."""
    try:
        yield
    except ChangesPending:
        raise
    except Exception as exc:
        put_doc(store, name, {"error": type(exc).__name__, "message": str(exc)[:1000]})
        raise


def _quoted(store: Store, name: str) -> str:
    note = get_doc(store, name)
    return f": {note['error']}: {note['message']}" if note else ""


def apply_task(
    ddb: Any,
    s3: Any,
    bucket: str,
    prefix: str,
    task: dict[str, Any],
    *,
    budget: float = math.inf,
) -> dict[str, Any]:
    """One Map child's call: write its partition from where the last call stopped; ``done`` when all is written."""
    store = table_store(s3, bucket, prefix, int(task["table"]))
    name = done_name(int(task["partition"]))
    done = get_doc(store, name) or {}
    if not done.get("finished"):
        index = get_doc(store, split.INDEX)
        if index is None:
            raise IntegrityError(f"{store.where(split.INDEX)}: missing; the changes were not partitioned")
        with _noted(store, ERROR):
            lines = folded(store, index, int(task["partition"]))
            rate = float(task.get("writeRate") or 0)
            done = apply_partition(ddb, task["target"], lines, done, write_rate=rate, budget=budget)
        put_doc(store, name, done)
    return {"done": bool(done.get("finished")), "applied": int(done["applied"])}


def changes_outcome(s3: Any, bucket: str, prefix: str, table: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """For finalize: an exact table's counts (report row fields) and what did not finish (problems)."""
    exact = table.get("exact")
    if not exact:
        return {}, []
    store = table_store(s3, bucket, prefix, table["index"])
    index = get_doc(store, split.INDEX)
    if index is None:
        why = _quoted(store, ERROR) or " (the step did not finish)"
        return {}, [f"table {table['target']}: its changes were not partitioned{why}"]
    notes = [get_doc(store, done_name(p)) or {} for p in range(int(index["partitions"]))]
    missing = [p for p, note in enumerate(notes) if not note.get("finished")]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        return {}, [
            f"table {table['target']}: {len(missing)} of {index['partitions']} partitions of its changes did not "
            f"finish ({shown}; see {store.where('done/')}){_quoted(store, ERROR)}"
        ]
    row = {"until": exact.get("toTime", exact["consistentAt"]), "partitions": index["partitions"]}
    row.update(changesApplied=sum(int(n["changes"]) for n in notes))
    row.update(puts=sum(int(n["puts"]) for n in notes), deletes=sum(int(n["deletes"]) for n in notes))
    return row, []
