"""What finding and writing some items costs (issue 28 point 3), stated before the run.

Backups are laid out by scan segment, not by key: finding a few items reads every part of the backup from S3
(one GET a part, every byte). That is the cost that grows with the table, not with the selection; the writes
grow with the matches. Prices: the estimate's dated price table (DynamoDB) and S3's (below), us-east-1.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ddb_backup.estimate import PRICES

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ddb_backup.format.lines import PartRef

#: S3 Standard GET, per request (us-east-1, 2025-06).
S3_GET = 0.0004 / 1000
#: Data transfer out of AWS to the internet, per GB (the first 10 TB a month); within the region it is free.
TRANSFER_OUT_GB = 0.09
GB = 1e9


def read_cost(parts: Iterable[PartRef], *, extra_gets: int = 0) -> dict[str, Any]:
    """Reading ``parts`` whole (plus ``extra_gets`` small objects: manifest, change files): parts, bytes, GETs, and
    the dollars (the GETs; the bytes moved, free in the backup's region, at ``TRANSFER_OUT_GB`` outside AWS).
    ``bytes`` is None when a part's size is unknown (a source without a manifest)."""
    parts = list(parts)
    sizes = [p.bytes for p in parts]
    size = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    gets = len(parts) + extra_gets
    return {
        "parts": len(parts),
        "bytes": size,
        "gets": gets,
        "getDollars": round(gets * S3_GET, 6),
        "transferOutDollars": round((size or 0) / GB * TRANSFER_OUT_GB, 6),
    }


def write_units(sizes: Iterable[int]) -> int:
    """Write request units of one write of each item of ``sizes`` bytes (1 KB a unit, rounded up, at least one)."""
    return sum(max(1, math.ceil(size / 1024)) for size in sizes)


def read_units(size: int, *, consistent: bool = True) -> float:
    """Read request units of reading ``size`` bytes (4 KB a unit; half for an eventually consistent read)."""
    return math.ceil(size / 4096) * (1.0 if consistent else 0.5)


def dollars(cost: dict[str, Any]) -> float:
    """The run's total in the backup's region: GETs, and DynamoDB's read and write units (on-demand)."""
    units: float = (
        cost.get("writeUnits", 0) * PRICES.write_request_unit + cost.get("readUnits", 0) * PRICES.read_request_unit
    )
    return round(float(cost["read"]["getDollars"]) + units, 6)


def describe(cost: dict[str, Any]) -> str:
    """One line: what the run reads from S3 and writes to DynamoDB, in bytes and dollars."""
    read = cost["read"]
    size = f"{read['bytes']:,} bytes" if read["bytes"] is not None else "bytes not recorded"
    text = (
        f"cost: backups are laid out by scan segment, not by key: finding the items reads all {read['parts']:,} "
        f"part(s) of the backup, {size}, from S3 ({read['gets']:,} GETs ${read['getDollars']:.6f}; the transfer is "
        f"free in the backup's region, ${read['transferOutDollars']:.6f} to outside AWS)"
    )
    if cost.get("readUnits"):
        text += f"; {cost['readUnits']:,.0f} DynamoDB read units ({cost.get('readHow', 'reads')})"
    if "writeUnits" in cost:
        text += f"; writing {cost.get('items', 0):,} item(s): {cost['writeUnits']:,} write units"
    return text + f"; about ${dollars(cost):.6f} on-demand in {PRICES.region} (prices of {PRICES.date})"
