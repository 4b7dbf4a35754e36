"""Applying changes to a table: in sequence order, idempotent, the last writer by sequence number wins.

Replay first folds the changes into one final state per key (the change with
the highest sequence number), so applying a set twice, or a set holding
repeats of a retried batch, writes the same table. Only a suffix-closed set of
a key's changes is ever applied (every change from some point up to the cut),
so the key ends as it was at the cut.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.retry import backoff_delay, call_with_backoff
from ddb_backup.errors import RestoreIncomplete
from ddb_backup.format import ddbjson
from ddb_backup.names import utc_time

if TYPE_CHECKING:
    from ddb_backup.changes.stream import Change


def fold(changes: Iterable[Change], until: dt.datetime | None = None) -> dict[str, Change]:
    """The last change (highest sequence number) of every key, among changes at or before ``until``."""
    final: dict[str, Change] = {}
    for change in changes:
        if until is not None and utc_time(change["time"]) > until:
            continue
        key = json.dumps(change["Keys"], sort_keys=True)
        held = final.get(key)
        if held is None or int(held["seq"]) < int(change["seq"]):
            final[key] = change
    return final


def apply(
    ddb: Any,
    table: str,
    changes: Iterable[Change],
    until: dt.datetime | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Bring ``table`` to the state the changes leave (up to ``until``); counts of puts and deletes."""
    final = list(fold(changes, until).values())
    counts = {"changes": len(final), "puts": 0, "deletes": 0}
    for start in range(0, len(final), 25):
        requests = []
        for change in final[start : start + 25]:
            if change["event"] == "REMOVE":
                requests.append({"DeleteRequest": {"Key": ddbjson.item_from_wire(change["Keys"])}})
                counts["deletes"] += 1
            else:
                requests.append({"PutRequest": {"Item": ddbjson.item_from_wire(change["NewImage"])}})
                counts["puts"] += 1
        _write(ddb, table, requests, sleep=sleep)
    return counts


def _write(
    ddb: Any, table: str, requests: list[dict[str, Any]], *, sleep: Callable[[float], None], attempts: int = 12
) -> None:
    """One BatchWriteItem, its UnprocessedItems sent again after a jittered exponential backoff (a throttled
    table leaves them unprocessed again when they are resent at once: every try would be spent in a moment)."""
    pending = {table: requests}
    for attempt in range(attempts):
        left = call_with_backoff(ddb.batch_write_item, RequestItems=pending).get("UnprocessedItems") or {}
        if not left:
            return
        pending = left
        if attempt < attempts - 1:
            sleep(backoff_delay(attempt, floor=0.5))
    raise RestoreIncomplete(
        f"{table}: {len(pending.get(table, []))} changes could not be applied after {attempts} tries"
    )


def gap_in(gaps: list[dict[str, Any]], start: dt.datetime, end: dt.datetime) -> dict[str, Any] | None:
    """The first recorded gap overlapping (start, end], if any."""
    for gap in sorted(gaps, key=lambda g: g["from"]):
        if utc_time(gap["from"]) <= end and utc_time(gap["to"]) > start:
            return gap
    return None
