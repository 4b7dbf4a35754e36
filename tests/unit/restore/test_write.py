"""write_items: 25-item batches, several in flight, retries with backoff, never a dropped item.

Functional tests on an in-memory fake of BatchWriteItem (faults are scripted),
plus one on moto with faults injected through botocore's event hooks.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddb_backup import config
from ddb_backup.aws import retry
from ddb_backup.aws.ratelimit import RateLimiter
from ddb_backup.aws.retry import backoff_delay
from ddb_backup.errors import BadInput, IntegrityError
from ddb_backup.events import RestorePartTask
from ddb_backup.format.ddbjson import line_from_client_item
from ddb_backup.format.keys import key_value
from ddb_backup.restore import write
from ddb_backup.restore.write import DeadLettered, restore_part, write_items
from devkit import sample
from tests.conftest import canonical, table_items

KEYS = sample.CUMULUS_TABLES["Files"]  # bucket (HASH), key (RANGE)


def _items(n: int, seed: int = 1) -> list[dict[str, Any]]:
    return list(sample.items(KEYS, n, seed=seed, size=0))


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["bucket"]["S"], item["key"]["S"]


class FakeTable:
    """BatchWriteItem in memory. ``script(call_no, requests)`` returns how to answer:
    None (write all), ("unprocessed", [indexes]), ("error", code, message) or ("retried", n) (write all, in an
    answer botocore got after ``n`` retries of its own)."""

    def __init__(self, script=None, latency: float = 0.0) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[int] = []
        self.script = script or (lambda n, requests: None)
        self.latency = latency
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]], **_: Any) -> dict[str, Any]:
        ((table, requests),) = RequestItems.items()
        assert 1 <= len(requests) <= 25
        keys = [_key(r["PutRequest"]["Item"]) for r in requests]
        if len(set(keys)) != len(keys):
            raise ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Provided list of item keys contains duplicates"}},
                "BatchWriteItem",
            )
        with self.lock:
            n = len(self.calls)
            self.calls.append(len(requests))
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            time.sleep(self.latency)
            answer = self.script(n, requests)
            if answer and answer[0] == "error":
                raise ClientError({"Error": {"Code": answer[1], "Message": answer[2]}}, "BatchWriteItem")
            skipped = set(answer[1]) if answer and answer[0] == "unprocessed" else set()
            with self.lock:
                for i, r in enumerate(requests):
                    if i not in skipped:
                        self.items[_key(r["PutRequest"]["Item"])] = r["PutRequest"]["Item"]
            unprocessed = [r for i, r in enumerate(requests) if i in skipped]
            retried = {"ResponseMetadata": {"RetryAttempts": answer[1]}} if answer and answer[0] == "retried" else {}
            return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}, **retried}
        finally:
            with self.lock:
                self.inflight -= 1


class DeadLetters:
    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def __call__(self, items: list[dict[str, Any]]) -> str:
        self.saved.extend(items)
        return "s3://bucket/backups/T/ID/dead-letter/run/part.json.gz"


def _write(fake: FakeTable, items, **kwargs):
    sleeps: list[float] = []
    kwargs.setdefault("dead_letter", DeadLetters())
    counts = write_items(fake, "T", items, key_names=["bucket", "key"], sleep=sleeps.append, **kwargs)
    return counts, sleeps


def test_every_item_is_written_in_batches_of_25_with_several_in_flight():
    fake = FakeTable(latency=0.01)
    items = _items(1000)
    counts, sleeps = _write(fake, items, concurrency=4)
    assert fake.items == {_key(i): i for i in items}
    assert fake.calls == [25] * 40
    assert fake.max_inflight > 1
    assert sleeps == []
    assert counts == {
        "items": 1000,
        "written": 1000,
        "requests": 40,
        "unprocessedRetries": 0,
        "throttleRetries": 0,
        "duplicateKeys": 0,
        "done": True,
    }


def test_unprocessed_items_are_resent_after_a_jittered_growing_backoff():
    # Each request first comes back with its last ten items unprocessed, then those with five, then all go in.
    def script(n, requests):
        return ("unprocessed", range(len(requests) - 10, len(requests))) if len(requests) > 10 else None

    fake = FakeTable(script)
    items = _items(130)
    counts, sleeps = _write(fake, items, concurrency=2)
    assert fake.items == {_key(i): i for i in items}
    assert counts["written"] == 130 and counts["unprocessedRetries"] == 5
    assert len(sleeps) == 5 and all(0 <= s <= 0.05 for s in sleeps)


def test_each_retry_of_a_request_waits_the_next_step_of_the_backoff(monkeypatch):
    """With the jitter at its top, the waits are the steps themselves: 0.05 s doubling, capped at 20 s."""
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)
    fake = FakeTable(lambda n, requests: ("unprocessed", range(1, len(requests))))  # one item a try
    counts, sleeps = _write(fake, _items(25), attempts=2)
    assert counts["written"] == 25 and counts["unprocessedRetries"] == 24
    assert sleeps == [min(20.0, 0.05 * 2**k) for k in range(24)]


def test_throttling_is_retried_with_backoff_until_it_passes():
    def script(n, requests):
        return ("error", "ProvisionedThroughputExceededException", "slow down") if n % 3 != 2 else None

    fake = FakeTable(script)
    items = _items(60)
    counts, sleeps = _write(fake, items, concurrency=1)
    assert fake.items == {_key(i): i for i in items}
    assert counts["throttleRetries"] == 6 and counts["requests"] == 3
    assert sleeps and max(sleeps) <= 0.1


def test_a_throttled_request_waits_a_growing_backoff_before_each_retry(monkeypatch):
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)

    def script(n, requests):
        return ("error", "ProvisionedThroughputExceededException", "slow down") if n % 4 != 3 else None

    counts, sleeps = _write(FakeTable(script), _items(50), concurrency=1)
    assert counts["throttleRetries"] == 6 and counts["written"] == 50
    assert sleeps == [0.05, 0.1, 0.2] * 2


def test_the_backoff_is_full_jitter_within_a_growing_cap():
    random.seed(20240611)  # fixed draws: the bounds below are not left to chance
    for attempt in range(12):
        cap = min(20.0, 0.05 * 2**attempt)
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap
        # full jitter: the draws cover the whole range, from near nothing to near the cap
        assert min(delays) < 0.05 * cap and max(delays) > 0.95 * cap, (attempt, min(delays), max(delays))
        assert 0.4 * cap < statistics.mean(delays) < 0.6 * cap


def test_the_table_admin_retry_waits_at_least_half_of_a_growing_step():
    random.seed(7)
    policy = retry.Retry(deadline=0, base=1.0, cap=30.0)
    for attempt in range(7):
        step = min(30.0, 2.0**attempt)
        delays = [policy.delay(attempt) for _ in range(100)]
        assert min(delays) >= step / 2 and max(delays) <= step
        assert max(delays) > 0.95 * step and min(delays) < 0.55 * step


def _throttled(code: str = "ProvisionedThroughputExceededException") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "slow down"}}, "BatchWriteItem")


def test_a_call_throttled_every_time_is_tried_ten_times_then_its_own_error_is_raised():
    calls: list[tuple[Any, ...]] = []
    sleeps: list[float] = []

    def fn(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))
        raise _throttled()

    with pytest.raises(ClientError, match="ProvisionedThroughputExceededException"):
        retry.call_with_backoff(fn, "a", 2, sleep=sleeps.append, k="v")
    assert calls == [(("a", 2), {"k": "v"})] * 10  # positional and keyword arguments reach every try
    assert len(sleeps) == 9  # a wait between tries, none after the last


def test_a_call_that_is_not_throttled_fails_at_once_without_a_retry():
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad key"}}, "PutItem")

    with pytest.raises(ClientError, match="bad key"):
        retry.call_with_backoff(fn, sleep=lambda s: pytest.fail("slept before a non-retryable error"))
    assert calls == [1]


def test_a_call_throttled_until_its_last_try_returns_that_try_s_answer():
    answers = iter([_throttled("ThrottlingException")] * 2 + ["done"])
    throttles: list[int] = []

    def fn() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert (
        retry.call_with_backoff(fn, attempts=3, sleep=lambda s: None, on_throttle=lambda: throttles.append(1)) == "done"
    )
    assert throttles == [1, 1]


def test_only_throttling_answers_count_as_throttling_even_without_an_error_body():
    assert retry.is_throttle(_throttled("RequestLimitExceeded"))
    assert not retry.is_throttle(_throttled("ConditionalCheckFailedException"))
    assert not retry.is_throttle(ClientError({}, "PutItem"))  # no "Error" in the answer at all
    assert not retry.is_throttle(ValueError("ProvisionedThroughputExceededException"))


class _Clock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_call_not_ready_is_retried_with_growing_pauses_while_they_fit_before_the_deadline(monkeypatch):
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)  # the pauses are the steps
    clock = _Clock()
    answers = iter([retry.NotReady("creating"), _throttled("LimitExceededException"), retry.NotReady("busy"), "ok"])

    def fn(**kwargs: Any) -> str:
        assert kwargs == {"TableName": "t"}
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    policy = retry.Retry.within(7.0, clock=clock, sleep=clock.sleep)  # 1 + 2 + 4: the last pause just fits
    assert retry.call_until_ready(policy, fn, TableName="t") == "ok"
    assert clock.sleeps == [1.0, 2.0, 4.0]
    with pytest.raises(retry.NotReady, match="still"):  # the next pause (1 s) no longer fits in what is left (0)
        retry.call_until_ready(policy, lambda: (_ for _ in ()).throw(retry.NotReady("still")))
    with pytest.raises(ClientError, match="AccessDenied"):  # not a "not yet" answer: raised at once
        retry.call_until_ready(retry.Retry.within(60.0, clock=clock, sleep=clock.sleep), _raise_access_denied)
    assert clock.sleeps == [1.0, 2.0, 4.0]


def _raise_access_denied() -> None:
    raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "UpdateTable")


def test_names_are_tried_in_rounds_until_done_failed_or_out_of_time(monkeypatch):
    from botocore.exceptions import EndpointConnectionError

    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)
    clock = _Clock()
    tries: Counter[str] = Counter()

    def attempt(name: str) -> str:
        tries[name] += 1
        if name == "bad":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "no such"}}, "X")
        if name == "net":
            raise EndpointConnectionError(endpoint_url="https://x")
        if name == "slow" and tries[name] < 3:
            raise retry.NotReady(f"slow not ready ({tries[name]})")
        if name == "never":
            raise _throttled("ResourceInUseException")
        return f"{name} done"

    policy = retry.Retry.within(15.0, clock=clock, sleep=clock.sleep)  # 1+2+4+8: the fourth pause just fits
    results = retry.run_until_done(
        ["bad", "slow", "net", "ok", "never", "ok"], attempt, lambda n, why: f"{n} failed: {why}", policy
    )
    assert results == [
        "bad failed: ValidationException: no such",
        "slow done",
        'net failed: EndpointConnectionError: Could not connect to the endpoint URL: "https://x"',
        "ok done",
        "never failed: ResourceInUseException: slow down (still so after 15 s and 5 tries)",
    ]
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert tries == {"bad": 1, "slow": 3, "net": 1, "ok": 1, "never": 5}


def test_error_text_and_code_read_any_error():
    assert retry.error_text(_throttled()) == "ProvisionedThroughputExceededException: slow down"
    assert retry.error_text(ClientError({}, "X")) == "None: None"
    assert retry.error_text(retry.NotReady("table t is CREATING")) == "table t is CREATING"
    assert retry.error_text(ValueError("odd")) == "ValueError: odd"
    assert retry.error_code(_throttled("ThrottlingException")) == "ThrottlingException"
    assert retry.error_code(ClientError({}, "X")) == ""
    assert retry.error_code(ClientError({"Error": {"Message": "no code"}}, "X")) == ""
    assert retry.error_code(ValueError("ThrottlingException")) == ""


def test_a_lambda_s_retry_budget_ends_before_its_timeout_and_reads_its_settings(monkeypatch):
    class Context:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def get_remaining_time_in_millis(self) -> int:
            return self.ms

    monkeypatch.delenv("TIME_BUDGET_SECONDS", raising=False)
    monkeypatch.delenv("RETRY_BASE_SECONDS", raising=False)
    policy = config.retry_for_lambda(Context(900_000))
    assert 599.0 < policy.left() <= 600.0 and policy.base == 1.0 and policy.cap == 30.0  # capped by the default budget
    assert 39.0 < config.retry_for_lambda(Context(70_000)).left() <= 40.0  # 30 s margin before the timeout
    assert 59.0 < retry.Retry.for_lambda(Context(70_000), margin=10.0).left() <= 60.0
    assert config.retry_for_lambda(Context(5_000)).left() <= 0.0  # less than the margin left: no time
    monkeypatch.setenv("TIME_BUDGET_SECONDS", "2000")
    assert 999.0 < config.retry_for_lambda(Context(1_030_000)).left() <= 1000.0  # milliseconds, to seconds
    monkeypatch.setenv("TIME_BUDGET_SECONDS", "20")
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0.5")
    policy = config.retry_for_lambda(Context(900_000))
    assert 19.0 < policy.left() <= 20.0 and policy.base == 0.5


def test_items_left_unprocessed_after_the_budget_are_dead_lettered_and_named():
    stuck = {_key(i) for i in _items(100)[10:13]}

    def script(n, requests):
        return ("unprocessed", [i for i, r in enumerate(requests) if _key(r["PutRequest"]["Item"]) in stuck])

    fake = FakeTable(script)
    letters = DeadLetters()
    items = _items(100)
    with pytest.raises(DeadLettered) as info:
        _write(fake, items, concurrency=3, attempts=4, dead_letter=letters)
    assert {_key(i) for i in letters.saved} == stuck
    assert set(fake.items) | stuck == {_key(i) for i in items}
    assert not set(fake.items) & stuck
    message = str(info.value)
    assert "3 of 100 items could not be written to table T" in message
    assert "still unprocessed after 4 tries in a row that wrote nothing" in message
    assert info.value.location in message
    assert info.value.counts["written"] == 97 and info.value.counts["deadLettered"] == 3


def test_a_request_that_keeps_making_headway_is_never_given_up():
    # Every try writes only the first item of what is left: 25 tries for one request, with a budget of 2.
    fake = FakeTable(lambda n, requests: ("unprocessed", range(1, len(requests))))
    items = _items(25)
    counts, sleeps = _write(fake, items, attempts=2)
    assert fake.items == {_key(i): i for i in items}
    assert counts["requests"] == 25 and len(sleeps) == 24
    assert max(sleeps) <= 20.0


def test_a_table_that_stays_throttled_dead_letters_instead_of_dropping():
    fake = FakeTable(lambda n, r: ("error", "ThrottlingException", "no"))
    letters = DeadLetters()
    items = _items(30)
    with pytest.raises(DeadLettered, match=r"30 of 30 items .* ThrottlingException on 3 tries in a row"):
        _write(fake, items, attempts=3, dead_letter=letters)
    assert Counter(map(canonical, letters.saved)) == Counter(map(canonical, items))
    assert fake.calls == [25, 25, 25, 5, 5, 5] or sorted(fake.calls) == [5, 5, 5, 25, 25, 25]  # 3 tries each


def test_a_request_is_given_up_after_exactly_its_budget_of_tries_that_write_nothing():
    # The first try writes all but one item (headway: the count starts again), then nothing ever.
    fake = FakeTable(lambda n, requests: ("unprocessed", [len(requests) - 1]))
    letters = DeadLetters()
    items = _items(25)
    with pytest.raises(DeadLettered, match=r"1 of 25 items .* after 4 tries in a row that wrote nothing") as info:
        _write(fake, items, attempts=4, dead_letter=letters)
    assert fake.calls == [25, 1, 1, 1, 1]
    assert letters.saved == [items[-1]] and info.value.counts["deadLetter"] == info.value.location


def test_with_no_budget_each_request_is_still_tried_once():
    fake = FakeTable(lambda n, r: ("error", "ThrottlingException", "no"))
    with pytest.raises(DeadLettered, match=r"ThrottlingException on 1 tries in a row"):
        _write(fake, _items(30), attempts=0, concurrency=1)
    assert fake.calls == [25, 5]


def test_by_default_a_request_is_tried_twelve_times_four_in_flight(monkeypatch):
    fake = FakeTable(lambda n, r: ("error", "ThrottlingException", "no") if len(r) == 5 else None, latency=0.02)
    with pytest.raises(DeadLettered, match=r"5 of 205 items"):
        write_items(
            fake, "T", _items(205), key_names=["bucket", "key"], dead_letter=DeadLetters(), sleep=lambda s: None
        )
    assert fake.calls.count(5) == 12
    assert fake.max_inflight == 4


def test_the_backoff_grows_from_the_base_delay_given(monkeypatch):
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)
    fake = FakeTable(lambda n, r: ("error", "ThrottlingException", "no") if n < 3 else None)
    counts, sleeps = _write(fake, _items(25), base_delay=1.0)
    assert sleeps == [1.0, 2.0, 4.0] and counts["written"] == 25


def test_an_item_dynamodb_rejects_is_isolated_and_dead_lettered_the_rest_written():
    bad = _key(_items(40)[17])

    def script(n, requests):
        if any(_key(r["PutRequest"]["Item"]) == bad for r in requests):
            return ("error", "ValidationException", "Item size has exceeded the maximum allowed size")
        return None

    fake = FakeTable(script)
    letters = DeadLetters()
    with pytest.raises(DeadLettered) as info:
        _write(fake, _items(40), dead_letter=letters)
    assert str(info.value) == (
        "1 of 40 items could not be written to table T (1 ValidationException: Item size has exceeded the maximum "
        f"allowed size); they are saved in {letters(())}."
    )
    assert [_key(i) for i in letters.saved] == [bad]
    assert len(fake.items) == 39


def test_after_too_many_failures_the_rest_is_not_attempted_and_the_message_says_so():
    fake = FakeTable(lambda n, r: ("error", "ValidationException", "One or more parameter values were invalid"))
    said = (
        r"^75 of 75 items could not be written to table T \(75 ValidationException: One or more parameter values "
        r"were invalid\); they are saved in s3://bucket/backups/T/ID/dead-letter/run/part\.json\.gz\. "
        r"After that many failures the rest of the input was not attempted\.$"
    )
    with pytest.raises(DeadLettered, match=said) as info:
        _write(fake, iter(_items(500)), max_failures=50, concurrency=1)
    # One request at a time: after the third is sent, the first two (50 items) have failed.
    assert info.value.counts["items"] == 75 and info.value.counts["done"] is False
    assert info.value.counts["deadLettered"] == 75


def test_the_reasons_quoted_are_the_three_most_common():
    reasons = {0: "A", 1: "B", 2: "B", 3: "C", 4: "C", 5: "C", 6: "D", 7: "D", 8: "D", 9: "D"}

    def script(n, requests):
        if len(requests) > 1:  # the batch is halved until each item stands alone with its own reason
            return ("error", "ValidationException", "some item is bad")
        return ("error", "ValidationException", reasons[int(requests[0]["PutRequest"]["Item"]["key"]["S"][1:])])

    items = [{"bucket": {"S": "b"}, "key": {"S": f"k{i}"}} for i in range(10)]
    with pytest.raises(DeadLettered) as info:
        write_items(
            FakeTable(script), "T", items, key_names=["bucket", "key"], dead_letter=DeadLetters(), sleep=lambda s: None
        )
    assert "(4 ValidationException: D; 3 ValidationException: C; 2 ValidationException: B)" in str(info.value)


def test_a_run_out_of_time_with_items_dead_lettered_does_not_say_the_rest_was_skipped_for_failures():
    bad = _key(_items(100)[3])

    def script(n, requests):
        hit = any(_key(r["PutRequest"]["Item"]) == bad for r in requests)
        return ("error", "ValidationException", "too big") if hit else None

    budget = iter([0.0])
    with pytest.raises(DeadLettered) as info:
        _write(FakeTable(script), _items(100), time_left=lambda: next(budget))
    assert info.value.counts["items"] == 25 and "not attempted" not in str(info.value)


def test_other_errors_propagate_after_the_requests_in_flight():
    fake = FakeTable(
        lambda n, r: ("error", "ResourceNotFoundException", "Requested resource not found") if n == 3 else None
    )
    with pytest.raises(ClientError, match=r"ResourceNotFoundException"):
        _write(fake, _items(200), concurrency=2)
    assert fake.inflight == 0


def test_an_error_with_others_in_flight_propagates_as_itself_once_they_finish(monkeypatch):
    failed = threading.Event()  # set once the first request's future holds its error

    class Pool(write.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            future = super().submit(fn, *args, **kwargs)
            future.add_done_callback(lambda f: f.exception() is not None and failed.set())
            return future

    def script(n, requests):
        if n == 0:
            return ("error", "ResourceNotFoundException", "Requested resource not found")
        assert failed.wait(timeout=30)  # the others are still in flight when the first fails
        return None

    monkeypatch.setattr(write, "ThreadPoolExecutor", Pool)
    fake, seen = FakeTable(script), []
    with pytest.raises(ClientError, match=r"ResourceNotFoundException"):
        _write(fake, _items(100), concurrency=4, progress=seen.append)
    assert fake.inflight == 0 and len(fake.calls) == 4
    assert sum(seen) == 75  # what the three others wrote is still reported


class _Bare(FakeTable):
    """Answers as a client may: no UnprocessedItems key when all went in; an error with no body."""

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]], **_: Any) -> dict[str, Any]:
        out = super().batch_write_item(RequestItems)
        if len(self.calls) == 2:
            raise ClientError({}, "BatchWriteItem")
        return {k: v for k, v in out.items() if v}


def test_answers_without_unprocessed_items_or_an_error_body_are_read_as_such():
    fake = _Bare()
    with pytest.raises(ClientError, match=r"An error occurred \(Unknown\)"):
        _write(fake, _items(50), concurrency=1)
    assert len(fake.items) == 50  # the second request went in before the fake answered with an error


def test_an_item_with_the_key_of_an_earlier_one_stops_the_writes_naming_a_few_such_keys():
    """Issue 24 point 3: the table keeps one item a key, so a second item with it is an item lost, not restored."""
    items = _items(60)
    stream = [*items[:30], {**items[5], "version": {"N": "2"}}, *items[30:], items[59], items[40]]
    fake = FakeTable(latency=0.005)
    with pytest.raises(IntegrityError) as info:
        _write(fake, stream, concurrency=4)
    text = str(info.value)
    assert "3 item(s) read have the key (bucket, key) of an earlier item, first " in text, text
    shown = [json.dumps({"bucket": i["bucket"], "key": i["key"]}, sort_keys=True) for i in (items[5], items[59])]
    assert "; ".join(shown) in text and "stopped after writing 25 items" in text
    assert len(fake.items) == 25  # the batch holding the second item was never sent


def test_numbers_equal_in_dynamodb_are_the_same_key():
    # The key is (bucket, n): "1" and "1.0" are one key to DynamoDB, 2 is another.
    fake = FakeTable()
    stream = [
        {"bucket": {"S": "b"}, "key": {"S": "k"}, "n": {"N": "1"}},
        {"bucket": {"S": "b"}, "key": {"S": "k2"}, "n": {"N": "2"}},
        {"bucket": {"S": "b"}, "key": {"S": "k"}, "n": {"N": "1.0"}},
    ]
    with pytest.raises(IntegrityError, match=r'1 item\(s\) read have the key \(bucket, n\).*"N": "1.0"'):
        write_items(fake, "T", stream, key_names=["bucket", "n"], dead_letter=DeadLetters(), sleep=lambda s: None)
    assert fake.calls == []


def test_a_key_value_is_its_type_and_its_value_a_number_normalised():
    assert key_value({"N": "1.0"}) == key_value({"N": "1"}) == key_value({"N": "1E+0"}) == ("N", "1")
    assert key_value({"N": "100"}) == key_value({"N": "1E+2"})
    assert key_value({"N": "1"}) != key_value({"N": "2"})
    assert key_value({"N": "1"}) != key_value({"S": "1"})
    assert key_value({"S": "1.0"}) == ("S", "1.0")  # a string is never read as a number
    assert key_value({"N": "not a number"}) == ("N", "not a number")  # DynamoDB will say what is wrong with it


def test_an_item_without_its_key_is_named():
    fake = FakeTable()
    with pytest.raises(BadInput, match=r"table T: an item lacks key attribute\(s\) \['key'\]"):
        _write(fake, [{"bucket": {"S": "b"}}])
    many = {f"a{i:02d}": {"S": "x"} for i in range(12)}  # only the first ten names (sorted) are quoted
    with pytest.raises(BadInput, match=r"\['bucket'\]: \['a00', .* 'a08', 'a09'\]$"):
        _write(fake, [{**many, "key": {"S": "k"}}])


def test_out_of_time_it_stops_at_a_batch_boundary_with_everything_taken_written():
    fake = FakeTable()
    items = _items(200)
    budget = iter([1.0, 1.0, 1.0, 0.0])
    counts, _ = _write(fake, items, time_left=lambda: next(budget))
    assert counts["done"] is False and counts["items"] == counts["written"] == 100
    rest, _ = _write(fake, items[100:])
    assert rest["done"] and len(fake.items) == 200


def test_by_default_a_write_gives_up_after_a_thousand_failed_items():
    fake = FakeTable(lambda n, r: ("error", "ValidationException", "One or more parameter values were invalid"))
    with pytest.raises(DeadLettered, match=r"^1025 of 1025 items .* the rest of the input was not attempted\.$"):
        _write(fake, iter(_items(2000)), concurrency=1)  # one request at a time: 41 sent when 1000 have failed


def test_keys_given_to_delete_are_deleted_and_those_that_fail_are_saved_and_named_as_not_deleted(ddb):
    sample.create_table(ddb, "mirror-FilesTable", KEYS)
    items = _items(30)
    ddb.batch_write_item(RequestItems={"mirror-FilesTable": [{"PutRequest": {"Item": i}} for i in items[:25]]})
    ddb.batch_write_item(RequestItems={"mirror-FilesTable": [{"PutRequest": {"Item": i}} for i in items[25:]]})
    keys = [{"bucket": i["bucket"], "key": i["key"]} for i in items]
    counts = write_items(ddb, "mirror-FilesTable", keys[:27], delete=True, dead_letter=DeadLetters())
    assert (counts["items"], counts["written"], counts["requests"]) == (27, 27, 2)
    assert sorted(map(canonical, table_items(ddb, "mirror-FilesTable"))) == sorted(map(canonical, items[27:]))
    refused = ClientError({"Error": {"Code": "ValidationException", "Message": "no"}}, "BatchWriteItem")

    def refuse(n: int, kwargs: dict[str, Any]) -> None:
        raise refused

    saved = DeadLetters()
    said = r"^3 of 3 items could not be deleted from table mirror-FilesTable \(3 ValidationException: no\); they"
    with pytest.raises(DeadLettered, match=said):
        write_items(
            _Client(ddb, {"batch_write_item": refuse}), "mirror-FilesTable", keys[27:], delete=True, dead_letter=saved
        )
    assert saved.saved == keys[27:]


def test_a_write_s_threads_are_ones_an_interrupted_cli_does_not_wait_for():
    """Ctrl-C: the CLI exits at once, not at a hung request's timeout, while a write thread is in a request."""
    from ddb_backup_cli.files import cancel

    started, release = threading.Event(), threading.Event()

    def hang(n, requests):
        started.set()
        release.wait(10)

    writing = threading.Thread(target=_write, args=(FakeTable(hang), _items(10)))
    writing.start()
    try:
        assert started.wait(10) and cancel.threads_left() == 1
    finally:
        release.set()
        writing.join()
    assert cancel.threads_left() == 0


