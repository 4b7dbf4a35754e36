"""Scan one segment of a table into gzip JSON Lines parts, within a time budget.

A segment may hold more than one Lambda invocation can scan. Each invocation
starts from the key the previous one returned, writes its parts, then writes a
*checkpoint* object (``checkpoints/<segment>-<seq>.json``) that lists them and
the key to go on from. Finalize follows the chain seq 0, 1, 2 ... to the one
marked done; a retried invocation (same input) rewrites the same parts and
the same checkpoint, so nothing is counted twice and nothing is skipped.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ddb_backup.aws.ratelimit import RateLimiter, consumed_units
from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.aws.s3io import put_json
from ddb_backup.backup import fastscan
from ddb_backup.format import layout
from ddb_backup.format.ddbjson import item_from_wire, item_to_wire, line_from_client_item
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL, Part, PartBuffer, upload_part

MiB = 1024 * 1024
FIRST_PAGE_ITEMS = 100  # a rate-limited scan's first page, before it knows what an item costs
PAGE_SECONDS = 0.5  # a rate-limited scan's pages cost about this many seconds of its rate


@dataclass(frozen=True)
class ScanSettings:
    bucket: str
    part_bytes: int = 64 * MiB  # a part closes once this much JSON is in it
    gzip_level: int = DEFAULT_GZIP_LEVEL
    page_limit: int | None = None  # Scan Limit; None lets DynamoDB fill 1 MB pages
    consistent_read: bool = False
    fast_path: bool = True  # read pages straight from the response body (fastscan); False: botocore parses them


def scan_segment(
    ddb: Any,
    s3: Any,
    settings: ScanSettings,
    task: dict[str, Any],
    *,
    time_left: Callable[[], float],
    on_page: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Scan from ``task['startKey']`` until the segment ends or ``time_left()`` (seconds) reaches 0.

    Always scans at least one page; ``on_page(items, JSON bytes)`` is told of each. Returns ``task`` updated:
    ``done``, ``startKey`` for the next invocation, ``seq``, ``nextPart`` and the running ``items``/``bytes`` totals.
    """
    table, directory = task["table"], task["backupDir"]
    segment, total = int(task["segment"]), int(task["totalSegments"])
    seq, next_part = int(task.get("seq", 0)), int(task.get("nextPart", 0))
    start_key = task.get("startKey")
    try:
        parts, last_key = _SegmentScan(ddb, s3, settings, task, time_left, on_page).run(next_part)
    except Exception as exc:
        # Leave a note finalize can quote; the error still propagates to Step Functions.
        put_json(
            s3,
            settings.bucket,
            directory + layout.error_key(segment),
            {
                "table": table,
                "segment": segment,
                "totalSegments": total,
                "seq": seq,
                "error": type(exc).__name__,
                "message": str(exc),
                "trace": traceback.format_exc(limit=5),
            },
        )
        raise
    done = last_key is None
    put_json(
        s3,
        settings.bucket,
        directory + layout.checkpoint_key(segment, seq),
        {
            "segment": segment,
            "seq": seq,
            "startKey": start_key,
            "nextKey": last_key,
            "done": done,
            "parts": [p.to_json() for p in parts],
        },
    )
    return {
        **task,
        "seq": seq + 1,
        "nextPart": next_part + len(parts),
        "startKey": last_key,
        "done": done,
        "items": int(task.get("items", 0)) + sum(p.items for p in parts),
        "bytes": int(task.get("bytes", 0)) + sum(p.bytes for p in parts),
    }


