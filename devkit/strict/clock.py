"""A simulated wall clock for the whole process: real time moved by an offset a soak sets.

Days pass in seconds: :meth:`WallClock.set` moves the clock to a chosen instant (it goes on ticking
from there at the real pace), and every reader of the wall clock sees it: ``time.time`` and
``datetime.datetime.now``/``utcnow`` (the core's backup ids and ages, moto's ``LastModified`` and
``CreationDateTime``, Powertools' EMF timestamps, botocore's signatures). Monotonic clocks, sleeps
and timeouts are left alone, so only move the clock while nothing runs.

Modules that bound ``datetime`` by name at import (``from datetime import datetime``) before the clock
started keep the real one: moto's Step Functions times, for instance; a soak times executions itself.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from unittest import mock

_REAL_DATETIME = dt.datetime
_REAL_TIME = time.time


class _DatetimeMeta(type):
    """``isinstance(x, datetime.datetime)`` stays true for datetimes made before the patch."""

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _REAL_DATETIME)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _REAL_DATETIME)


class WallClock:
    """Real time plus an offset; :meth:`patches` make it the process's wall clock."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.offset = 0.0
        self.frozen: float | None = None
        self.active = False  # while its patches run; after, even a reference kept to it reads real time
        if start is not None:
            self.set(start)

    def time(self) -> float:
        if not self.active:
            return _REAL_TIME()
        return self.frozen if self.frozen is not None else _REAL_TIME() + self.offset

    def now(self) -> dt.datetime:
        return _REAL_DATETIME.fromtimestamp(self.time(), dt.UTC)

    def set(self, when: dt.datetime) -> None:
        """Move the clock to ``when`` (aware); it may go backwards only in a test of its own."""
        if when.tzinfo is None:
            raise ValueError(f"{when!r} has no time zone: give the simulated time in UTC")
        self.offset = when.timestamp() - _REAL_TIME()
        self.frozen = None

    def freeze(self, when: dt.datetime) -> None:
        """Stop the clock at ``when`` (until the next :meth:`set`): what happens now happens at that instant."""
        self.set(when)
        self.frozen = when.timestamp()

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def patches(self) -> list[Any]:
        clock = self

        class SimDatetime(_REAL_DATETIME, metaclass=_DatetimeMeta):
            @classmethod
            def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
                moment = _REAL_DATETIME.fromtimestamp(clock.time(), dt.UTC)
                return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)

            @classmethod
            def utcnow(cls) -> dt.datetime:  # type: ignore[override]
                return _REAL_DATETIME.fromtimestamp(clock.time(), dt.UTC).replace(tzinfo=None)

            @classmethod
            def today(cls) -> dt.datetime:  # type: ignore[override]
                return cls.now()

        return [_Active(self), mock.patch("time.time", clock.time), mock.patch("datetime.datetime", SimDatetime)]


class _Active:
    """The first of a clock's patches: the clock is the process's from its start to its stop. A module first
    imported meanwhile may keep ``SimDatetime`` or ``clock.time`` (``from datetime import datetime``): both
    read real time again once the clock stops, so a later test in the same process is not moved in time."""

    def __init__(self, clock: WallClock) -> None:
        self.clock = clock

    def start(self) -> None:
        self.clock.active = True

    def stop(self) -> None:
        self.clock.active = False