def test_progress_is_reported_as_items_are_written():
    seen: list[int] = []
    _write(FakeTable(), _items(80), progress=seen.append)
    assert sum(seen) == 80


# ------------------------------------------------------------------ on moto, faults through botocore's event hooks
def test_real_client_with_injected_unprocessed_items_and_throttling_restores_everything(ddb):
    sample.create_table(ddb, "restore-FilesTable", KEYS)
    calls = Counter()
    stash = threading.local()

    def before(params: dict[str, Any], **_: Any) -> None:
        # Keep the last 7 requests of every third call back: DynamoDB "did not get to them".
        calls["n"] += 1
        stash.held = {}
        for table, requests in params["RequestItems"].items():
            if calls["n"] % 3 == 0 and len(requests) > 7:
                stash.held[table] = requests[-7:]
                params["RequestItems"][table] = requests[:-7]

    def after(parsed: dict[str, Any], **_: Any) -> None:
        held = getattr(stash, "held", {})
        if held:
            parsed.setdefault("UnprocessedItems", {}).update(held)
            stash.held = {}

    def throttle(**_: Any):
        calls["t"] += 1
        if calls["t"] % 4 == 0:
            return _Http(400), {
                "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
        return None

    events = ddb.meta.events
    events.register("before-call.dynamodb.BatchWriteItem", throttle)
    events.register("provide-client-params.dynamodb.BatchWriteItem", before)
    events.register("after-call.dynamodb.BatchWriteItem", after)
    items = _items(400, seed=7)
    counts = write_items(ddb, "restore-FilesTable", items, dead_letter=DeadLetters(), concurrency=4)
    assert counts["unprocessedRetries"] > 0 and counts["throttleRetries"] > 0
    assert Counter(map(canonical, table_items(ddb, "restore-FilesTable"))) == Counter(map(canonical, items))


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


def test_a_dead_letter_keeps_unparseable_lines_as_they_were(tmp_path):
    """A refused line that does not even parse is saved verbatim, with the others of its batch."""
    from ddb_backup.restore.deadletters import dead_letter_writer
    from ddb_backup.restore.fastwrite import RawItem

    save = dead_letter_writer(str(tmp_path) + "/", "run-1")
    bad = RawItem(b'{"Item":{"pk":{"S":5}}}', "part-1 line 1")
    good = RawItem(b'{"Item":{"pk":{"S":"a"}}}', "part-1 line 2")
    where = save("t", [bad, good])
    import gzip
    from pathlib import Path

    assert gzip.decompress(Path(where).read_bytes()) == bad.line + b"\n" + good.line + b"\n"


def _part_in_s3(s3: Any, items: list[dict[str, Any]], part_id: str = "data/000003-000000.json.gz") -> dict[str, Any]:
    """One backup part (gzip item lines) in S3, as the plan hands it to RestorePart."""
    body = gzip.compress(b"".join(line_from_client_item(i) for i in items))
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key=f"b/{part_id}", Body=body)
    return {
        "id": part_id,
        "url": f"s3://bkt/b/{part_id}",
        "dialect": "item",
        "items": len(items),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def _task(part: dict[str, Any], target: str = "target", **more: Any) -> RestorePartTask:
    doc = {
        "runId": "r1",
        "bucket": "bkt",
        "runPrefix": "@ddb-backup/restores/r1/",
        "table": 2,
        "target": target,
        "part": part,
    }
    return RestorePartTask.model_validate({**doc, "deadLetter": "s3://bkt/b/", **more})


def _target_table(ddb: Any) -> None:
    ddb.create_table(
        TableName="target",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _restore(ddb: Any, s3: Any, task: RestorePartTask, **kwargs: Any) -> dict[str, Any]:
    """restore_part with the Lambda's default settings (8 requests in flight, 12 tries), no real sleep."""
    kwargs = {"time_left": lambda: 60.0, "concurrency": 8, "attempts": 12, "sleep": lambda s: None, **kwargs}
    return restore_part(ddb, s3, task, **kwargs)


def _note(s3: Any, key: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket="bkt", Key=key)["Body"].read())


def test_a_part_restored_over_two_invocations_resumes_where_the_first_stopped(ddb, s3):
    _target_table(ddb)
    items = [{"pk": {"S": f"k{i:03d}"}, "v": {"N": str(i)}} for i in range(60)]
    later = {"pk": {"S": "k060"}, "v": {"N": "999"}}
    part = _part_in_s3(s3, [*items, later])
    clock = iter([5.0, 0.0])  # time left after the first batch, none after the second: it stops at 50 items
    first = _restore(ddb, s3, _task(part), time_left=lambda: next(clock, 0.0))
    assert (first["next"], first["done"], first["written"]) == (50, False, 50)
    assert "Contents" not in s3.list_objects_v2(Bucket="bkt", Prefix="@ddb-backup/restores/r1/results/")
    # The state machine hands the first invocation's answer back as the next task, whole.
    carried = {**first, "duplicateKeys": 2, "retries": 5, "seconds": 10.25}  # carried on, seconds to the millisecond
    second = _restore(ddb, s3, RestorePartTask.model_validate(carried))
    assert (second["next"], second["done"], second["written"]) == (61, True, 61)
    assert (second["duplicateKeys"], second["retries"]) == (2, 5) and 10.25 <= second["seconds"] < 20.0
    assert set(second) == set(first)  # field names as the state machine knows them (aliases), nothing added
    task_fields = {"runId", "bucket", "runPrefix", "table", "target", "part", "deadLetter", "writeRate"}
    counts = {"next", "done", "written", "duplicateKeys", "retries", "seconds"}
    assert set(first) == task_fields | counts  # no null for a field the task did not have (executionName)
    assert sorted(map(canonical, table_items(ddb, "target"))) == sorted(map(canonical, [*items, later]))
    note = _note(s3, "@ddb-backup/restores/r1/results/0002-data_000003-000000.json.gz.json")
    assert {k: note[k] for k in ("table", "target", "part", "items", "expected", "written", "duplicateKeys")} == {
        "table": 2,
        "target": "target",
        "part": "data/000003-000000.json.gz",
        "items": 61,
        "expected": 61,
        "written": 61,
        "duplicateKeys": 2,
    }
    assert note["retries"] == 5 and note["seconds"] == second["seconds"]


def test_items_a_part_cannot_write_are_saved_beside_the_backup_and_named_in_its_error_note(ddb, s3):
    _target_table(ddb)
    wrong = {"pk": {"N": "7"}, "v": {"S": "key of the wrong type"}}
    items = [{"pk": {"S": f"k{i}"}} for i in range(5)] + [wrong]
    part = _part_in_s3(s3, items)
    with pytest.raises(DeadLettered, match=r"1 of 6 items could not be written to table target") as info:
        _restore(ddb, s3, _task(part))
    location = "s3://bkt/b/dead-letter/r1/data_000003-000000-from-0.json.gz"
    assert info.value.location == location
    saved = gzip.decompress(s3.get_object(Bucket="bkt", Key=location.removeprefix("s3://bkt/"))["Body"].read())
    assert saved.splitlines() == [line_from_client_item(wrong).strip()]
    note = _note(s3, "@ddb-backup/restores/r1/errors/0002-data_000003-000000.json.gz.json")
    assert note["error"] == "DeadLettered" and note["deadLetter"] == location
    assert note["counts"]["written"] == 5 and note["counts"]["deadLettered"] == 1


def test_a_part_that_fails_leaves_an_error_note_saying_where_it_stopped(ddb, s3):
    part = _part_in_s3(s3, [{"pk": {"S": "a"}}])
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        _restore(ddb, s3, _task(part, target="missing", next=0))
    note = _note(s3, "@ddb-backup/restores/r1/errors/0002-data_000003-000000.json.gz.json")
    assert note == {
        "table": 2,
        "target": "missing",
        "part": "data/000003-000000.json.gz",
        "url": "s3://bkt/b/data/000003-000000.json.gz",
        "from": 0,
        "error": "ResourceNotFoundException",
        "message": note["message"],
    }
    assert "ResourceNotFoundException" in note["message"]


@pytest.mark.parametrize(
    ("part_id", "name"),
    [("data/000003-000000.json.gz", "data_000003-000000"), ("exports/orders.jsonl.gz", "exports_orders")],
)
def test_a_part_s_dead_letter_is_named_after_the_part_without_its_extensions(ddb, s3, part_id, name):
    _target_table(ddb)
    part = _part_in_s3(s3, [{"pk": {"S": "a"}}, {"pk": {"N": "7"}}], part_id=part_id)
    with pytest.raises(DeadLettered, match=rf"saved in s3://bkt/b/dead-letter/r1/{name}-from-0\.json\.gz\.$"):
        _restore(ddb, s3, _task(part))


class _Client:
    """A client passed on to the real one, recording (operation, Key) of each call.

    ``answer``: operation -> ``f(call_no, kwargs)``, which answers (or raises) instead of the real client, or
    returns None to let it answer.
    """

    def __init__(self, real: Any, answer: dict[str, Callable[..., Any]] | None = None, latency: float = 0.0) -> None:
        self.real, self.answer, self.latency = real, answer or {}, latency
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.inflight = self.max_inflight = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name.startswith("_") or name in ("meta", "exceptions") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.calls.append((name, kwargs.get("Key")))
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
            try:
                time.sleep(self.latency)
                answer = self.answer[name](self.calls.count((name, None)) - 1, kwargs) if name in self.answer else None
                return attr(*args, **kwargs) if answer is None else answer
            finally:
                with self.lock:
                    self.inflight -= 1

        return call


def _throttle(n: int, kwargs: dict[str, Any]) -> None:
    raise _throttled()


def test_a_part_reads_and_saves_through_the_s3_client_and_retries_with_the_tries_and_sleep_given(ddb, s3):
    """The Lambda's clients (endpoint, retries) and its RESTORE_ATTEMPTS reach every call of a part."""
    _target_table(ddb)
    part = _part_in_s3(s3, [{"pk": {"S": f"k{i}"}} for i in range(3)])
    throttled = _Client(ddb, answer={"batch_write_item": _throttle})
    given, sleeps = _Client(s3), []
    with pytest.raises(DeadLettered, match=r"3 of 3 items .* \(3 ProvisionedThroughputExceededException on 2 tries"):
        _restore(throttled, given, _task(part), attempts=2, sleep=sleeps.append)
    assert throttled.calls.count(("batch_write_item", None)) == 2 and len(sleeps) == 1
    assert ("get_object", "b/data/000003-000000.json.gz") in given.calls
    assert ("put_object", "b/dead-letter/r1/data_000003-000000-from-0.json.gz") in given.calls
    assert ("put_object", "@ddb-backup/restores/r1/errors/0002-data_000003-000000.json.gz.json") in given.calls


def test_a_part_keeps_to_the_requests_in_flight_it_is_given(ddb, s3):
    _target_table(ddb)
    items = [{"pk": {"S": f"k{i:03d}"}} for i in range(200)]
    slow = _Client(ddb, latency=0.03)
    done = _restore(slow, s3, _task(_part_in_s3(s3, items)), concurrency=2)
    assert (done["written"], done["done"]) == (200, True)
    assert slow.calls.count(("batch_write_item", None)) == 8 and slow.max_inflight == 2


def test_a_part_keeps_to_its_write_rate(ddb, s3):
    """50 units a second: the second 25-item request waits half a second for the first one's units."""
    _target_table(ddb)
    items = [{"pk": {"S": f"k{i:02d}"}} for i in range(50)]
    done = _restore(ddb, s3, _task(_part_in_s3(s3, items), writeRate=50))
    assert (done["written"], done["writeRate"]) == (50, 50) and done["seconds"] >= 0.45


def test_a_part_s_retries_of_both_kinds_add_to_those_of_earlier_invocations(ddb, s3):
    _target_table(ddb)
    part = _part_in_s3(s3, [{"pk": {"S": f"k{i}"}} for i in range(3)])

    def last_unprocessed_then_throttled(n: int, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        ((table, requests),) = kwargs["RequestItems"].items()
        if n == 0:  # two written, the last left unprocessed
            ddb.batch_write_item(RequestItems={table: requests[:-1]})
            return {"UnprocessedItems": {table: requests[-1:]}}
        if n == 1:
            raise _throttled()
        return None

    flaky = _Client(ddb, answer={"batch_write_item": last_unprocessed_then_throttled})
    done = _restore(flaky, s3, _task(part, retries=5))
    assert (done["written"], done["retries"]) == (3, 7)
    assert _note(s3, "@ddb-backup/restores/r1/results/0002-data_000003-000000.json.gz.json")["retries"] == 7


def _paced(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """write_items' rate limiter on a clock that moves only when it waits; the waits, in order."""
    now, waits = [0.0], []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(write, "RateLimiter", functools.partial(RateLimiter, clock=lambda: now[0], sleep=sleep))
    return waits


def test_a_throttled_request_costs_no_units_and_halves_the_write_rate(monkeypatch):
    """25 units/s: the throttled try is refunded and the rate halves, so the first retry goes at once and
    the second batch waits for the retry's 25 units at 12.5 units/s: 2 s."""
    waits = _paced(monkeypatch)
    throttled_once = FakeTable(
        lambda n, r: ("error", "ProvisionedThroughputExceededException", "slow") if n == 0 else None
    )
    counts, _ = _write(throttled_once, _items(50), concurrency=1, write_rate=25)
    assert (counts["written"], counts["throttleRetries"], waits) == (50, 1, [2.0])


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        # 15 written, the rate halves: the retry of the 10 waits for 15 units at 12.5 units/s, batch 2 for 10 at
        # the rate recovered meanwhile (a tenth of the target a second: 12.5 + 2.5 * 1.2)
        (range(15, 25), [1.2, 10 / 15.5]),
        # none written: nothing charged, the retry goes at once; batch 2 waits for the retry's 25 at 12.5 units/s
        (range(25), [2.0]),
    ],
)
def test_a_request_with_items_left_unprocessed_is_charged_only_what_it_wrote(monkeypatch, left, expected):
    waits = _paced(monkeypatch)
    counts, _ = _write(
        FakeTable(lambda n, r: ("unprocessed", left) if n == 0 else None), _items(50), concurrency=1, write_rate=25
    )
    assert (counts["written"], counts["unprocessedRetries"]) == (50, 1)
    assert waits == pytest.approx(expected)


def test_a_write_rate_below_one_unit_a_second_still_limits(monkeypatch):
    waits = _paced(monkeypatch)
    counts, _ = _write(FakeTable(), _items(50), concurrency=1, write_rate=0.5)
    assert (counts["written"], waits) == (50, [50.0])  # the second batch waits for the first's 25 units


def test_an_answer_botocore_got_after_retrying_throttling_halves_the_write_rate(monkeypatch):
    """25 units/s: the first request took botocore 2 retries, so batch 2 waits for its 25 units at 12.5 units/s."""
    waits = _paced(monkeypatch)
    counts, _ = _write(
        FakeTable(lambda n, r: ("retried", 2) if n == 0 else None), _items(50), concurrency=1, write_rate=25
    )
    assert (counts["written"], counts["requests"], waits) == (50, 2, [2.0])