class Pages:
    """Pages as botocore parses them: client-form items made into lines, the key turned to wire form at the end.

    With a ``limiter`` each Scan asks for its ConsumedCapacity, waits its turn
    before going out and is charged what it consumed after; a throttled try
    halves the limiter's rate.
    """

    def __init__(self, ddb: Any, request: dict[str, Any], limiter: RateLimiter | None = None) -> None:
        self.ddb = ddb
        self.request = request
        self.limiter = limiter
        self.last_cost = 0.0  # what the previous page consumed: the next one's estimate
        self.max_items = int(request.get("Limit") or 0)  # the page size asked for, if any
        if limiter is not None:
            request["ReturnConsumedCapacity"] = "TOTAL"
            request["Limit"] = min(self.max_items or FIRST_PAGE_ITEMS, FIRST_PAGE_ITEMS)

    def buffer(self, gzip_level: int) -> PartBuffer:
        return PartBuffer(gzip_level)

    def _before(self) -> Callable[[], None] | None:
        if self.limiter is None:
            return None
        self.limiter.acquire(self.last_cost)
        return self.limiter.throttled

    def _after(self, consumed: float | None, data_bytes: int, items: int) -> None:
        """Charge the limiter; size the next page to about half a second of its rate (pacing stays smooth)."""
        if self.limiter is None:
            return
        if consumed is None:  # not reported: a 4 KiB unit, halved unless the read is consistent
            consumed = math.ceil(data_bytes / 4096) * (1.0 if self.request.get("ConsistentRead") else 0.5)
        self.limiter.charge(consumed, self.last_cost)
        self.last_cost = consumed
        if items and consumed > 0:
            fitting = max(1, int(items * self.limiter.rate * PAGE_SECONDS / consumed))
            self.request["Limit"] = min(fitting, self.max_items) if self.max_items else fitting

    def read_into(self, buf: PartBuffer) -> dict[str, Any] | None:
        """Scan one page into ``buf``; return its LastEvaluatedKey."""
        on_throttle = self._before()
        page = call_with_backoff(self.ddb.scan, on_throttle=on_throttle, **self.request)
        if on_throttle is not None and fastscan.retried(page):
            on_throttle()
        items = page.get("Items", [])
        before = buf.uncompressed_bytes
        if items:
            buf.add([line_from_client_item(item) for item in items])
        self._after(consumed_units(page), buf.uncompressed_bytes - before, len(items))
        last_key: dict[str, Any] | None = page.get("LastEvaluatedKey")
        return last_key

    def advance(self, last_key: dict[str, Any]) -> None:
        self.request["ExclusiveStartKey"] = last_key

    def wire_key(self, last_key: dict[str, Any] | None) -> dict[str, Any] | None:
        return item_to_wire(last_key) if last_key else None


class FastPages(Pages):
    """Pages on :mod:`fastscan`: lines come from the raw page, keys stay in wire form."""

    def buffer(self, gzip_level: int) -> PartBuffer:
        return fastscan.BlockPartBuffer(gzip_level)

    def read_into(self, buf: PartBuffer) -> dict[str, Any] | None:
        """Scan one page into ``buf`` (a ``BlockPartBuffer``); return its LastEvaluatedKey."""
        assert isinstance(buf, fastscan.BlockPartBuffer)
        page = self.next_page()
        buf.add_block(page.data, page.items)
        return page.last_key

    def next_page(self) -> fastscan.Page:
        """Scan one page (within the limiter's rate, if any)."""
        page = fastscan.fetch_page(self.ddb, self.request, on_throttle=self._before())
        self._after(page.consumed, len(page.data), page.items)
        return page

    def advance(self, last_key: dict[str, Any]) -> None:
        fastscan.next_request(self.request, last_key)

    def wire_key(self, last_key: dict[str, Any] | None) -> dict[str, Any] | None:
        return last_key


@dataclass(frozen=True)
class _SegmentScan:
    """One invocation's scan of a segment: pages into parts until the segment ends or the time is up."""

    ddb: Any
    s3: Any
    settings: ScanSettings
    task: dict[str, Any]
    time_left: Callable[[], float]
    on_page: Callable[[int, int], None] | None = None

    def run(self, next_part: int) -> tuple[list[Part], dict[str, Any] | None]:
        """The parts written from part number ``next_part`` on, and the key to go on from (None: done)."""
        rate = float(self.task.get("readRate") or 0)
        limiter = RateLimiter(rate) if rate > 0 else None
        pages = (FastPages if self.settings.fast_path else Pages)(self.ddb, self._request(), limiter)
        parts: list[Part] = []
        buf = pages.buffer(self.settings.gzip_level)
        while True:
            before = buf.items, buf.uncompressed_bytes
            last_key = pages.read_into(buf)
            if self.on_page is not None:
                self.on_page(buf.items - before[0], buf.uncompressed_bytes - before[1])
            if buf.uncompressed_bytes >= self.settings.part_bytes:
                parts.append(self._flush(next_part + len(parts), buf))
                buf = pages.buffer(self.settings.gzip_level)
            if last_key is None or self.time_left() <= 0:
                break
            pages.advance(last_key)
        if buf.items:
            parts.append(self._flush(next_part + len(parts), buf))
        return parts, pages.wire_key(last_key)

    def _request(self) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.task["table"],
            "Segment": int(self.task["segment"]),
            "TotalSegments": int(self.task["totalSegments"]),
            "ConsistentRead": self.settings.consistent_read,
        }
        if self.settings.page_limit:
            request["Limit"] = self.settings.page_limit
        if self.task.get("startKey"):
            request["ExclusiveStartKey"] = item_from_wire(self.task["startKey"], "startKey")
        return request

    def _flush(self, part: int, buf: PartBuffer) -> Part:
        segment = int(self.task["segment"])
        key = layout.part_key(segment, part)
        return upload_part(self.s3, self.settings.bucket, self.task["backupDir"], key, segment, buf)
