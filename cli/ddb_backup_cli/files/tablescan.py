"""Every item of a table, read as a backup reads it: parallel Scan segments on the fast path, within a read rate.

``verify`` and a mirror's diff read the whole table; one sequential Scan parsed
by botocore made them five times slower than the backup of the same table,
and nothing held them to a rate. Here the segments run in threads (the
backup's :class:`~ddb_backup.backup.scan.FastPages`: raw pages, no botocore
parsing, one shared :class:`~ddb_backup.aws.ratelimit.RateLimiter`) and hand
their pages to the reader through a small queue, so memory holds at most
``2 x workers`` pages besides the ones being read.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.ratelimit import NO_LIMIT, Limit, RateLimiter, table_rate
from ddb_backup.backup import fastscan
from ddb_backup.backup.scan import FastPages
from ddb_backup_cli.files import cancel

if TYPE_CHECKING:
    from ddb_backup.format.ddbjson import Item

#: Segments at least, whatever the table's size (its TableSizeBytes may be hours old, or 0 for a new table).
MIN_SEGMENTS = 8
#: Seconds a segment's thread waits for room in the queue before it looks again whether the reader went away.
_POLL = 0.2


def segments_for(description: dict[str, Any], workers: int) -> int:
    """Segments to read a table with: one per 64 MiB (DescribeTable's size), at least ``workers`` and 8."""
    size = int(description.get("Table", description).get("TableSizeBytes") or 0)
    return max(MIN_SEGMENTS, workers, min(4096, -(-size // (64 * 1024 * 1024))))


def read_limiter(description: dict[str, Any], limit: Limit) -> RateLimiter | None:
    """The token bucket all segments share for ``limit`` (--read-rate / --read-percent of the table), or None."""
    if limit == NO_LIMIT:
        return None
    rate = table_rate(description, "read", rate=limit.rate, percent=limit.percent)
    return RateLimiter(rate) if rate else None


def table_items(  # noqa: C901 (segment workers, a bounded queue and its consumer: one scan, read as one)
    ddb: Any, table: str, *, segments: int, workers: int = 8, limiter: RateLimiter | None = None
) -> Iterator[Item]:
    """Every item of ``table`` in wire form (binary as base64 text), in no particular order.

    ``segments`` Scan segments, ``workers`` at a time, each page charged to
    ``limiter``. An error in a segment is raised here; leaving the loop early
    (an error of the reader, Ctrl-C) stops the segments at their next page.
    """
    pages: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=2 * max(1, workers))
    gone = threading.Event()

    def put(data: bytes | BaseException | None) -> None:
        while not gone.is_set():
            try:
                pages.put(data, timeout=_POLL)
                return
            except queue.Full:
                continue
        raise cancel.Stopped("the reader went away")

    def segment(number: int) -> None:
        request: dict[str, Any] = {"TableName": table, "Segment": number, "TotalSegments": segments}
        scan = FastPages(ddb, request, limiter)
        while True:
            cancel.check()
            if gone.is_set():
                raise cancel.Stopped("the reader went away")
            page = scan.next_page()
            if page.items:
                put(page.data)
            if page.last_key is None:
                return
            fastscan.next_request(request, page.last_key)

    def produce() -> None:
        try:
            cancel.run_all(segment, range(segments), workers)
        except BaseException as exc:  # handed to the reader, which raises it
            if not gone.is_set():
                put(exc)
            return
        put(None)

    producer = threading.Thread(target=produce, name=f"{cancel.WORKERS[0]}-scan", daemon=True)
    producer.start()
    try:
        while True:
            data = pages.get()
            if data is None:
                return
            if isinstance(data, BaseException):
                raise data
            for line in data.splitlines():
                yield json.loads(line)["Item"]
    finally:
        gone.set()
        producer.join(cancel.GRACE)


class Behind:
    """``take(item)`` for every item of ``items``, in a thread of its own: a table's scan (waiting on DynamoDB)
    overlaps the reading of the backup; :meth:`wait` shows its count on a progress and raises its error.

    Leaving the ``with`` block early (an error, Ctrl-C) stops it at its next item, which closes the scan.
    """

    def __init__(self, items: Iterable[Item], take: Callable[[Item], None]) -> None:
        self.items, self.take = items, take
        self.count = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"{cancel.WORKERS[0]}-behind", daemon=True)

    def _run(self) -> None:
        items = iter(self.items)
        try:
            for item in items:
                if self.stop.is_set():
                    return
                self.take(item)
                self.count += 1
        except BaseException as exc:  # raised by wait(), in the thread that waits
            self.error = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Behind:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(cancel.GRACE)

    def wait(self, progress: Any = None) -> int:
        """Wait for the last item, adding the count to ``progress`` as it grows; the items taken."""
        shown = 0
        while self.thread.is_alive():
            self.thread.join(_POLL)
            if progress is not None:
                progress.add(self.count - shown)
                shown = self.count
        if progress is not None:
            progress.add(self.count - shown)
        if self.error is not None:
            raise self.error
        return self.count
