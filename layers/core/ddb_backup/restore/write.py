"""Write items into a table: 25-item BatchWriteItem requests, several in flight, never dropping one.

Unlike boto3's ``batch_writer`` (which resends UnprocessedItems at once) and
dynamodump (which gives up and "continues"), every request left unprocessed or
throttled is resent after a jittered exponential backoff, up to a bound; items
still not written then go to a dead-letter object, and the restore fails
naming it. Items are written exactly as read: no attribute added or changed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ddb_backup.aws import retry
from ddb_backup.aws.ratelimit import RateLimiter, consumed_units
from ddb_backup.aws.s3io import put_json
from ddb_backup.errors import IntegrityError, RestoreIncomplete
from ddb_backup.format.keys import EXAMPLES, KeyOf, KeysSeen
from ddb_backup.format.lines import PartRef
from ddb_backup.restore import fastwrite
from ddb_backup.restore.deadletters import dead_letter_home, dead_letter_writer

if TYPE_CHECKING:
    from ddb_backup.events import RestorePartTask
    from ddb_backup.format.ddbjson import Item

BATCH = 25
#: Items read (not written) after a key came again, to name a few more such keys.
LOOK_AHEAD = 10_000


class DeadLettered(RestoreIncomplete):
    """Items could not be written; ``location`` is where they were saved, ``counts`` what was done."""

    def __init__(self, message: str, location: str, counts: dict[str, Any]) -> None:
        super().__init__(message)
        self.location = location
        self.counts = counts


@dataclass
class _BatchResult:
    written: int = 0
    failed: list[tuple[Item, str]] = field(default_factory=list)
    requests: int = 0
    unprocessed_retries: int = 0
    throttle_retries: int = 0


class _Writer:
    def __init__(
        self,
        ddb: Any,
        table: str,
        attempts: int,
        sleep: Callable[[float], None],
        base_delay: float,
        limiter: RateLimiter | None,
        delete: bool,
    ) -> None:
        self.ddb = ddb
        self.request = ("DeleteRequest", "Key") if delete else ("PutRequest", "Item")
        self.what = f"{'deleted from' if delete else 'written to'} table {table}"  # for a dead letter's message
        self.table = table
        self.attempts = max(1, attempts)
        self.sleep = sleep
        self.base_delay = base_delay
        self.limiter = limiter

    def _batch_write(self, pending: list[dict[str, Any]]) -> dict[str, Any]:
        """One BatchWriteItem; with a limiter, within its rate and charged what it consumed.

        Every item written costs at least one unit, so that is charged when
        the response reports less (or nothing).
        """
        if self.limiter is None:
            out: dict[str, Any] = self.ddb.batch_write_item(RequestItems={self.table: pending})
            return out
        estimate = float(len(pending))
        self.limiter.acquire(estimate)
        try:
            out = self.ddb.batch_write_item(RequestItems={self.table: pending}, ReturnConsumedCapacity="TOTAL")
        except ClientError as exc:
            self.limiter.charge(0.0, estimate)
            if retry.is_throttle(exc):
                self.limiter.throttled()
            raise
        unprocessed = len(out.get("UnprocessedItems", {}).get(self.table, []))
        written = len(pending) - unprocessed
        self.limiter.charge(max(consumed_units(out) or 0.0, float(written)), estimate)
        if unprocessed or (out.get("ResponseMetadata") or {}).get("RetryAttempts"):
            self.limiter.throttled()  # UnprocessedItems, or botocore retried throttling before this answer
        return out

    def send(self, items: list[Item]) -> _BatchResult:
        result = _BatchResult()
        kind, field_name = self.request
        self._send([{kind: {field_name: i}} for i in items], result)
        return result

    def _send(self, pending: list[dict[str, Any]], result: _BatchResult) -> None:
        """Send until every request is written, or ``attempts`` tries in a row wrote none of them.

        A try that writes some of the requests resets the count, so a table
        that keeps making headway is never given up on; the delay still grows
        with every try (full jitter, capped).
        """
        reason = ""
        stalled = 0  # tries in a row that wrote nothing
        tries = 0
        while pending:
            if tries:
                self.sleep(retry.backoff_delay(tries - 1, self.base_delay))
            tries += 1
            try:
                out = self._batch_write(pending)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                if retry.is_throttle(exc):
                    result.throttle_retries += 1
                    stalled += 1
                    reason = f"{error.get('Code')} on {stalled} tries in a row"
                    if stalled >= self.attempts:
                        break
                    continue
                if error.get("Code") == "ValidationException":
                    self._isolate(pending, f"ValidationException: {error.get('Message')}", result)
                    return
                raise
            result.requests += 1
            unprocessed = out.get("UnprocessedItems", {}).get(self.table, [])
            written = len(pending) - len(unprocessed)
            result.written += written
            pending = unprocessed
            if not pending:
                return
            result.unprocessed_retries += 1
            stalled = 0 if written else stalled + 1
            reason = f"still unprocessed after {stalled} tries in a row that wrote nothing"
            if stalled >= self.attempts:
                break
        result.failed.extend((self._item(r), reason) for r in pending)

    def _item(self, request: dict[str, Any]) -> Item:
        """The item (or, for a delete, the key) a request carries."""
        kind, field_name = self.request
        item: Item = request[kind][field_name]
        return item

    def _isolate(self, pending: list[dict[str, Any]], reason: str, result: _BatchResult) -> None:
        """A batch DynamoDB rejects as invalid: halve it until the bad items stand alone."""
        if len(pending) == 1:
            result.failed.append((self._item(pending[0]), reason))
            return
        half = len(pending) // 2
        self._send(pending[:half], result)
        self._send(pending[half:], result)


def write_items(
    ddb: Any,
    table: str,
    items: Iterable[Item],
    *,
    dead_letter: Callable[[list[Item]], str],
    concurrency: int = 4,
    attempts: int = 12,
    key_names: list[str] | None = None,
    time_left: Callable[[], float] | None = None,
    max_failures: int = 1000,
    progress: Callable[[int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    base_delay: float = 0.05,
    write_rate: float = 0.0,
    delete: bool = False,
) -> dict[str, Any]:
    """Write client-form ``items`` into ``table``; return the counts.

    ``write_rate``: write units a second, all threads together (0: no limit). ``delete``: ``items``
    are keys to delete, handled exactly as puts are (``written`` counts the keys deleted).

    * 25 items a request, up to ``concurrency`` requests in flight (threads);
    * an item with the key of an earlier one (the table would keep one of
      them) stops the writes: ``IntegrityError`` names a few such keys and
      what to do (:mod:`ddb_backup.format.keys`; ``duplicateKeys`` stays 0);
    * UnprocessedItems and throttling are retried with jittered exponential
      backoff (capped at 20 s) until ``attempts`` tries in a row write none of
      a request's items; a request DynamoDB rejects as invalid is halved until
      the bad items stand alone;
    * items still not written are passed to ``dead_letter(items) -> location`` and ``DeadLettered``
      (a ``RestoreIncomplete``) names it; after ``max_failures`` of them the rest is not attempted.
    * ``time_left() <= 0`` stops taking new items (``done`` False, ``items`` taken, all written).

    Returns ``{"items", "written", "requests", "unprocessedRetries", "throttleRetries", "duplicateKeys", "done"}``.
    Other errors (a missing table, access denied) propagate once the requests in flight are finished.
    """
    if key_names is None:
        key_names = [
            k["AttributeName"]
            for k in retry.call_with_backoff(ddb.describe_table, TableName=table)["Table"]["KeySchema"]
        ]
    limiter = RateLimiter(write_rate) if write_rate > 0 else None
    writer = _Writer(ddb, table, attempts, sleep, base_delay, limiter, delete)
    concurrency = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"write-{table}") as pool:
        flight = _InFlight(pool, writer, concurrency, progress)
        try:
            seen = KeysSeen(key_names)
            done, aborted = _feed(flight, items, (KeyOf(table, key_names), seen), time_left, max_failures)
            flight.drain()
        finally:
            flight.settle()  # on an error, the requests in flight finish before it propagates
    counts = flight.counts(done)
    if seen.again:
        raise _duplicates(table, seen, counts["written"], flight.failed, dead_letter)
    if flight.failed:
        _dead_letter(writer.what, flight, counts, dead_letter, aborted)
    return counts


class _InFlight:
    """The requests in flight and the running counts of those finished."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        writer: _Writer,
        concurrency: int,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.pool = pool
        self.writer = writer
        self.concurrency = concurrency
        self.progress = progress
        self.futures: set[Future[_BatchResult]] = set()
        self.stats: Counter[str] = Counter()
        self.failed: list[tuple[Item, str]] = []

    def submit(self, batch: list[Item]) -> None:
        """Send ``batch`` once a slot is free (its keys are in no other request: ``_feed`` stops at a key met again)."""
        while len(self.futures) >= self.concurrency:
            self._collect_some()
        self.futures.add(self.pool.submit(self.writer.send, batch))

    def drain(self) -> None:
        """Wait for every request in flight, counting each."""
        while self.futures:
            self._collect_some()

    def settle(self) -> None:
        """Wait for every request in flight (an error is on its way out), counting those that succeeded."""
        if self.futures:
            wait(list(self.futures))
        for future in list(self.futures):
            self.futures.discard(future)
            if future.exception() is None:
                self._count(future.result())

    def _collect_some(self) -> None:
        finished, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
        for future in finished:
            self.futures.discard(future)
            self._count(future.result())

    def _count(self, r: _BatchResult) -> None:
        """Add one finished request's counts (and tell ``progress`` what it wrote)."""
        self.stats["written"] += r.written
        self.stats["requests"] += r.requests
        self.stats["unprocessedRetries"] += r.unprocessed_retries
        self.stats["throttleRetries"] += r.throttle_retries
        self.failed.extend(r.failed)
        if self.progress and r.written:
            self.progress(r.written)

    def counts(self, done: bool) -> dict[str, Any]:
        """What ``write_items`` returns."""
        names = ("items", "written", "requests", "unprocessedRetries", "throttleRetries", "duplicateKeys")
        return {**{name: self.stats[name] for name in names}, "done": done}


