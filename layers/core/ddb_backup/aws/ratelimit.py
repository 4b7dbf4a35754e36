"""Capacity rate control: how many units a second a run may consume, and a token bucket that holds it.

* :func:`table_rate` turns ``--read-rate`` / ``--read-percent`` (or the write pair) and
  the table's description into units per second for the whole table;
* :func:`segment_share` divides it among the segments (or parts) that run at once;
* :class:`RateLimiter` is one worker's token bucket: wait before a request until
  the bucket is not in debt, charge what the response says it consumed
  (``ReturnConsumedCapacity=TOTAL``), halve the rate when DynamoDB throttles,
  and recover additively (a tenth of the target a second) while it does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ddb_backup.errors import BadInput

#: Share of the target the rate recovers by, per second without throttling.
RECOVERY_PER_SECOND = 0.1
#: The rate never falls below this share of the target (nor below 1 unit a second).
FLOOR = 1 / 64


@dataclass(frozen=True)
class Limit:
    """What a run asks for, in one direction: units a second for the table, or a percent of its capacity."""

    rate: float | None = None
    percent: float | None = None


NO_LIMIT = Limit()


class RateLimiter:
    """A token bucket of ``rate`` units a second holding at most ``burst_seconds`` of them; thread-safe.

    Requests cost what is only known afterwards, so the bucket may go into
    debt: :meth:`acquire` reserves an estimate and waits while the bucket is
    in debt, :meth:`charge` settles the difference once the response says
    what was consumed. Over a run the units consumed per second stay at the
    rate, whatever the size of each request.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise BadInput(f"a rate must be positive, got {rate}")
        self.target = float(rate)
        self.rate = float(rate)
        self.burst_seconds = burst_seconds
        self.clock = clock
        self.sleep = sleep
        self.tokens = 0.0
        self.at = clock()
        self.consumed = 0.0
        self.throttles = 0
        self._lock = threading.Lock()

    @property
    def floor(self) -> float:
        return min(self.target, max(1.0, self.target * FLOOR))

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self.at)
        self.at = now
        self.tokens = min(self.rate * self.burst_seconds, self.tokens + elapsed * self.rate)
        if self.rate < self.target:
            self.rate = min(self.target, self.rate + self.target * RECOVERY_PER_SECOND * elapsed)

    def acquire(self, estimate: float = 0.0) -> None:
        """Reserve ``estimate`` units, first waiting while the bucket is in debt."""
        while True:
            with self._lock:
                self._refill()
                if self.tokens >= -1e-6:  # a rounding error is not a debt
                    self.tokens -= estimate
                    return
                wait = -self.tokens / self.rate
            self.sleep(wait)

    def charge(self, units: float, estimate: float = 0.0) -> None:
        """Settle a request that consumed ``units`` and had reserved ``estimate``."""
        with self._lock:
            self.tokens -= units - estimate
            self.consumed += units

    def throttled(self) -> None:
        """DynamoDB throttled a request: halve the rate (down to the floor)."""
        with self._lock:
            self._refill()
            self.throttles += 1
            self.rate = max(self.floor, self.rate / 2)
            self.tokens = min(self.tokens, 0.0)


def consumed_units(response: Mapping[str, Any]) -> float | None:
    """``CapacityUnits`` summed over a response's ``ConsumedCapacity`` (one entry, or a list); None if absent."""
    consumed = response.get("ConsumedCapacity")
    if consumed is None:
        return None
    entries = consumed if isinstance(consumed, list) else [consumed]
    return float(sum(float(e.get("CapacityUnits") or 0) for e in entries if isinstance(e, Mapping)))


def table_rate(
    description: Mapping[str, Any],
    direction: str,
    *,
    rate: float | None = None,
    percent: float | None = None,
    default_percent: float | None = None,
) -> float | None:
    """Units a second for the whole table, or None for no limit.

    ``rate`` wins; else ``percent`` of the table's provisioned units (on an
    on-demand table, of ``OnDemandThroughput.MaxReadRequestUnits`` or
    ``MaxWriteRequestUnits`` when set, else refused). ``default_percent``
    (the stack's ``ReadPercent``) applies like ``percent`` where the table has
    a number to take it of, and is ignored on an on-demand table without one.
    """
    if rate is not None:
        if rate <= 0:
            raise BadInput(f"--{direction}-rate must be a positive number of units a second, got {rate}")
        return float(rate)
    chosen = percent if percent is not None else default_percent
    if chosen is None or chosen <= 0:
        if percent is not None:
            raise BadInput(f"--{direction}-percent must be between 1 and 100, got {percent}")
        return None
    if chosen > 100:
        raise BadInput(f"--{direction}-percent must be between 1 and 100, got {chosen}")
    table = description.get("Table", description)
    name = table.get("TableName", "?")
    mode = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    if mode == "PAY_PER_REQUEST":
        limit = (table.get("OnDemandThroughput") or {}).get(
            "MaxReadRequestUnits" if direction == "read" else "MaxWriteRequestUnits"
        )
        if not limit or int(limit) <= 0:
            if percent is None:
                return None
            raise BadInput(
                f"table {name} is on-demand with no maximum {direction} request units to take "
                f"{percent:g} % of: give --{direction}-rate UNITS (units a second) instead"
            )
        units = float(limit)
    else:
        units = float(
            (table.get("ProvisionedThroughput") or {}).get(
                "ReadCapacityUnits" if direction == "read" else "WriteCapacityUnits"
            )
            or 0
        )
        if units <= 0:
            raise BadInput(f"table {name} has no provisioned {direction} capacity to take {chosen:g} % of")
    return units * chosen / 100


def segment_share(rate: float | None, segments: int, concurrency: int) -> float:
    """One segment's units a second: the table's rate over the segments that run at once (0: no limit)."""
    if rate is None:
        return 0.0
    return rate / max(1, min(segments, concurrency))
