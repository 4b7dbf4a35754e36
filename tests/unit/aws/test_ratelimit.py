"""The rate limiter on a fake clock (no sleeps): rate held, halving on throttling, additive recovery."""

from __future__ import annotations

import pytest

from ddb_backup.aws.ratelimit import RateLimiter, consumed_units, segment_share, table_rate
from ddb_backup.errors import BadInput


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def _run(limiter: RateLimiter, clock: FakeClock, costs: list[float], *, request_seconds: float = 0.0) -> float:
    """Requests of the given costs through ``limiter``; returns units consumed per second of fake time."""
    start = clock.now
    for cost in costs:
        limiter.acquire()
        clock.now += request_seconds
        limiter.charge(cost)
    return limiter.consumed / (clock.now - start)


@pytest.mark.parametrize("cost", [0.5, 12.5, 128.0])
def test_rate_is_held_within_ten_percent_whatever_the_request_size(cost: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(40.0, clock=clock, sleep=clock.sleep)
    rate = _run(limiter, clock, [cost] * 2000)
    assert 36.0 <= rate <= 44.0


def test_rate_is_held_with_reserved_estimates_and_uneven_costs() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for i in range(3000):
        limiter.acquire(25)
        clock.now += 0.001
        limiter.charge(25 + (i % 7) * 3, 25)
    assert 90.0 <= limiter.consumed / (clock.now - start) <= 110.0


def test_throttling_halves_the_rate_down_to_a_floor() -> None:
    clock = FakeClock()
    limiter = RateLimiter(64.0, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    assert limiter.rate == 32.0
    limiter.throttled()
    assert limiter.rate == 16.0
    for _ in range(20):
        limiter.throttled()
    assert limiter.rate == 1.0  # 64 / 64
    assert limiter.throttles == 22


def test_recovery_is_additive_a_tenth_of_the_target_a_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    assert limiter.rate == 50.0
    clock.now += 1.0
    limiter.acquire()
    assert limiter.rate == pytest.approx(60.0)
    clock.now += 2.0
    limiter.acquire()
    assert limiter.rate == pytest.approx(80.0)
    clock.now += 10.0
    limiter.acquire()
    assert limiter.rate == 100.0  # never above the target


def test_a_halved_rate_is_what_the_bucket_then_holds() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    start, before = clock.now, limiter.consumed
    for _ in range(20):  # one second's worth at 50 units a second
        limiter.acquire()
        limiter.charge(2.5)
    spent = clock.now - start
    assert (limiter.consumed - before) / spent < 100 * 0.9  # slower than the target: it backed off


def test_consumed_units_reads_one_entry_or_a_list() -> None:
    assert consumed_units({"ConsumedCapacity": {"TableName": "T", "CapacityUnits": 12.5}}) == 12.5
    assert consumed_units({"ConsumedCapacity": [{"CapacityUnits": 3}, {"CapacityUnits": 2.0}]}) == 5.0
    assert consumed_units({}) is None


def _provisioned(read: int, write: int) -> dict:
    return {
        "Table": {"TableName": "T", "ProvisionedThroughput": {"ReadCapacityUnits": read, "WriteCapacityUnits": write}}
    }


def _on_demand(**limits: int) -> dict:
    return {
        "Table": {
            "TableName": "T",
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
            "OnDemandThroughput": limits,
        }
    }


def test_table_rate_from_rate_or_percent() -> None:
    assert table_rate(_provisioned(200, 40), "read", rate=75) == 75
    assert table_rate(_provisioned(200, 40), "read", percent=50) == 100
    assert table_rate(_provisioned(200, 40), "write", percent=25) == 10
    assert table_rate(_provisioned(200, 40), "read", default_percent=50) == 100
    assert table_rate(_provisioned(200, 40), "read") is None
    assert table_rate(_on_demand(MaxReadRequestUnits=1000), "read", percent=10) == 100
    assert table_rate(_on_demand(MaxReadRequestUnits=1000), "read", default_percent=50) == 500


def test_on_demand_without_a_maximum_ignores_the_default_and_refuses_an_explicit_percent() -> None:
    assert table_rate(_on_demand(), "read", default_percent=50) is None
    with pytest.raises(BadInput, match=r"on-demand .* give --read-rate UNITS"):
        table_rate(_on_demand(), "read", percent=50)
    with pytest.raises(BadInput, match="give --write-rate"):
        table_rate(_on_demand(MaxReadRequestUnits=1000), "write", percent=50)


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"rate": -3}, {"percent": 0}, {"percent": 150}])
def test_nonsense_rates_are_refused(kwargs: dict) -> None:
    with pytest.raises(BadInput, match="--read-"):
        table_rate(_provisioned(10, 10), "read", **kwargs)


def test_segment_share_divides_among_those_running_at_once() -> None:
    assert segment_share(100.0, 4, 100) == 25.0
    assert segment_share(100.0, 1000, 100) == 1.0
    assert segment_share(None, 4, 100) == 0.0
