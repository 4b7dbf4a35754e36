"""On-demand backups on moto: names, creation through new-table errors, conservative pruning, restore."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from ddb_backup import errors, events
from ddb_backup.errors import BadInput, TargetRefused
from ddb_backup.native import pitr, snapshots
from devkit import sample
from tests.conftest import canonical, table_items
from tests.unit.native.test_pitr import EVENTS, UNAVAILABLE, inject, make_table, retry, run_cli, settings, source_table

MARKER = snapshots.stack_marker("ddb-backup")
OTHER = snapshots.stack_marker("someone-elses-stack")
NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def age(arn: str, created: dt.datetime) -> None:
    """Set a moto backup's creation time (moto stamps every backup 'now')."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backup = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].backups[arn]
    backup.creation_date_time = created.astimezone(dt.UTC).replace(tzinfo=None)


def backup(ddb: Any, table: str, name: str, created: dt.datetime) -> str:
    arn: str = ddb.create_backup(TableName=table, BackupName=name)["BackupDetails"]["BackupArn"]
    age(arn, created)
    return arn


def names(ddb: Any, table: str) -> set[str]:
    return {s["BackupName"] for s in snapshots.list_backups(ddb, [table])}


# ------------------------------------------------------------------ names
def test_names_sort_by_time_and_carry_the_stack_marker():
    assert MARKER.startswith("ddbb-") and len(MARKER) == 13
    assert MARKER != OTHER
    name = snapshots.backup_name("mystack-GranulesTable", MARKER, NOW)
    assert name == f"mystack-GranulesTable-{MARKER}-20261122T030000Z"
    later = snapshots.backup_name("mystack-GranulesTable", MARKER, NOW + dt.timedelta(days=7))
    assert sorted([later, name]) == [name, later]
    parsed = snapshots.parse_backup_name(name)
    assert parsed == snapshots.ParsedName("mystack-GranulesTable", MARKER, NOW)
    long_table = "t" * 255
    long_name = snapshots.backup_name(long_table, MARKER, NOW)
    assert len(long_name) == 255
    assert snapshots.is_ours({"BackupName": long_name, "TableName": long_table, "BackupType": "USER"}, MARKER)
    with pytest.raises(BadInput):
        snapshots.stack_marker("")


@pytest.mark.parametrize(
    ("summary", "ours"),
    [
        ({"BackupName": f"T1-{MARKER}-20261122T030000Z", "TableName": "T1", "BackupType": "USER"}, True),
        ({"BackupName": f"T1-{OTHER}-20261122T030000Z", "TableName": "T1", "BackupType": "USER"}, False),
        ({"BackupName": f"T1-{MARKER}-20261122T030000Z", "TableName": "T1", "BackupType": "SYSTEM"}, False),
        ({"BackupName": f"T1-{MARKER}-20261122T030000Z", "TableName": "T2", "BackupType": "USER"}, False),
        ({"BackupName": f"T1-{MARKER}-20261122T030000Z-copy", "TableName": "T1", "BackupType": "USER"}, False),
        ({"BackupName": "T1-ddbb-20261122T030000Z", "TableName": "T1", "BackupType": "USER"}, False),
        ({"BackupName": "T1-before-migration", "TableName": "T1", "BackupType": "USER"}, False),
        ({"BackupName": f"T1-{MARKER}-20261122T030000Z", "TableName": "T1", "BackupType": "AWS_BACKUP"}, False),
    ],
)
def test_only_our_own_backups_are_ours(summary, ours):
    assert snapshots.is_ours(summary, MARKER) is ours


# ------------------------------------------------------------------ creating
def test_creates_through_new_table_errors_and_skips_tables_backed_up_a_moment_ago(ddb):
    new, old = make_table(ddb, "mystack-NewTable"), make_table(ddb, "mystack-OldTable")
    left = inject(ddb, "CreateBackup", [UNAVAILABLE, "LimitExceededException", UNAVAILABLE], table=new)
    results = snapshots.create_backups(
        ddb, [new, old, "mystack-GoneTable"], MARKER, retry=retry(), now=NOW, min_interval=dt.timedelta(hours=1)
    )
    assert left == []
    assert [(r.table, r.status) for r in results] == [
        (new, snapshots.CREATED),
        (old, snapshots.CREATED),
        ("mystack-GoneTable", pitr.MISSING),
    ]
    assert names(ddb, new) == {f"{new}-{MARKER}-20261122T030000Z"}
    # the schedule fires twice (or the invocation is retried): no second backup
    again = snapshots.create_backups(
        ddb, [new], MARKER, retry=retry(), now=NOW + dt.timedelta(minutes=5), min_interval=dt.timedelta(hours=1)
    )
    assert again[0].status == snapshots.RECENT
    assert len(names(ddb, new)) == 1


