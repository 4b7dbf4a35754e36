"""Listing backups and the age of each table's newest complete one."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ddb_backup.format.catalog import list_backups, newest_backup_ages, newest_backups

BUCKET = "catalog-bucket"


@pytest.fixture
def bucket(s3):
    s3.create_bucket(Bucket=BUCKET)

    def put(table: str, backup_id: str, finished: str | None, items: int = 3) -> None:
        base = f"backups/{table}/{backup_id}/"
        s3.put_object(Bucket=BUCKET, Key=base + "plan.json", Body=b"{}")
        if finished:
            manifest = {"finishedAt": finished, "totals": {"items": items, "bytes": 10 * items}}
            s3.put_object(Bucket=BUCKET, Key=base + "manifest.json", Body=json.dumps(manifest).encode())

    put("a-table", "20261120T030000Z-00000001", "2026-11-20T03:10:00+00:00")
    put("a-table", "20261121T030000Z-00000002", "2026-11-21T03:10:00+00:00", items=5)
    put("a-table", "20261122T030000Z-00000003", None)  # still running, or failed
    put("b-table", "20261122T030000Z-00000004", None)
    s3.put_object(Bucket=BUCKET, Key="backups/_runs/20261122T030000Z-00000003/segments.json", Body=b"[]")
    return s3


def test_lists_complete_and_incomplete_backups(bucket):
    rows = list_backups(bucket, BUCKET, "backups/")
    assert [(r["table"], r["backupId"][-1], r["complete"], r["items"]) for r in rows] == [
        ("a-table", "1", True, 3),
        ("a-table", "2", True, 5),
        ("a-table", "3", False, None),
        ("b-table", "4", False, None),
    ]
    assert [r["backupId"] for r in list_backups(bucket, BUCKET, "backups", table="b-table")] == [
        "20261122T030000Z-00000004"
    ]


def test_age_is_that_of_the_newest_complete_backup(bucket):
    now = dt.datetime(2026, 11, 22, 3, 10, tzinfo=dt.UTC)
    ages = newest_backup_ages(bucket, BUCKET, "backups/", now=now)
    assert ages == {"a-table": 24.0, "b-table": float("inf")}


def test_ages_of_the_named_tables_only(bucket):
    """A run ages the tables it was to back up: a deleted table's backups stay (until the lifecycle rule
    expires them) but it is not stale (the soak found the stale alarm firing for one every night)."""
    now = dt.datetime(2026, 11, 22, 3, 10, tzinfo=dt.UTC)
    assert newest_backup_ages(bucket, BUCKET, "backups/", now=now, tables={"a-table"}) == {"a-table": 24.0}


def test_a_table_whose_name_starts_with_an_underscore_is_listed_and_aged(bucket):
    """Table names may start with '_': bookkeeping no longer hides them (issue 15 point 6)."""
    for table in ("_private", "_runs"):
        base = f"backups/{table}/20261122T030000Z-0000000a/"
        manifest = {"finishedAt": "2026-11-22T03:10:00+00:00", "totals": {"items": 2, "bytes": 20}}
        bucket.put_object(Bucket=BUCKET, Key=base + "plan.json", Body=b"{}")
        bucket.put_object(Bucket=BUCKET, Key=base + "manifest.json", Body=json.dumps(manifest).encode())
    bucket.put_object(Bucket=BUCKET, Key="backups/@ddb-backup/runs/20261122T030000Z-0000000a/run.json", Body=b"{}")
    bucket.put_object(Bucket=BUCKET, Key="backups/_restores/old-run/plan.json", Body=b"{}")  # old bookkeeping
    rows = [(r["table"], r["complete"]) for r in list_backups(bucket, BUCKET, "backups/")]
    assert ("_private", True) in rows and ("_runs", True) in rows
    assert not [r for r in rows if r[0] in ("_restores", "@ddb-backup")]
    ages = newest_backup_ages(bucket, BUCKET, "backups/", now=dt.datetime(2026, 11, 22, 4, 10, tzinfo=dt.UTC))
    assert ages["_private"] == 1.0 and ages["_runs"] == 1.0
    assert "_restores" not in ages and "@ddb-backup" not in ages


def test_newest_backups_name_the_latest_and_the_newest_complete_and_skip_the_change_archive(bucket):
    bucket.put_object(Bucket=BUCKET, Key="backups/a-table/changes/_gaps/x.json", Body=b"{}")  # no backup
    rows = {r["table"]: r for r in newest_backups(bucket, BUCKET, "backups")}
    a, b = rows["a-table"], rows["b-table"]
    assert (a["latest"], a["latestComplete"]) == ("20261122T030000Z-00000003", False)
    assert a["newestComplete"] == {
        "backupId": "20261121T030000Z-00000002",
        "startedAt": None,
        "finishedAt": "2026-11-21T03:10:00+00:00",
        "items": 5,
        "bytes": 50,
    }
    assert (b["latest"], b["newestComplete"]) == ("20261122T030000Z-00000004", None)
