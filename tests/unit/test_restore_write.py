"""write_items: 25-item batches, several in flight, retries with backoff, never a dropped item.

Functional tests on an in-memory fake of BatchWriteItem (faults are scripted),
plus one on moto with faults injected through botocore's event hooks.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddb_backup.aws import retry
from ddb_backup.aws.retry import backoff_delay
from ddb_backup.errors import BadInput
from ddb_backup.restore.write import DeadLettered, write_items
from devkit import sample
from tests.conftest import canonical, table_items

KEYS = sample.CUMULUS_TABLES["Files"]  # bucket (HASH), key (RANGE)


def _items(n: int, seed: int = 1) -> list[dict[str, Any]]:
    return list(sample.items(KEYS, n, seed=seed, size=0))


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["bucket"]["S"], item["key"]["S"]


class FakeTable:
    """BatchWriteItem in memory. ``script(call_no, requests)`` returns how to answer:
    None (write all), ("unprocessed", [indexes]) or ("error", code)."""

    def __init__(self, script=None, latency: float = 0.0) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[int] = []
        self.script = script or (lambda n, requests: None)
        self.latency = latency
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
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
            skipped = set(answer[1]) if answer else set()
            with self.lock:
                for i, r in enumerate(requests):
                    if i not in skipped:
                        self.items[_key(r["PutRequest"]["Item"])] = r["PutRequest"]["Item"]
            unprocessed = [r for i, r in enumerate(requests) if i in skipped]
            return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}
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


def test_an_item_dynamodb_rejects_is_isolated_and_dead_lettered_the_rest_written():
    bad = _key(_items(40)[17])

    def script(n, requests):
        if any(_key(r["PutRequest"]["Item"]) == bad for r in requests):
            return ("error", "ValidationException", "Item size has exceeded the maximum allowed size")
        return None

    fake = FakeTable(script)
    letters = DeadLetters()
    with pytest.raises(DeadLettered, match=r"1 of 40 items .* ValidationException: Item size has exceeded"):
        _write(fake, _items(40), dead_letter=letters)
    assert [_key(i) for i in letters.saved] == [bad]
    assert len(fake.items) == 39


def test_after_too_many_failures_the_rest_is_not_attempted_and_the_message_says_so():
    fake = FakeTable(lambda n, r: ("error", "ValidationException", "One or more parameter values were invalid"))
    with pytest.raises(DeadLettered, match=r"the rest of the input was not attempted"):
        _write(fake, iter(_items(500)), max_failures=50)
    assert len(fake.calls) < 500


def test_other_errors_propagate_after_the_requests_in_flight():
    fake = FakeTable(
        lambda n, r: ("error", "ResourceNotFoundException", "Requested resource not found") if n == 3 else None
    )
    with pytest.raises(ClientError, match=r"ResourceNotFoundException"):
        _write(fake, _items(200), concurrency=2)
    assert fake.inflight == 0


def test_two_items_with_one_key_never_share_a_request_and_the_later_wins():
    items = _items(60)
    again = {**items[5], "version": {"N": "2"}}
    stream = [*items[:10], again, *items[10:], {**items[59], "version": {"N": "3"}}]
    fake = FakeTable(latency=0.005)
    counts, _ = _write(fake, stream, concurrency=4)
    assert counts["duplicateKeys"] == 2 and counts["items"] == counts["written"] == 62
    assert fake.items[_key(items[5])] == again
    assert fake.items[_key(items[59])]["version"] == {"N": "3"}
    assert len(fake.items) == 60


def test_numbers_equal_in_dynamodb_are_the_same_key():
    fake = FakeTable()
    stream = [{"bucket": {"S": "b"}, "key": {"S": "k"}, "n": {"N": "1"}}] * 2
    counts, _ = _write(fake, stream)
    assert counts["duplicateKeys"] == 1 and fake.calls == [1, 1]


def test_an_item_without_its_key_is_named():
    fake = FakeTable()
    with pytest.raises(BadInput, match=r"table T: an item lacks key attribute\(s\) \['key'\]"):
        _write(fake, [{"bucket": {"S": "b"}}])


def test_out_of_time_it_stops_at_a_batch_boundary_with_everything_taken_written():
    fake = FakeTable()
    items = _items(200)
    budget = iter([1.0, 1.0, 1.0, 0.0])
    counts, _ = _write(fake, items, time_left=lambda: next(budget))
    assert counts["done"] is False and counts["items"] == counts["written"] == 100
    rest, _ = _write(fake, items[100:])
    assert rest["done"] and len(fake.items) == 200


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