def test_creation_gives_up_at_the_deadline_with_the_reason(ddb):
    table = make_table(ddb)
    inject(ddb, "CreateBackup", [UNAVAILABLE] * 1000)
    (result,) = snapshots.create_backups(ddb, [table], MARKER, retry=retry(60), now=NOW)
    assert result.status == pitr.FAILED and UNAVAILABLE in result.reason
    report = {"created": [result.as_dict()], "pruned": []}
    with pytest.raises(errors.SnapshotsIncomplete, match="mystack-GranulesTable: ContinuousBackups"):
        snapshots.check(report)


# ------------------------------------------------------------------ pruning
@pytest.fixture
def shelf(ddb):
    """A table with our old and new backups and foreign ones, old and new."""
    table = make_table(ddb)
    other_table = make_table(ddb, "mystack-FilesTable")
    old, new = NOW - dt.timedelta(days=120), NOW - dt.timedelta(days=3)
    arns = {
        "ours-old-1": backup(ddb, table, snapshots.backup_name(table, MARKER, old), old),
        "ours-old-2": backup(ddb, table, snapshots.backup_name(table, MARKER, old + dt.timedelta(days=7)), old),
        "ours-new": backup(ddb, table, snapshots.backup_name(table, MARKER, new), new),
        "manual-old": backup(ddb, table, "before-migration", old),
        "other-stack-old": backup(ddb, table, snapshots.backup_name(table, OTHER, old), old),
        "lookalike-old": backup(ddb, table, f"{table}-ddbb-20260101T000000Z", old),
        # named like ours but of another table: a hand-made copy, not ours
        "misnamed-old": backup(ddb, other_table, snapshots.backup_name(table, MARKER, old), old),
        # named in the past, made recently (an import or a hand-made copy): too young by creation time
        "old-name-new-backup": backup(ddb, table, snapshots.backup_name(table, MARKER, old - dt.timedelta(1)), new),
        "files-old": backup(ddb, other_table, snapshots.backup_name(other_table, MARKER, old), old),
    }
    return table, other_table, arns


def test_prune_deletes_only_our_own_old_backups(ddb, shelf):
    table, other_table, arns = shelf
    dry = snapshots.prune_backups(
        ddb, [table, other_table], MARKER, retention_days=90, retry=retry(), now=NOW, dry_run=True
    )
    assert {r.arn for r in dry} == {arns["ours-old-1"], arns["ours-old-2"]}
    assert {r.status for r in dry} == {snapshots.WOULD_DELETE}
    assert len(snapshots.list_backups(ddb, [table, other_table])) == len(arns)

    done = snapshots.prune_backups(ddb, [table, other_table], MARKER, retention_days=90, retry=retry(), now=NOW)
    assert {(r.arn, r.status) for r in done} == {
        (arns["ours-old-1"], snapshots.DELETED),
        (arns["ours-old-2"], snapshots.DELETED),
    }
    left = {s["BackupArn"] for s in snapshots.list_backups(ddb, [table, other_table])}
    assert left == set(arns.values()) - {arns["ours-old-1"], arns["ours-old-2"]}
    # "files-old" is the newest (and only) of ours for its table: the last backup is always kept
    assert arns["files-old"] in left


def test_prune_keeps_the_newest_even_when_all_are_old(ddb):
    table = make_table(ddb)
    old = NOW - dt.timedelta(days=400)
    made = [backup(ddb, table, snapshots.backup_name(table, MARKER, old + dt.timedelta(days=i)), old) for i in (0, 7)]
    done = snapshots.prune_backups(ddb, [table], MARKER, retention_days=30, retry=retry(), now=NOW, keep_latest=1)
    assert [r.arn for r in done] == [made[0]]
    with pytest.raises(BadInput):
        snapshots.prune_candidates([], MARKER, retention=dt.timedelta(days=1), keep_latest=0, now=NOW)


def test_prune_retries_a_busy_backup_and_another_stack_never_prunes_ours(ddb, shelf):
    table, _, _ = shelf
    assert snapshots.prune_backups(ddb, [table], OTHER, retention_days=1, retry=retry(), now=NOW) == []
    left = inject(ddb, "DeleteBackup", ["BackupInUseException", "LimitExceededException"])
    done = snapshots.prune_backups(ddb, [table], MARKER, retention_days=90, retry=retry(), now=NOW)
    assert left == [] and {r.status for r in done} == {snapshots.DELETED} and len(done) == 2


