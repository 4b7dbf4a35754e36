"""Ctrl-C for the work this process does: every worker stops within a second or two.

:func:`taking_sigint` makes the first SIGINT set :data:`STOP` (which the workers
check between pages and batches, and in their backoff sleeps) and raise
``KeyboardInterrupt`` in the main thread; later ones are ignored while the
run stops, so no traceback comes out of a thread being shut down. The main
thread waits for the workers with :func:`run_all`, which gives the started
ones :data:`GRACE` seconds to notice and never starts the others; the
command then raises :class:`Interrupted` saying what it left behind.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

#: Set by the first Ctrl-C: the workers stop at their next page, batch or sleep.
STOP = threading.Event()
#: Seconds the main thread waits for the started workers to stop, after Ctrl-C.
GRACE = 2.0
#: Name prefixes of the worker threads: this module's, and ``write_items``'s (``threads_left`` looks for them).
WORKERS = ("ddb-backup-worker", "write-")

T = TypeVar("T")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; the message says what was left behind and what to do next."""


class Stopped(Exception):
    """Raised in a worker that finds :data:`STOP` set."""


@contextmanager
def taking_sigint() -> Iterator[None]:
    """Clear :data:`STOP` and take SIGINT (main thread only): the first stops the run, later ones are ignored.

    The previous handler is put back at the end, unless the run was stopped: a Ctrl-C while the
    process ends is then ignored too (no traceback from the interpreter's shutdown).
    """
    STOP.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _first)
    try:
        yield
    finally:
        if not STOP.is_set():
            signal.signal(signal.SIGINT, previous)


def _first(signum: int, frame: FrameType | None) -> None:
    """The first Ctrl-C stops the run; later ones are ignored while it stops (within :data:`GRACE` seconds).

    Ignored by SIG_IGN, not by a Python handler: the interpreter puts SIGINT back to its default
    (kill, exit -2) for a Python handler when it shuts down, so a third Ctrl-C then would kill the process."""
    STOP.set()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def check() -> None:
    """Raise :class:`Stopped` once Ctrl-C was pressed (in a worker, between pages or batches)."""
    if STOP.is_set():
        raise Stopped("stopped by Ctrl-C")


def sleep(seconds: float) -> None:
    """``time.sleep`` that Ctrl-C cuts short (:class:`Stopped`): for backoff delays in workers."""
    if STOP.wait(seconds):
        raise Stopped("stopped by Ctrl-C")


def time_left(budget: float) -> Callable[[], float]:
    """A ``time_left`` that says ``budget`` seconds until Ctrl-C, then 0 (the work stops at its next page)."""
    return lambda: 0.0 if STOP.is_set() else budget


def run_all(fn: Callable[[T], Any], tasks: Iterable[T], workers: int) -> None:
    """``fn(task)`` for every task, ``workers`` at a time, in threads; the first error (or Ctrl-C) is raised.

    On an error the tasks not started never start, and the error propagates
    once the started ones end; on Ctrl-C those get :data:`GRACE` seconds.
    """
    work = list(tasks)
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(work) or 1)), thread_name_prefix=WORKERS[0])
    futures = [pool.submit(fn, task) for task in work]
    try:
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        STOP.set()
        pool.shutdown(wait=False, cancel_futures=True)
        settle([f for f in futures if not f.cancelled()])  # ``wait`` takes a cancelled one for pending
        raise
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def settle(futures: list[Future[Any]], grace: float = GRACE) -> None:
    """Wait up to ``grace`` seconds for ``futures`` (a Ctrl-C meanwhile does not cut it short)."""
    deadline = time.monotonic() + grace
    while True:
        try:
            wait(futures, timeout=max(0.0, deadline - time.monotonic()))
            return
        except KeyboardInterrupt:
            continue


def threads_left() -> int:
    """Worker threads still running (past :data:`GRACE`: in a slow request, or one that does not answer)."""
    return sum(1 for t in threading.enumerate() if t.name.startswith(WORKERS) and t.is_alive())
