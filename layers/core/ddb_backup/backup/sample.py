"""A table's item count and size when DescribeTable's may be stale: read a few Scan segments of many, extrapolate.

DynamoDB refreshes ``ItemCount`` and ``TableSizeBytes`` about every six hours,
so a table filled an hour ago may say 0 items and 0 bytes. :func:`may_be_stale`
says when the figures cannot be trusted (zero, or a table younger than six
hours); :func:`sample_size` then reads whole segments of a parallel Scan,
spread over the key space (segment membership is by a hash of the partition
key), until it has read at least :data:`SAMPLE_ITEMS` items from at least
:data:`MIN_SEGMENTS_READ` segments, and multiplies by the share of segments
read. A segment that holds more than :data:`BUDGET_BYTES` starts the sample
again with 64 times as many segments; a table small enough is read whole, and
its figures are then exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.format.dialects import item_size

#: DescribeTable's ItemCount and TableSizeBytes are refreshed about this often.
STALE_SECONDS = 6 * 3600
#: Items a sample reads at least (unless the table holds fewer), and segments.
SAMPLE_ITEMS = 2000
MIN_SEGMENTS_READ = 4
#: Bytes (DynamoDB size) one sample reads at most before it starts again with smaller segments.
BUDGET_BYTES = 32 * 1024 * 1024
#: Segments a sample starts with (at most 256: a local emulator such as moto puts items in 256 segments at most).
FIRST_SEGMENTS = 64
MAX_SEGMENTS = 1_000_000


def may_be_stale(table: Mapping[str, Any], now: dt.datetime | None = None) -> str | None:
    """Why ``table``'s (a DescribeTable ``Table``) ItemCount/TableSizeBytes may be wrong, or None if they hold."""
    items, size = int(table.get("ItemCount") or 0), int(table.get("TableSizeBytes") or 0)
    if not items or not size:
        return f"DescribeTable says {items:,} items and {size:,} bytes (figures AWS refreshes about every 6 hours)"
    created = table.get("CreationDateTime")
    if isinstance(created, dt.datetime):
        age = ((now or dt.datetime.now(dt.UTC)) - created.astimezone(dt.UTC)).total_seconds()
        if age < STALE_SECONDS:
            return (
                f"the table was created {age / 3600:.1f} h ago; DescribeTable's figures are refreshed about every "
                "6 hours"
            )
    return None


def spread(total: int) -> Iterator[int]:
    """Segment numbers in an order that covers the key space evenly from the start (bit-reversed for a power of 2)."""
    bits = max(1, (total - 1).bit_length())
    for n in range(1 << bits):
        segment = int(f"{n:0{bits}b}"[::-1], 2)
        if segment < total:
            yield segment


def sample_size(ddb: Any, table: str, *, segments: int = FIRST_SEGMENTS) -> dict[str, Any]:
    """The item count and size (DynamoDB's) of ``table``, from whole segments of a ``segments``-way Scan.

    Returns ``items``, ``bytes``, ``segmentsRead``, ``totalSegments``,
    ``itemsRead``, ``bytesRead`` and ``exact`` (every segment was read).
    """
    while True:
        found = _sample(ddb, table, segments)
        if found is not None or segments >= MAX_SEGMENTS:
            break
        segments = min(MAX_SEGMENTS, segments * 64)
    if found is None:  # a segment of a million-way scan over budget: what was read is the sample
        found = _sample(ddb, table, segments, budget=None)
    assert found is not None
    done, items, size = found
    factor = segments / done
    return {
        "items": round(items * factor),
        "bytes": round(size * factor),
        "segmentsRead": done,
        "totalSegments": segments,
        "itemsRead": items,
        "bytesRead": size,
        "exact": done == segments,
    }


def _sample(ddb: Any, table: str, segments: int, budget: int | None = BUDGET_BYTES) -> tuple[int, int, int] | None:
    """(segments read whole, items, bytes), or None when the sample went over ``budget`` bytes."""
    done = items = size = 0
    for segment in spread(segments):
        request: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": segments}
        while True:
            page = call_with_backoff(ddb.scan, **request)
            found = page.get("Items") or []
            items += len(found)
            size += sum(item_size(item) for item in found)
            last = page.get("LastEvaluatedKey")
            if not last:
                break
            if budget is not None and size > budget:
                return None
            request["ExclusiveStartKey"] = last
        done += 1
        if done >= MIN_SEGMENTS_READ and items >= SAMPLE_ITEMS:
            break
    return done, items, size


def sampled_note(sampled: Mapping[str, Any], why: str) -> str:
    """What a person reads about the figures a sample gave."""
    if sampled["exact"]:
        return f"counted: the whole table read ({sampled['itemsRead']:,} items), because {why}"
    return (
        f"sampled: {sampled['segmentsRead']:,} of {sampled['totalSegments']:,} scan segments read "
        f"({sampled['itemsRead']:,} items) and extrapolated, because {why}"
    )
