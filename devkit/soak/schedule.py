"""EventBridge schedule expressions, ``rate(...)`` and ``cron(...)``: when a schedule comes due (UTC).

``cron(minutes hours day-of-month month day-of-week year)`` as EventBridge reads it: ``*``, ``?``, lists,
ranges, ``/`` increments, month and day names; day-of-week 1-7 is SUN-SAT. ``L``, ``W`` and ``#`` are refused.
A ``rate`` schedule comes due every interval from when its rule was created.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

_NAMES = {
    3: {
        m: i + 1
        for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
    },
    4: {d: i + 1 for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
}
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (1, 7), (1970, 2199)]
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def _field(text: str, index: int) -> set[int] | None:
    """The values a cron field allows; None for ``*``/``?`` (any)."""
    if text in ("*", "?"):
        return None
    if re.search(r"[LW#]", text):
        raise ValueError(f"cron field {text!r}: L, W and # are not supported here")
    low, high = _RANGES[index]
    out: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            first, last = low, high
        else:
            bounds = [_NAMES.get(index, {}).get(b.upper()) or int(b) for b in base.split("-")]
            first, last = bounds[0], (bounds[-1] if len(bounds) > 1 else (high if step else bounds[0]))
        out.update(range(first, last + 1, int(step or 1)))
    return out


def due_times(expression: str, start: dt.datetime, end: dt.datetime, *, created: dt.datetime) -> Iterator[dt.datetime]:
    """When ``expression`` comes due in [start, end): a rate counts from ``created``, a cron by the calendar."""
    if match := re.fullmatch(r"rate\((\d+) (\w+)\)", expression):
        step = dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])
        when = created + step
        while when < end:
            if when >= start:
                yield when
            when += step
        return
    match = re.fullmatch(r"cron\((.+)\)", expression)
    if not match or len(match[1].split()) != 6:
        raise ValueError(f"schedule {expression!r} is neither rate(N unit) nor cron(6 fields)")
    fields = [_field(text, i) for i, text in enumerate(match[1].split())]
    when = start.replace(second=0, microsecond=0)
    if when < start:
        when += dt.timedelta(minutes=1)
    while when < end:
        dow = when.isoweekday() % 7 + 1  # EventBridge: 1 = Sunday
        values = [when.minute, when.hour, when.day, when.month, dow, when.year]
        if all(allowed is None or value in allowed for allowed, value in zip(fields, values, strict=True)):
            yield when
        when += dt.timedelta(minutes=1)