def _feed(
    flight: _InFlight,
    items: Iterable[Item],
    keys_of: tuple[Callable[[Item], tuple[Any, ...]], KeysSeen],
    time_left: Callable[[], float] | None,
    max_failures: int,
) -> tuple[bool, bool]:
    """Batch ``items`` into ``flight`` until a key comes again; return (all taken, stopped for too many failures)."""
    key_of, seen = keys_of
    batch: list[Item] = []
    items = iter(items)
    for item in items:
        key = key_of(item)
        if not seen.add(key, item):
            _more_duplicates(items, key_of, seen)
            return False, False
        batch.append(item)
        flight.stats["items"] += 1
        if len(batch) == BATCH:
            flight.submit(batch)
            batch = []
            if len(flight.failed) >= max_failures:
                return False, True
            if time_left is not None and time_left() <= 0:
                return False, False
    if batch:
        flight.submit(batch)
    return True, False


def _more_duplicates(items: Iterator[Item], key_of: Callable[[Item], tuple[Any, ...]], seen: KeysSeen) -> None:
    """After a key came again: read (not write) up to ``LOOK_AHEAD`` more items, for a few more keys to name."""
    for item in islice(items, LOOK_AHEAD):
        seen.add(key_of(item), item)
        if len(seen.examples) >= EXAMPLES:
            return


