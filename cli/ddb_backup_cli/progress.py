"""What long work shows on stderr: a progress display (rich) and, under ``--verbose``, a log of its steps.

The display: count against a total, percent, MB, rate, elapsed, time left.

Drawn only when stderr is a terminal (and not under --quiet or --json). The
display refreshes on a timer, so the elapsed time keeps ticking while nothing
arrives (a stall does not look like a hang). A total that is an estimate (a
table's ItemCount, which DynamoDB updates about every six hours) is shown with
``~`` and dropped if the count passes it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import ClassVar, TextIO, TypeVar

from rich.console import Console
from rich.progress import Progress as RichProgress
from rich.progress import ProgressColumn, Task, TextColumn
from rich.table import Column
from rich.text import Text

#: Redraws a second (the elapsed time ticks at this rate during a stall).
REFRESH_PER_SECOND = 4

T = TypeVar("T")


class _InfoColumn(ProgressColumn):
    """``12,345/~50,000 items 25% 4.5 MB 1,234/s 0:12 ETA 0:30`` (``~``: an estimated total).

    Without a total: the count, MB, rate and elapsed time. One unwrapped cell,
    so a narrow terminal cuts the line rather than folding it.
    """

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "items")
        words = [f"{int(task.completed):,} {unit}"]
        if task.total is not None:
            about = "~" if task.fields.get("approximate") else ""
            words = [f"{int(task.completed):,}/{about}{int(task.total):,} {unit}", f"{task.percentage:.0f}%"]
        if task.fields.get("bytes"):
            words.append(f"{task.fields['bytes'] / 1e6:,.1f} MB")
        rate = task.finished_speed or task.speed
        if rate:
            words.append(f"{rate:,.0f}/s")
        words.append(_clock(task.elapsed))
        if task.total is not None and task.time_remaining is not None and not task.finished:
            words.append(f"ETA {_clock(task.time_remaining)}")
        return Text(" ".join(words), no_wrap=True, overflow="ellipsis")


def _clock(seconds: float | None) -> str:
    """``M:SS``, or ``H:MM:SS`` from an hour on."""
    whole = int(seconds or 0)
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class Progress:
    """Thread-safe counters (``items``, ``bytes``), drawn on ``stream`` (default stderr) when it is a terminal.

    ``total``: the items expected, or None; ``approximate``: the total is an
    estimate; ``clock``: the seconds the elapsed time and rate are read from. :meth:`close` stops the display and clears its line; it is safe to
    call more than once and from any thread (the object is also a context manager).
    """

    #: The display started and not yet closed (see :func:`end_line`).
    drawn: ClassVar[Progress | None] = None

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        approximate: bool = False,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.clock = clock
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.items = 0
        self.bytes = 0
        self.total: int | None = None
        self.approximate = False
        self.unit = "items"
        self.started = clock()
        self._lock = threading.Lock()
        self._bar: RichProgress | None = None
        if self.enabled:
            self._bar = _rich(self.stream, clock)
            self._task = self._bar.add_task(label, total=None, bytes=0, unit=self.unit, approximate=False)
        self.set_total(total, approximate=approximate)
        if self._bar is not None:
            self._bar.start()
            Progress.drawn = self

    def set_total(self, total: int | None, *, approximate: bool = False) -> None:
        """Count against ``total`` from now on (None: no total); a zero estimate is no total."""
        with self._lock:
            self.total = None if total is None or (approximate and total <= 0) else total
            self.approximate = approximate
            self._draw()

    def stage(self, label: str, *, total: int | None = None, approximate: bool = False, unit: str = "items") -> None:
        """Start a new stage of the work: counts back to zero, a new label, total and unit."""
        with self._lock:
            self.label, self.unit, self.items, self.bytes = label, unit, 0, 0
            if self._bar is not None:
                self._bar.reset(self._task, description=label)
        self.set_total(total, approximate=approximate)

    def add(self, items: int, nbytes: int = 0) -> None:
        """Count ``items`` more and ``nbytes`` more bytes."""
        with self._lock:
            self.items += items
            self.bytes += nbytes
            if self.approximate and self.total is not None and self.items > self.total:
                self.total = None  # the estimate was short: say nothing rather than more than 100%
            self._draw()

    def add_bytes(self, nbytes: int) -> None:
        """Count ``nbytes`` more bytes (items are counted elsewhere)."""
        self.add(0, nbytes)

    def _draw(self) -> None:
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.items,
                total=self.total,
                bytes=self.bytes,
                unit=self.unit,
                approximate=self.approximate,
                description=self.label,
            )

    @property
    def seconds(self) -> float:
        return self.clock() - self.started

    def line(self) -> str:
        """The state in words (for logs and tests): label, count/total, percent, MB, rate, elapsed."""
        secs = max(self.seconds, 1e-9)
        of = "" if self.total is None else f"/{'~' if self.approximate else ''}{self.total:,}"
        pct = "" if not self.total else f" ({100 * self.items / self.total:.0f}%)"
        return (
            f"{self.label}: {self.items:,}{of} {self.unit}{pct}, {self.bytes / 1e6:,.1f} MB, "
            f"{self.items / secs:,.0f} {self.unit}/s, {secs:,.1f} s"
        )

    def close(self) -> None:
        """Stop the display and clear its line (idempotent)."""
        with self._lock:
            bar, self._bar = self._bar, None
        if Progress.drawn is self:
            Progress.drawn = None
        if bar is not None:
            bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def counted(
    items: Iterable[T],
    progress: Progress | None,
    *,
    size: Callable[[T], int] | None = None,
    count_items: bool = True,
    every: int = 100,
) -> Iterator[T]:
    """``items`` as they are, counted on ``progress`` every ``every`` items (and at the end).

    ``size``: an item's bytes, added to the byte count; ``count_items=False``
    counts bytes only (the items are counted elsewhere, e.g. as they are written).
    """
    if progress is None:
        yield from items
        return
    n = nbytes = 0
    try:
        for item in items:
            n += 1
            if size is not None:
                nbytes += size(item)
            if n >= every:
                progress.add(n if count_items else 0, nbytes)
                n = nbytes = 0
            yield item
    finally:
        progress.add(n if count_items else 0, nbytes)


def _rich(stream: TextIO, clock: Callable[[], float]) -> RichProgress:
    """A transient rich display on ``stream`` (redrawn on a timer; stdout is left alone); times read ``clock``."""
    return RichProgress(
        TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=40)),
        _InfoColumn(),
        console=Console(file=stream, force_terminal=True),
        refresh_per_second=REFRESH_PER_SECOND,
        get_time=clock,
        transient=True,
        redirect_stdout=False,
    )


def end_line() -> None:
    """Close a progress display a stopped run left open, so that the next message starts a line of its own."""
    drawn = Progress.drawn
    if drawn is not None:
        drawn.close()


# ------------------------------------------------------------------ --verbose
#: The logger every CLI module logs its steps under (``logging.getLogger(__name__)`` inside ``ddb_backup_cli``).
ROOT = "ddb_backup_cli"


class _StderrHandler(logging.Handler):
    """Writes to ``sys.stderr`` as it is at each record, so lines go above a progress display, not through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def verbose(on: bool) -> None:
    """With ``on``, log the CLI's steps at INFO to stderr (``ddb-backup: HH:MM:SS message``); else warnings only."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(logging.INFO if on else logging.WARNING)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("ddb-backup: %(asctime)s %(message)s", datefmt="%H:%M:%S"))
        logger.addHandler(handler)
    logger.propagate = False
