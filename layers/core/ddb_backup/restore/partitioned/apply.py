"""One partition folded to the last change per key and written, from a position, under a write rate.

The fold keeps, per key, the change with the highest sequence number (as
an integer: sequence numbers vary in length), so repeats and any order of
arrival give the same result; the partition holds only changes at or before
the moment. The folded list is sorted by key, the same in every call, so a
position (changes written) says where to resume. Writing a final state
twice is harmless: a call killed between saves only repeats writes.
``UnprocessedItems`` are sent again after a backoff, never dropped: a batch
still unprocessed after every try fails the call (the machine retries it).
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from ddb_backup.aws.ratelimit import RateLimiter, consumed_units
from ddb_backup.aws.retry import backoff_delay, call_with_backoff
from ddb_backup.errors import IntegrityError, RestoreIncomplete
from ddb_backup.format import ddbjson
from ddb_backup.restore.partitioned.split import INDEX, chunk_name, key_text
from ddb_backup.restore.partitioned.store import Store, get_doc

BATCH = 25
ATTEMPTS = 12


def folded(store: Store, index: dict[str, Any], partition: int) -> list[bytes]:
    """The last change of every key in one partition, as change lines sorted by key."""
    final: dict[str, tuple[int, bytes]] = {}
    for chunk in range(int(index["chunks"][partition])):
        body = store.get(chunk_name(partition, chunk))
        if body is None:
            raise IntegrityError(f"{store.where(chunk_name(partition, chunk))}: a partition's chunk is missing")
        for line in gzip.decompress(body).splitlines():
            change = json.loads(line)
            key, seq = key_text(change), int(change["seq"])
            held = final.get(key)
            if held is None or held[0] < seq:
                final[key] = (seq, line)
        del body
    return [final[key][1] for key in sorted(final)]


def _requests(lines: list[bytes], counts: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        change = json.loads(line)
        if change["event"] == "REMOVE":
            out.append({"DeleteRequest": {"Key": ddbjson.item_from_wire(change["Keys"])}})
            counts["deletes"] += 1
        else:
            out.append({"PutRequest": {"Item": ddbjson.item_from_wire(change["NewImage"])}})
            counts["puts"] += 1
    return out


def write_batch(
    ddb: Any,
    table: str,
    requests: list[dict[str, Any]],
    limiter: RateLimiter | None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """One BatchWriteItem within the rate, its UnprocessedItems sent again after a backoff; the retries it took."""
    pending = {table: requests}
    for attempt in range(ATTEMPTS):
        estimate = float(len(pending[table]))
        if limiter is not None:
            limiter.acquire(estimate)
        out = call_with_backoff(ddb.batch_write_item, RequestItems=pending, ReturnConsumedCapacity="TOTAL")
        left = (out.get("UnprocessedItems") or {}).get(table) or []
        if limiter is not None:
            limiter.charge(consumed_units(out) or estimate - len(left), estimate)
            if left:
                limiter.throttled()
        if not left:
            return attempt
        pending = {table: left}
        if attempt < ATTEMPTS - 1:
            sleep(backoff_delay(attempt, floor=0.5))
    raise RestoreIncomplete(f"{table}: {len(pending[table])} changes still unprocessed after {ATTEMPTS} tries")


def apply_partition(
    ddb: Any,
    target: str,
    lines: list[bytes],
    done: dict[str, Any],
    *,
    write_rate: float = 0.0,
    budget: float = math.inf,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Write ``lines`` (a folded partition) from ``done['applied']`` on until written or ``budget`` seconds pass.

    ``done``: ``applied``, ``puts``, ``deletes``, ``retries`` so far; returned updated, ``finished`` when all are.
    """
    done = {"applied": 0, "puts": 0, "deletes": 0, "retries": 0, **done}
    limiter = RateLimiter(write_rate, sleep=sleep, clock=clock) if write_rate > 0 else None
    start = clock()
    while done["applied"] < len(lines):
        batch = lines[done["applied"] : done["applied"] + BATCH]
        done["retries"] += write_batch(ddb, target, _requests(batch, done), limiter, sleep)
        done["applied"] += len(batch)
        if done["applied"] < len(lines) and clock() - start >= budget:
            return done
    return {**done, "finished": True, "changes": len(lines)}


def each_partition(store: Store) -> Iterator[tuple[int, list[bytes]]]:
    """Every partition of a finished split, folded, one at a time (the CLI's loop)."""
    index = get_doc(store, INDEX)
    if index is None:
        raise IntegrityError(f"{store.where(INDEX)}: the changes were not partitioned to the end")
    for number in range(int(index["partitions"])):
        yield number, folded(store, index, number)