# ------------------------------------------------------------------ the scheduled run
def test_scheduled_run_backs_up_then_prunes(ddb):
    event = events.OnDemandBackupEvent.model_validate(json.loads((EVENTS / "on_demand_backups.json").read_text()))
    assert event.retention_days == 90 and len(event.names()) == 8
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 5, "Files": 5})
    granules = "mystack-GranulesTable"
    old = NOW - dt.timedelta(days=200)
    stale = backup(ddb, granules, snapshots.backup_name(granules, MARKER, old), old)
    report = snapshots.scheduled_run(ddb, event, MARKER, retry(), now=NOW)
    assert report["counts"] == {"created": 2, "recent": 0, "missing": 6, "failed": 0, "deleted": 1}
    assert report["pruned"][0]["arn"] == stale
    snapshots.check(report)
    assert names(ddb, granules) == {f"{granules}-{MARKER}-20261122T030000Z"}


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"cumulusPrefix": "x-"}, r"retentionDays\n.*Field required"),
        ({"cumulusPrefix": "x-", "retentionDays": 0}, r"retentionDays\n.*greater than or equal to 1"),
        ({"cumulusPrefix": "x-", "retentionDays": 9, "keepLatest": 0}, r"keepLatest\n.*greater than or equal to 1"),
        ({"tables": ["a-b"], "cumulusPrefix": "x-", "retentionDays": 9}, "give either 'tables' or 'cumulusPrefix'"),
    ],
)
def test_bad_events_are_refused(doc, why):
    with pytest.raises(ValidationError, match=why):
        events.OnDemandBackupEvent.model_validate(doc)


# ------------------------------------------------------------------ restore
def test_restore_from_backup_re_applies_ttl_stream_tags_and_pitr(ddb):
    from tests.unit.native.test_pitr import remember_recovery_period

    source = source_table(ddb)
    remember_recovery_period(ddb)
    (made,) = snapshots.create_backups(ddb, [source], MARKER, retry=retry(), now=NOW)
    out = snapshots.restore_from_backup(ddb, made.arn, "restore-GranulesTable", retry=retry())
    assert out["source"] == source and out["notes"] == []
    assert settings(ddb, "restore-GranulesTable") == settings(ddb, source)
    assert sorted(map(canonical, table_items(ddb, "restore-GranulesTable"))) == sorted(
        map(canonical, table_items(ddb, source))
    )
    with pytest.raises(TargetRefused):
        snapshots.restore_from_backup(ddb, made.arn, "restore-GranulesTable", retry=retry())
    with pytest.raises(errors.BackupNotFound):
        snapshots.restore_from_backup(ddb, made.arn + "0", "restore-x", retry=retry())


# ------------------------------------------------------------------ CLI
def test_cli_snapshots_create_list_prune_restore(ddb, capsys, monkeypatch):
    monkeypatch.setenv("DDB_BACKUP_STACK_NAME", "ddb-backup")
    table = make_table(ddb)
    old = NOW - dt.timedelta(days=200)
    stale = backup(ddb, table, snapshots.backup_name(table, MARKER, old), old)
    backup(ddb, table, "hand-made", old)
    assert run_cli("snapshots", "create", "--table", table) == 0
    assert "created" in capsys.readouterr().out
    assert run_cli("snapshots", "create", "--table", table, "--name", "before-migration") == 0
    capsys.readouterr()
    assert run_cli("--json", "snapshots", "list", "--table", table) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["ours"] for r in rows if not r["ours"]}.keys() == {"hand-made", "before-migration"}
    assert sum(r["ours"] for r in rows) == 2
    assert run_cli("snapshots", "list", "--ours") == 0
    listing = capsys.readouterr().out
    assert "hand-made" not in listing and MARKER in listing
    assert run_cli("--json", "snapshots", "prune", "--table", table, "--retention-days", "90", "--dry-run") == 0
    assert [r["arn"] for r in json.loads(capsys.readouterr().out)] == [stale]
    assert len(snapshots.list_backups(ddb, [table])) == 4
    assert run_cli("snapshots", "prune", "--table", table, "--retention-days", "90") == 0
    assert "deleted" in capsys.readouterr().out
    assert len(snapshots.list_backups(ddb, [table])) == 3
    # another stack name: nothing of ours, nothing pruned
    assert run_cli("--json", "snapshots", "prune", "--table", table, "--retention-days", "1", "--stack-name", "x") == 0
    assert json.loads(capsys.readouterr().out) == []
    arn = next(r["arn"] for r in rows if r["name"] == "before-migration")
    assert run_cli("snapshots", "restore", arn, "--to", "restore-GranulesTable") == 0
    assert "restored" in capsys.readouterr().out
    with pytest.raises(BadInput, match="does not exist"):
        run_cli("snapshots", "create", "--table", "mystack-NoTable")
    with pytest.raises(SystemExit):
        run_cli("snapshots", "prune", "--table", table)  # --retention-days is required
