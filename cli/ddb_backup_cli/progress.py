"""A one-line progress display for long work: items, MB and rate, on a terminal only."""

from __future__ import annotations

import sys
import threading
import time
from typing import ClassVar, TextIO


class Progress:
    """Thread-safe counters, drawn on ``stream`` at most ten times a second when it is a terminal."""

    #: The line drawn and not yet closed (see :func:`end_line`).
    drawn: ClassVar[Progress | None] = None

    def __init__(self, label: str, *, enabled: bool | None = None, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.items = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._drawn = 0.0
        self._lock = threading.Lock()

    def add(self, items: int, nbytes: int = 0) -> None:
        with self._lock:
            self.items += items
            self.bytes += nbytes
            now = time.monotonic()
            if self.enabled and now - self._drawn >= 0.1:
                self._drawn = now
                Progress.drawn = self
                self.stream.write("\r" + self.line() + "\033[K")
                self.stream.flush()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def line(self) -> str:
        secs = max(self.seconds, 1e-9)
        return (
            f"{self.label}: {self.items:,} items, {self.bytes / 1e6:,.1f} MB, "
            f"{self.items / secs:,.0f} items/s, {secs:,.1f} s"
        )

    def close(self) -> None:
        Progress.drawn = None
        if self.enabled:
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()


def end_line() -> None:
    """End a progress line a stopped run left open, so that the next message starts a line of its own."""
    if Progress.drawn is not None:
        Progress.drawn.stream.write("\n")
        Progress.drawn.stream.flush()
        Progress.drawn = None
