"""Applying changes (ddb_backup.changes.replay): the last change by sequence number, up to a moment, every one written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ddb_backup.changes.replay import apply, fold, gap_in
from ddb_backup.changes.stream import change_of
from ddb_backup.errors import RestoreIncomplete
from ddb_backup.names import utc_time as at
from tests.helpers.aws import LONG_SEQ, SHORT_SEQ, T0, FakeDynamoDB, record


def _change(seq: int, when: dt.datetime, key: str, value: str | None) -> dict[str, Any]:
    return change_of(record(seq, when, key, value), "shardId-1")


def test_the_highest_sequence_number_wins_compared_as_a_number() -> None:
    # Sequence numbers grow in length: "1000...12" (29 digits) follows "9000...1" (21), though it sorts before it.
    first, second = _change(SHORT_SEQ, T0, "a", "old"), _change(LONG_SEQ, T0, "a", "new")
    for changes in ([first, second], [second, first]):
        assert [c["NewImage"]["v"]["S"] for c in fold(changes).values()] == ["new"]


def test_a_change_exactly_at_the_moment_is_applied_one_after_it_is_not() -> None:
    at_moment = _change(1, T0, "a", "at")
    after = _change(2, T0 + dt.timedelta(seconds=1), "b", "after")
    assert sorted(fold([at_moment, after], until=T0)) == ['{"k": {"S": "a"}}']


def test_unprocessed_items_are_sent_again_after_a_growing_pause_until_written() -> None:
    # A throttled table: BatchWriteItem leaves a request unprocessed three times running.
    ddb, sleeps = FakeDynamoDB(unprocessed=3), []
    changes = [_change(n, T0, f"k{n}", f"v{n}") for n in range(1, 31)] + [_change(40, T0, "k1", None)]
    counts = apply(ddb, "T", changes, sleep=sleeps.append)
    assert counts == {"changes": 30, "puts": 29, "deletes": 1}
    assert sorted(ddb.items) == sorted(f"k{n}" for n in range(2, 31))
    assert ddb.items["k30"]["v"] == {"S": "v30"}
    assert len(sleeps) == 3 and all(s > 0 for s in sleeps)
    assert sleeps[2] >= 0.1  # equal jitter: at least half of the step, which doubles


def test_changes_still_unprocessed_after_every_try_fail_loudly() -> None:
    ddb = FakeDynamoDB(unprocessed=100)
    with pytest.raises(RestoreIncomplete, match=r"T: 1 changes could not be applied after 12 tries"):
        apply(ddb, "T", [_change(1, T0, "a", "v")], sleep=lambda _: None)
    assert ddb.items == {}


def test_changes_before_and_at_the_moment_are_folded_whatever_their_order_and_later_ones_are_not() -> None:
    later = _change(3, T0 + dt.timedelta(seconds=1), "c", "later")
    before, at_moment = _change(1, T0 - dt.timedelta(seconds=1), "a", "before"), _change(2, T0, "b", "at")
    assert sorted(fold([later, before, at_moment], until=T0)) == ['{"k": {"S": "a"}}', '{"k": {"S": "b"}}']


def test_a_key_of_several_attributes_is_one_key_whatever_their_order() -> None:
    first, second = _change(1, T0, "a", "old"), _change(2, T0, "a", "new")
    second["Keys"] = {"s": {"N": "1"}, "k": {"S": "a"}}
    first["Keys"] = {"k": {"S": "a"}, "s": {"N": "1"}}
    assert [c["seq"] for c in fold([first, second]).values()] == ["2"]


def test_applying_up_to_a_moment_writes_nothing_changed_after_it_and_counts_each_delete() -> None:
    ddb = FakeDynamoDB()
    ddb.items = {"a": {"k": {"S": "a"}}, "b": {"k": {"S": "b"}}}
    changes = [_change(1, T0, "a", None), _change(2, T0, "b", None), _change(3, T0 + dt.timedelta(seconds=1), "c", "v")]
    assert apply(ddb, "T", changes, T0, sleep=lambda _: None) == {"changes": 2, "puts": 0, "deletes": 2}
    assert ddb.items == {}


def test_each_pause_between_tries_is_between_half_its_step_and_its_step_and_none_follows_the_last() -> None:
    ddb, sleeps = FakeDynamoDB(unprocessed=100), []
    with pytest.raises(RestoreIncomplete):
        apply(ddb, "T", [_change(1, T0, "a", "v")], sleep=sleeps.append)
    assert len(ddb.calls) == 12 and len(sleeps) == 11
    for attempt, pause in enumerate(sleeps):
        step = min(20.0, 0.05 * 2**attempt)
        assert step / 2 <= pause <= step, (attempt, pause)


def test_a_time_is_read_as_the_utc_moment_it_names_and_naive_means_utc() -> None:
    for text in (
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:00:00+00:00",
        "2026-12-01T05:00:00-05:00",
        "2026-12-01T10:00:00",
    ):
        assert at(text) == T0, text  # an aware moment: a naive one equals no aware time


GAP = {"shard": "s", "from": "2026-12-01T10:00:10+00:00", "to": "2026-12-01T10:00:20+00:00", "reason": "trimmed"}


@pytest.mark.parametrize(
    ("start", "end", "overlaps"),
    [
        (0, 9, False),  # ends before the gap
        (0, 10, True),  # ends at its first moment
        (12, 15, True),  # inside it
        (19, 30, True),  # begins in it
        (20, 30, False),  # begins at its last moment: (start, end] holds nothing of it
        (21, 30, False),  # after it
    ],
)
def test_a_gap_is_found_when_it_overlaps_the_span_after_its_start_up_to_its_end(
    start: int, end: int, overlaps: bool
) -> None:
    span = (T0 + dt.timedelta(seconds=start), T0 + dt.timedelta(seconds=end))
    assert gap_in([GAP], *span) == (GAP if overlaps else None)


def test_the_earliest_overlapping_gap_is_named() -> None:
    later = {**GAP, "from": "2026-12-01T10:00:15+00:00", "shard": "later"}
    assert gap_in([later, GAP], T0, T0 + dt.timedelta(seconds=30)) == GAP