def _duplicates(
    table: str, seen: KeysSeen, written: int, failed: list[tuple[Item, str]], dead_letter: Callable[[list[Item]], str]
) -> IntegrityError:
    """The error for items sharing a key: the keys, the items written (any not written saved), and the next step."""
    names = ", ".join(seen.key_names)
    unsaved = (
        f"; {len(failed)} items that could not be written are saved in {dead_letter([i for i, _ in failed])}"
        if failed
        else ""
    )
    return IntegrityError(
        f"table {table}: {seen.again} item(s) read have the key ({names}) of an earlier item, first "
        f"{'; '.join(seen.examples)}: the table would keep one item for each such key, so the restore stopped "
        f"after writing {written} items{unsaved}. The backup's items are not unique on "
        f"({names}): restore into a new table keyed as the source table was (every key attribute, HASH then "
        "RANGE: --keys HASH,RANGE), or into a table with that key"
    )


def _dead_letter(
    what: str,
    flight: _InFlight,
    counts: dict[str, Any],
    dead_letter: Callable[[list[Item]], str],
    aborted: bool,
) -> None:
    """Save the items not written, add where to ``counts``, and raise ``DeadLettered``."""
    failed = flight.failed
    location = dead_letter([item for item, _ in failed])
    counts["deadLettered"] = len(failed)
    counts["deadLetter"] = location
    reasons = "; ".join(f"{n} {why}" for why, n in Counter(why for _, why in failed).most_common(3))
    rest = " After that many failures the rest of the input was not attempted." if aborted else ""
    raise DeadLettered(
        f"{len(failed)} of {counts['items']} items could not be {what} ({reasons}); "
        f"they are saved in {location}.{rest}",
        location,
        counts,
    )


