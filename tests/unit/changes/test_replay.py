"""Applying changes (ddb_backup.changes.replay): the last change by sequence number, up to a moment, every one written."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ddb_backup.changes.replay import apply, fold
from ddb_backup.changes.stream import change_of
from ddb_backup.errors import RestoreIncomplete
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
