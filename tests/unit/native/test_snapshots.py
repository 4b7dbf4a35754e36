"""Pruning on-demand backups (ddb_backup.native.snapshots.prune_candidates): only when every rule says so."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ddb_backup.native.snapshots import backup_name, prune_candidates, stack_marker

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
MARKER = stack_marker("mystack")
OLD, RECENT = NOW - dt.timedelta(days=40), NOW - dt.timedelta(days=2)


def _summary(created: dt.datetime, named: dt.datetime, status: str = "AVAILABLE") -> dict[str, Any]:
    return {
        "TableName": "T",
        "BackupName": backup_name("T", MARKER, named),
        "BackupArn": f"arn:aws:dynamodb:us-east-1:1:table/T/backup/{created:%Y%m%d}{named:%H%M%S%f}",
        "BackupType": "USER",
        "BackupStatus": status,
        "BackupCreationDateTime": created,
    }


def _doomed(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    newest = _summary(NOW, NOW)  # keep_latest keeps this one: the others are judged on their times alone
    return prune_candidates([*summaries, newest], MARKER, retention=dt.timedelta(days=30), keep_latest=1, now=NOW)


@pytest.mark.parametrize(
    ("created", "named"),
    [(OLD, RECENT), (RECENT, OLD), (RECENT, RECENT)],
    ids=["created-old-named-recent", "created-recent-named-old", "both-recent"],
)
def test_a_backup_is_kept_unless_both_its_creation_and_its_name_are_past_the_retention(
    created: dt.datetime, named: dt.datetime
) -> None:
    assert _doomed([_summary(created, named)]) == []


def test_a_backup_past_the_retention_by_both_times_is_pruned() -> None:
    old = _summary(OLD, OLD)
    assert _doomed([old]) == [old]


def test_a_backup_not_available_is_never_pruned() -> None:
    assert _doomed([_summary(OLD, OLD, status="CREATING")]) == []


def test_another_stacks_backup_is_never_pruned() -> None:
    theirs = {**_summary(OLD, OLD), "BackupName": backup_name("T", stack_marker("otherstack"), OLD)}
    assert _doomed([theirs]) == []
