"""Which tables a run backs up exactly (issue 14), and the stream position each notes before its scan.

``consistent``: True (asked: a table without a usable stream, or whose scan
cannot finish inside the stream's 24-hour retention, is refused), None (the
default: exact where the table has a stream of new images and the scan fits
the retention, plain with a warning otherwise), False (plain).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ddb_backup.changes.archive import RETENTION
from ddb_backup.changes.consistent import note_position, position_json
from ddb_backup.changes.stream import IMAGES, stream_of
from ddb_backup.errors import BadInput
from ddb_backup.estimate import Plan, capacity_of, estimate

#: The scan must end this long before the retention does: the finalize still has to read the stream.
HEADROOM_SECONDS = 2 * 3600
#: (table, description, segments, read rate or None) -> the plan's ``stream`` entry, a ``warning``, or None.
Noter = Callable[[str, dict[str, Any], int, float | None], dict[str, Any] | None]


def has_image_stream(description: dict[str, Any]) -> bool:
    """Whether a ``describe`` result shows a stream carrying new images."""
    spec = description["Table"].get("StreamSpecification") or {}
    return bool(spec.get("StreamEnabled")) and spec.get("StreamViewType") in IMAGES


def too_slow(table: str, description: dict[str, Any], segments: int, rate: float | None, concurrency: int) -> str:
    """A message when the estimated scan outlasts the stream's retention (less headroom), else ''."""
    size = {k: int(description["Table"].get(f, 0)) for k, f in (("items", "ItemCount"), ("bytes", "TableSizeBytes"))}
    plan = Plan(segments, concurrency, rate, capacity=capacity_of(description["Table"]))  # what it serves now
    seconds = float(estimate(size["items"], size["bytes"], plan)["backup"]["seconds"])
    limit = RETENTION.total_seconds() - HEADROOM_SECONDS
    if seconds <= limit:
        return ""
    return (
        f"table {table}: its scan is estimated at {seconds / 3600:.1f} h ({segments} segments, "
        f"{'read rate ' + format(rate, 'g') if rate else 'no read limit'}), past the {limit / 3600:.0f} h an exact "
        "backup has before the stream's 24 h retention trims the changes it must read; give more segments "
        "or a higher readRate (ddb-backup estimate shows the effect), or back up with consistent: false"
    )


def noter(ddb: Any, streams: Any, consistent: bool | None, concurrency: int) -> Noter | None:
    """The plan's hook that notes each exact table's stream position (None: no table is exact)."""
    if consistent is False:
        return None

    def note(table: str, description: dict[str, Any], segments: int, rate: float | None) -> dict[str, Any] | None:
        if not has_image_stream(description):
            if consistent:
                stream_of(ddb, table)  # raises, saying how to enable one
            return None
        slow = too_slow(table, description, segments, rate, concurrency)
        if slow and consistent:
            raise BadInput(slow)
        if slow:
            return {"warning": f"{slow}; backed up without consistentAt (a plain scan)"}
        return {"stream": position_json(note_position(ddb, streams, table))}

    return note