# ------------------------------------------------------------------ one part, as the Lambda does it
def _safe(part_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in part_id)


def _stem(part_id: str) -> str:
    for ext in (".gz", ".json", ".jsonl"):
        part_id = part_id.removesuffix(ext)
    return part_id


def note_key(run_prefix: str, kind: str, table_index: int, part_id: str) -> str:
    """Where a part's ``results`` (done) or ``errors`` (failed) note lives in the run's directory."""
    return f"{run_prefix}{kind}/{table_index:04d}-{_safe(part_id)}.json"


def restore_part(
    ddb: Any,
    s3: Any,
    task: RestorePartTask,
    *,
    time_left: Callable[[], float],
    concurrency: int,
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Restore the next items of one part (the restore state machine's work item) until done or out of time.

    ``task`` (validated at the door): ``runId``, ``bucket`` and ``runPrefix`` (the run's bookkeeping),
    ``table`` (index in the run), ``target``, ``part`` (``PartRef.to_json()``),
    ``deadLetter`` (directory beside the backup; see ``dead_letter_home``), ``next`` (items already
    restored by earlier invocations), ``writeRate`` (this part's share of the table's units a second).
    ``concurrency`` and ``attempts``: the Lambda's settings (no default here, so one place says them).
    Returns the task updated (``next``, ``done``, running counts). A part is idempotent to redo: the
    same items are put again. When done, writes ``<runPrefix>results/<table>-<part>.json``;
    on failure, ``<runPrefix>errors/<table>-<part>.json`` (what finalize
    quotes), then raises.
    """
    part = PartRef.from_json(task.part)
    start, index, target = task.next, task.table, task.target
    save = dead_letter_writer(dead_letter_home(task.dead_letter, task.bucket, task.run_prefix), task.run_id, s3)
    began = time.monotonic()
    try:
        with closing(fastwrite.read_part(part, s3, start=start, ddb=ddb)) as items:
            counts = write_items(
                ddb,
                target,
                items,
                dead_letter=lambda xs: save(f"{_stem(part.id)}-from-{start}", xs),
                concurrency=concurrency,
                attempts=attempts,
                time_left=time_left,
                sleep=sleep,
                write_rate=task.write_rate,
            )
    except Exception as exc:
        note = _error_note(exc, index=index, target=target, part=part, start=start)
        put_json(s3, task.bucket, note_key(task.run_prefix, "errors", index, part.id), note)
        raise
    result = {
        **task.model_dump(by_alias=True, exclude_none=True),
        "next": start + counts["items"],
        "done": counts["done"],
        "written": task.written + counts["written"],
        "duplicateKeys": task.duplicate_keys + counts["duplicateKeys"],
        "retries": task.retries + counts["unprocessedRetries"] + counts["throttleRetries"],
        "seconds": round(float(task.seconds) + time.monotonic() - began, 3),
    }
    if result["done"]:
        put_json(s3, task.bucket, note_key(task.run_prefix, "results", index, part.id), _result_note(result, part))
    return result


def _error_note(exc: Exception, *, index: int, target: str, part: PartRef, start: int) -> dict[str, Any]:
    """What a failed part leaves for finalize to quote: where it stopped, the error, any dead letter."""
    note: dict[str, Any] = {
        "table": index,
        "target": target,
        "part": part.id,
        "url": part.url,
        "from": start,
        "error": type(exc).__name__,
        "message": str(exc),
    }
    if isinstance(exc, DeadLettered):
        note.update(deadLetter=exc.location, counts=exc.counts)
    return note


def _result_note(result: dict[str, Any], part: PartRef) -> dict[str, Any]:
    """What a finished part leaves for finalize: its counts beside what the backup promised."""
    return {
        "table": result["table"],
        "target": result["target"],
        "part": part.id,
        "items": result["next"],
        "expected": part.items,
        "written": result["written"],
        "duplicateKeys": result["duplicateKeys"],
        "retries": result["retries"],
        "seconds": result["seconds"],
    }
