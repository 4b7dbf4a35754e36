"""What a backup and a restore of a table cost, in capacity units, time and dollars, before running them.

Everything here is arithmetic on a table's item count and size (DescribeTable's
``ItemCount`` and ``TableSizeBytes``, a sample's, or given for a table that does
not exist), what it serves now (:func:`capacity_of`) and the one dated price table below. The assumptions are named constants, so
the README can quote them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ddb_backup.backup.plan import GiB, choose_segments

MiB = 1024 * 1024


@dataclass(frozen=True)
class Prices:
    """List prices of one region on one date, in US dollars."""

    region: str
    date: str
    read_request_unit: float  # on-demand, per read request unit
    write_request_unit: float  # on-demand, per write request unit
    s3_put: float  # per PUT/COPY/POST/LIST request (S3 Standard)
    lambda_gb_second: float  # arm64
    sfn_transition: float  # Standard workflows
    import_gb: float  # ImportTable, per GB of uncompressed data


#: us-east-1 list prices (AWS price pages as of 2025-06).
PRICES = Prices(
    region="us-east-1",
    date="2025-06-01",
    read_request_unit=0.125 / 1e6,
    write_request_unit=0.625 / 1e6,
    s3_put=0.005 / 1000,
    lambda_gb_second=0.0000133334,
    sfn_transition=0.025 / 1000,
    import_gb=0.15,
)

# Assumptions (not measured on AWS here; the README quotes them).
SCAN_BYTES_PER_SECOND = 16 * MiB  # one segment's Scan on a 1,769 MB Lambda (DynamoDB size)
WRITE_BYTES_PER_SECOND = 4 * MiB  # one part's BatchWriteItem on a 1,769 MB Lambda (DynamoDB size)
NEW_ON_DEMAND_WRITE_UNITS = 4000  # what a new on-demand table absorbs a second at first
NEW_ON_DEMAND_READ_UNITS = 12_000  # and reads (DescribeTable's WarmThroughput of a new on-demand table)
RAMP_SECONDS = 1800  # on-demand doubles the rate it absorbs every 30 minutes at most
TABLE_QUOTA_UNITS = 40_000  # default per-table quota of read (and of write) units a second
SCAN_LAMBDA_GB = 1769 / 1024
PART_BYTES = 64 * MiB
INVOCATION_SECONDS = 600  # one scan or restore invocation's time budget
PAGE_BYTES = MiB  # a Scan page holds at most 1 MB


@dataclass(frozen=True)
class Capacity:
    """What a table serves now, units a second; ``ramps``: on-demand, which doubles that every 30 min at most."""

    read: float = NEW_ON_DEMAND_READ_UNITS
    write: float = NEW_ON_DEMAND_WRITE_UNITS
    ramps: bool = True
    source: str = "a new on-demand table (12,000 reads and 4,000 writes a second, doubling every 30 min at most)"


def capacity_of(table: Mapping[str, Any]) -> Capacity:
    """The capacity of a DescribeTable ``Table``: its provisioned units, or its on-demand WarmThroughput.

    A description without WarmThroughput (an emulator, an older API) is taken as a new on-demand table, and the
    source says so. An on-demand maximum (OnDemandThroughput) caps both.
    """
    mode = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    if mode != "PAY_PER_REQUEST":
        units = table.get("ProvisionedThroughput") or {}
        read, write = float(units.get("ReadCapacityUnits") or 0), float(units.get("WriteCapacityUnits") or 0)
        if read > 0 and write > 0:
            return Capacity(read, write, False, f"provisioned: {read:,.0f} reads and {write:,.0f} writes a second")
    warm = table.get("WarmThroughput") or {}
    read, write = float(warm.get("ReadUnitsPerSecond") or 0), float(warm.get("WriteUnitsPerSecond") or 0)
    if read > 0 and write > 0:
        found = Capacity(read, write, True, f"WarmThroughput: {read:,.0f} reads and {write:,.0f} writes a second now")
    else:
        found = Capacity(source="no WarmThroughput in DescribeTable: taken as " + Capacity().source)
    most = table.get("OnDemandThroughput") or {}
    top_read, top_write = float(most.get("MaxReadRequestUnits") or 0), float(most.get("MaxWriteRequestUnits") or 0)
    if top_read > 0 or top_write > 0:
        read = min(found.read, top_read) if top_read > 0 else found.read
        write = min(found.write, top_write) if top_write > 0 else found.write
        found = Capacity(read, write, found.ramps, f"{found.source}; on-demand maximum set")
    return found


@dataclass(frozen=True)
class Plan:
    """How the run would go: segments, the table-wide rates (None: no limit), the Map's concurrency, and what the
    table serves now (``capacity``) and where its item count and size came from (``figures``)."""

    segments: int | None = None
    concurrency: int = 100
    read_rate: float | None = None
    write_rate: float | None = None
    consistent: bool = False
    capacity: Capacity = Capacity()
    figures: str = "given"


def scan_read_units(size_bytes: int, *, consistent: bool = False) -> float:
    """Read units a full Scan consumes: 4 KiB a unit rounded up per page, half for eventually consistent reads."""
    pages = max(1, math.ceil(size_bytes / PAGE_BYTES))
    units = size_bytes / 4096 + pages / 2  # each page's last unit is half used on average
    return units * (1.0 if consistent else 0.5)


def write_units(items: int, size_bytes: int) -> float:
    """Write units a restore by BatchWriteItem consumes: 1 KiB a unit rounded up, per item."""
    if items <= 0:
        return 0.0
    return items * math.ceil(max(1.0, size_bytes / items) / 1024)


def estimate(
    items: int,
    size_bytes: int,
    plan: Plan = Plan(),
    *,
    table: str | None = None,
    prices: Prices = PRICES,
    import_bytes: int | None = None,
) -> dict[str, Any]:
    """The estimate of one table: its backup, and its restore by BatchWriteItem and by ImportTable.

    ``import_bytes``: the backup's bytes before gzip, which ImportTable bills (a manifest records them);
    without it the table's size stands in (DynamoDB JSON on disk is larger than the table's own figure).
    """
    segments = plan.segments or choose_segments(size_bytes, GiB // 2, 1000)
    running = max(1, min(segments, plan.concurrency))
    return {
        "table": table,
        "items": items,
        "bytes": size_bytes,
        "prices": asdict(prices),
        "figures": plan.figures,
        "capacity": asdict(plan.capacity),
        "backup": _backup(items, size_bytes, segments, running, plan, prices),
        "restore": {
            "write": _restore_by_writes(items, size_bytes, running, plan, prices),
            "import": _restore_by_import(size_bytes if import_bytes is None else import_bytes, prices),
        },
    }


def _backup(items: int, size: int, segments: int, running: int, plan: Plan, prices: Prices) -> dict[str, Any]:
    units = scan_read_units(size, consistent=plan.consistent)
    busy = size / SCAN_BYTES_PER_SECOND  # Lambda seconds scanning, all segments together
    seconds = max(busy / running, _read_seconds(units, plan))
    lambda_seconds = max(busy, seconds * running) + 2 * 5.0  # waiting for the rate is billed too
    invocations = segments + math.ceil(lambda_seconds / INVOCATION_SECONDS)
    puts = math.ceil(size / PART_BYTES) + invocations + 4  # parts, checkpoints, plan/work list/manifest
    transitions = 3 * invocations + 10
    gb_seconds = lambda_seconds * SCAN_LAMBDA_GB
    cost = {
        "reads": units * prices.read_request_unit,
        "lambda": gb_seconds * prices.lambda_gb_second,
        "s3Puts": puts * prices.s3_put,
        "stepFunctions": transitions * prices.sfn_transition,
    }
    return {
        "segments": segments,
        "readUnits": round(units, 1),
        "readRate": plan.read_rate,
        "seconds": round(seconds, 1),
        "lambdaGbSeconds": round(gb_seconds, 1),
        "s3Puts": puts,
        "transitions": transitions,
        "cost": _dollars(cost),
    }


def _restore_by_writes(items: int, size: int, running: int, plan: Plan, prices: Prices) -> dict[str, Any]:
    units = write_units(items, size)
    parts = max(1, math.ceil(size / PART_BYTES))
    workers = min(parts, running)
    cap = min(TABLE_QUOTA_UNITS, workers * WRITE_BYTES_PER_SECOND / 1024)
    seconds = units / plan.write_rate if plan.write_rate else _ramped_seconds(units, cap)
    rate = units / seconds if seconds else cap
    lambda_seconds = max(size / WRITE_BYTES_PER_SECOND, seconds * workers)
    invocations = parts + math.ceil(lambda_seconds / INVOCATION_SECONDS)
    gb_seconds = lambda_seconds * SCAN_LAMBDA_GB
    cost = {
        "writes": units * prices.write_request_unit,
        "lambda": gb_seconds * prices.lambda_gb_second,
        "s3Puts": (parts + 4) * prices.s3_put,
        "stepFunctions": (3 * invocations + 10) * prices.sfn_transition,
    }
    return {"writeUnits": units, "writeRate": round(rate, 1), "seconds": round(seconds, 1), "cost": _dollars(cost)}


def _read_seconds(units: float, plan: Plan) -> float:
    """Seconds a scan of ``units`` takes at what the table serves: provisioned units flat; on-demand from its
    WarmThroughput, doubling every 30 min up to the table quota; never faster than ``plan.read_rate``."""
    cap = plan.capacity
    if not cap.ramps:
        return units / min(plan.read_rate or cap.read, cap.read)
    top = min(plan.read_rate or TABLE_QUOTA_UNITS, max(TABLE_QUOTA_UNITS, cap.read))
    return _ramped_seconds(units, top, start=cap.read)


def _ramped_seconds(units: float, cap: float, start: float = NEW_ON_DEMAND_WRITE_UNITS) -> float:
    """Seconds to move ``units`` through an on-demand table: ``start`` a second (4,000 writes for a new one),
    doubling every 30 min, up to ``cap``."""
    seconds, rate = 0.0, min(cap, start)
    while units > rate * RAMP_SECONDS and rate < cap:
        units -= rate * RAMP_SECONDS
        seconds += RAMP_SECONDS
        rate = min(cap, rate * 2)
    return seconds + units / rate


def _restore_by_import(size: int, prices: Prices) -> dict[str, Any]:
    return {
        "gb": round(size / 1e9, 3),
        "seconds": None,  # AWS publishes no figure for how long ImportTable takes
        "cost": _dollars({"import": size / 1e9 * prices.import_gb}),
    }


def _dollars(parts: dict[str, float]) -> dict[str, float]:
    return {**{k: round(v, 4) for k, v in parts.items()}, "total": round(sum(parts.values()), 4)}


def _many(count: int, noun: str) -> str:
    """``1 segment``, ``2 segments``, ``1,000 items``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def describe_estimate(doc: dict[str, Any]) -> list[str]:
    """The estimate as lines for a person."""
    b, w, i = doc["backup"], doc["restore"]["write"], doc["restore"]["import"]
    p = doc["prices"]
    rate = f"{b['readRate']:,.0f} units/s" if b["readRate"] else "no rate limit"
    return [
        f"{doc['table'] or '(a table)'}: {_many(doc['items'], 'item')}, {_size(doc['bytes'])} ({doc['figures']})",
        f"  backup: {b['readUnits']:,.0f} read units, {_many(b['segments'], 'segment')}, {rate}: "
        f"{_duration(b['seconds'])}, ${b['cost']['total']:,.2f} (reads ${b['cost']['reads']:,.2f}, "
        f"Lambda ${b['cost']['lambda']:,.2f} for {b['lambdaGbSeconds']:,.0f} GB-s, "
        f"S3 PUTs ${b['cost']['s3Puts']:,.2f}, Step Functions ${b['cost']['stepFunctions']:,.2f})",
        f"  restore by writes: {w['writeUnits']:,.0f} write units at {w['writeRate']:,.0f} units/s on average: "
        f"{_duration(w['seconds'])}, ${w['cost']['total']:,.2f} (writes ${w['cost']['writes']:,.2f}, "
        f"Lambda ${w['cost']['lambda']:,.2f})",
        f"  restore by ImportTable: {i['gb']:,.1f} GB: ${i['cost']['total']:,.2f} (time: AWS gives no figure)",
        f"  capacity: {doc['capacity']['source']}",
        f"  prices: {p['region']}, list prices of {p['date']}",
    ]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{n:,.0f} B"
        n /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"
