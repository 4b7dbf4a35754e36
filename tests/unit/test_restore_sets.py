"""Issue 15: a restore never succeeds partially.

Set restores know the tables a run planned (points 1 and 6), parts are checked
before anything is created (point 4), a half-made target is marked and a
rerun finishes it (point 5), and the source guard compares identities
(point 10). Everything on moto, through the code the CLI and the state
machine share.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ddb_backup.aws.tables import describe
from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Settings, plan_run
from ddb_backup.backup.scan import ScanSettings, scan_segment
from ddb_backup.errors import BackupIncomplete, IntegrityError, TargetRefused
from ddb_backup.format.sources import open_source
from ddb_backup.restore.finalize import finalize_restore
from ddb_backup.restore.resume import MARK_KEY
from ddb_backup.restore.run import RestoreSettings, plan_restore
from ddb_backup_cli.files.restore import restore_sources
from devkit import sample
from tests.conftest import canonical, table_items

BUCKET = "sets"
ROOT = f"s3://{BUCKET}/backups/"
MAP = [("mystack-", "restore-")]
NIGHT1 = "20261121T030000Z-00000001"
NIGHT2 = "20261122T030000Z-00000002"
ALL = ["mystack-GranulesTable", "mystack-RulesTable", "mystack-FilesTable"]


@pytest.fixture
def world(ddb, s3):
    s3.create_bucket(Bucket=BUCKET)
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 30, "Rules": 5, "Files": 8})
    return ddb, s3


def _run(ddb: Any, s3: Any, tables: list[str], backup_id: str, finished: list[str] | None = None) -> dict[str, Any]:
    """A backup run of ``tables``, finalized only for ``finished`` (default: all): the others were killed."""
    run = plan_run(ddb, s3, Settings(bucket=BUCKET, prefix="backups/"), tables=tables, backup_id=backup_id, segments=2)
    for work in json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read()):
        task = dict(work)
        while not task.get("done"):
            task = scan_segment(ddb, s3, ScanSettings(BUCKET, part_bytes=2_000), task, time_left=lambda: 60.0)
    for table in run["tables"]:
        if finished is None or table["table"] in finished:
            finalize_table(s3, BUCKET, table["backupDir"])
    return run


def _restore(ddb: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], list[str]]:
    warnings: list[str] = []
    results = restore_sources(ddb, None, ROOT, mapping=MAP, warn=warnings.append, **kwargs)
    return results, warnings


def _targets(ddb: Any) -> set[str]:
    return {t for t in ddb.list_tables()["TableNames"] if t.startswith("restore-")}


# ------------------------------------------------------------------ point 1: sets know what was planned
def test_a_nightly_run_killed_after_its_first_table_is_skipped_for_the_last_complete_one(world):
    ddb, s3 = world
    _run(ddb, s3, ALL, NIGHT1)
    _run(ddb, s3, ALL, NIGHT2, finished=["mystack-GranulesTable"])
    results, warnings = _restore(ddb)
    assert {r["table"] for r in results} == {"restore-GranulesTable", "restore-RulesTable", "restore-FilesTable"}
    assert all(NIGHT1 in r["source"] for r in results)
    assert f"restoring backup run {NIGHT1}" in warnings
    assert any(NIGHT2 in w and "mystack-FilesTable, mystack-RulesTable" in w for w in warnings), warnings


def test_a_killed_run_with_nothing_older_is_refused_naming_every_missing_table(world):
    ddb, s3 = world
    _run(ddb, s3, ALL, NIGHT2, finished=["mystack-GranulesTable"])
    with pytest.raises(BackupIncomplete, match=r"mystack-FilesTable, mystack-RulesTable") as refused:
        _restore(ddb)
    assert "--allow-partial" in str(refused.value)
    assert _targets(ddb) == set()


def test_a_later_ad_hoc_backup_of_one_table_does_not_hide_the_nightly_set(world):
    ddb, s3 = world
    _run(ddb, s3, ALL, NIGHT1)
    _run(ddb, s3, ["mystack-GranulesTable"], NIGHT2)
    with pytest.raises(
        BackupIncomplete, match=r"backed up only mystack-GranulesTable; mystack-FilesTable, mystack-Rul"
    ):
        _restore(ddb)
    assert _targets(ddb) == set()
    results, _ = _restore(ddb, backup_id=NIGHT1)
    assert len(results) == 3
    # Asking for the one table by name takes the newest run that has it.
    results, _ = _restore(ddb, tables=["mystack-GranulesTable"], mode="overwrite")
    assert [(r["table"], NIGHT2 in r["source"]) for r in results] == [("restore-GranulesTable", True)]


def test_a_named_incomplete_run_is_refused_unless_a_partial_set_is_asked_for(world):
    ddb, s3 = world
    _run(ddb, s3, ALL, NIGHT2, finished=["mystack-GranulesTable"])
    with pytest.raises(
        BackupIncomplete,
        match=rf"backup run {NIGHT2} planned .*; no complete backup .* of mystack-FilesTable, mystack-RulesTable",
    ):
        _restore(ddb, backup_id=NIGHT2)
    assert _targets(ddb) == set()
    results, warnings = _restore(ddb, backup_id=NIGHT2, allow_partial=True)
    assert [r["table"] for r in results] == ["restore-GranulesTable"]
    assert sum("skipped" in w for w in warnings) == 2


def test_the_state_machine_plan_refuses_an_incomplete_set_and_names_the_run_it_takes(world):
    ddb, s3 = world
    _run(ddb, s3, ALL, NIGHT2, finished=["mystack-GranulesTable"])
    settings = RestoreSettings(bucket=BUCKET, prefix="backups/")
    request = {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}]}
    with pytest.raises(BackupIncomplete, match="mystack-FilesTable, mystack-RulesTable"):
        plan_restore(ddb, s3, settings, request, run_id="r1")
    assert _targets(ddb) == set()
    _run(ddb, s3, ALL, NIGHT1)  # an older complete run appears (a copy from elsewhere, say)
    planned = plan_restore(ddb, s3, settings, request, run_id="r2")
    assert planned["backupRun"] == NIGHT1
    assert any(NIGHT2 in w and "skipped" in w for w in planned["warnings"])


def test_a_table_directory_whose_newest_backup_is_incomplete_says_so(world):
    ddb, s3 = world
    _run(ddb, s3, ["mystack-RulesTable"], NIGHT1)
    _run(ddb, s3, ["mystack-RulesTable"], NIGHT2, finished=[])
    source = open_source(ROOT + "mystack-RulesTable/", s3)
    assert source.backup_id == NIGHT1
    assert any(f"the newest backup, {NIGHT2}, is incomplete" in w for w in source.warnings), source.warnings


# ------------------------------------------------------------------ point 6: names starting with '_'
def test_a_table_named_with_a_leading_underscore_restores_in_a_set(world):
    ddb, s3 = world
    sample.create_table(ddb, "_private", [("granuleId", "HASH")])
    sample.fill(ddb, "_private", sample.items([("granuleId", "HASH")], 7, seed=1))
    _run(ddb, s3, ["_private", "mystack-RulesTable"], NIGHT1)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="backups/").get("Contents", [])]
    assert f"backups/@ddb-backup/runs/{NIGHT1}/run.json" in keys
    assert not [k for k in keys if k.startswith("backups/_runs/")]
    results = restore_sources(ddb, None, ROOT, mapping=[("_", "copy-")])
    assert [(r["table"], r["items"]) for r in results] == [("copy-private", 7)]


# ------------------------------------------------------------------ point 4: parts checked before anything
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_truncated_second_part_writes_nothing(world, damage):
    ddb, s3 = world
    run = _run(ddb, s3, ["mystack-GranulesTable"], NIGHT1)
    directory = run["tables"][0]["backupDir"]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=directory + "manifest.json")["Body"].read())
    assert len(manifest["parts"]) >= 2
    second = directory + manifest["parts"][1]["key"]
    if damage == "missing":
        s3.delete_object(Bucket=BUCKET, Key=second)
    else:
        body = s3.get_object(Bucket=BUCKET, Key=second)["Body"].read()
        s3.put_object(Bucket=BUCKET, Key=second, Body=body[: len(body) // 2])
    error = BackupIncomplete if damage == "missing" else IntegrityError
    part = manifest["parts"][1]["key"]
    why = (  # a part gone from data/ is found when the manifest is read, a part cut short by the preflight
        rf"manifest.json: 1 part\(s\) it lists are missing from data/: \['{part}'\]"
        if damage == "missing"
        else rf"s3://{BUCKET}/{re.escape(second)}.*nothing was created or written"
    )
    with pytest.raises(error, match=why):
        restore_sources(ddb, None, f"s3://{BUCKET}/{directory}", table="restore-GranulesTable")
    with pytest.raises(error):
        plan_restore(ddb, s3, RestoreSettings(bucket=BUCKET), {"source": directory, "table": "restore-T"}, run_id="r1")
    assert _targets(ddb) == set() and "restore-T" not in ddb.list_tables()["TableNames"]


# ------------------------------------------------------------------ point 5: a half-made target
class _Killed(Exception):
    """The process dies here (a Lambda timeout, a ^C)."""


class _DiesAtTtl:
    """A DynamoDB client whose process dies when a restore turns TTL on (after CreateTable)."""

    def __init__(self, ddb: Any) -> None:
        self._ddb = ddb

    def __getattr__(self, name: str) -> Any:
        if name == "update_time_to_live":
            raise _Killed("killed between CreateTable and TTL")
        return getattr(self._ddb, name)


def _with_settings(ddb: Any, s3: Any) -> str:
    """A backup of a table with TTL and PITR on; its directory (a key in the bucket)."""
    ddb.update_time_to_live(
        TableName="mystack-RulesTable", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    ddb.update_continuous_backups(
        TableName="mystack-RulesTable", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    return str(_run(ddb, s3, ["mystack-RulesTable"], NIGHT1)["tables"][0]["backupDir"])


def _settings_on(ddb: Any, table: str) -> tuple[str, str]:
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"]
    pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return ttl, pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]


def _tags(ddb: Any, table: str) -> dict[str, str]:
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


def test_a_restore_killed_after_create_table_is_named_and_its_rerun_finishes_the_settings(world):
    ddb, s3 = world
    directory = _with_settings(ddb, s3)
    source = f"s3://{BUCKET}/{directory}"
    with pytest.raises(_Killed):
        restore_sources(_DiesAtTtl(ddb), None, source, table="restore-RulesTable")
    assert _tags(ddb, "restore-RulesTable")[MARK_KEY].startswith(f"backup={NIGHT1} run=cli-")
    with pytest.raises(TargetRefused) as refused:
        restore_sources(ddb, None, source, table="restore-RulesTable")
    message = str(refused.value)
    assert f"table restore-RulesTable holds a partial restore of backup {NIGHT1}, from run cli-" in message
    assert f"`ddb-backup restore {source} --table restore-RulesTable --mode overwrite`" in message
    warnings: list[str] = []
    results = restore_sources(ddb, None, source, table="restore-RulesTable", mode="overwrite", warn=warnings.append)
    assert results[0]["items"] == 5
    assert _settings_on(ddb, "restore-RulesTable") == ("ENABLED", "ENABLED")
    assert any("resuming it" in w and "TTL on expires" in w for w in warnings), warnings
    assert MARK_KEY not in _tags(ddb, "restore-RulesTable")
    assert sorted(map(canonical, table_items(ddb, "restore-RulesTable"))) == sorted(
        map(canonical, table_items(ddb, "mystack-RulesTable"))
    )


def test_a_retried_plan_finishes_the_tables_it_created(world):
    """Issue 11 finding 6: the plan step dies after CreateTable; its retry (same run id) applies TTL and PITR."""
    ddb, s3 = world
    directory = _with_settings(ddb, s3)
    settings = RestoreSettings(bucket=BUCKET)
    request = {"source": directory, "table": "restore-RulesTable"}
    with pytest.raises(_Killed):
        plan_restore(_DiesAtTtl(ddb), s3, settings, request, run_id="exec-1")
    assert _settings_on(ddb, "restore-RulesTable") == ("DISABLED", "DISABLED")
    planned = plan_restore(ddb, s3, settings, request, run_id="exec-1")
    assert planned["tables"][0]["created"] is True
    assert _settings_on(ddb, "restore-RulesTable") == ("ENABLED", "ENABLED")
    assert MARK_KEY in _tags(ddb, "restore-RulesTable")  # until finalize has checked every item
    with pytest.raises(TargetRefused, match=r"holds a partial restore of backup .* from run exec-1"):
        plan_restore(ddb, s3, settings, request, run_id="exec-2")


def test_finalize_removes_the_mark_only_when_every_item_is_there(world):
    ddb, s3 = world
    directory = _with_settings(ddb, s3)
    settings = RestoreSettings(bucket=BUCKET)
    planned = plan_restore(ddb, s3, settings, {"source": directory, "table": "restore-RulesTable"}, run_id="r1")
    with pytest.raises(BackupIncomplete.__base__):  # no part has run: the restore is incomplete
        finalize_restore(s3, BUCKET, planned["runPrefix"], ddb=ddb)
    assert MARK_KEY in _tags(ddb, "restore-RulesTable")


# ------------------------------------------------------------------ point 10: the guard compares identities
def test_an_edited_table_name_in_the_manifest_does_not_open_the_source_to_overwrite(world):
    ddb, s3 = world
    directory = _run(ddb, s3, ["mystack-RulesTable"], NIGHT1)["tables"][0]["backupDir"]
    key = directory + "manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    manifest["table"] = "someone-elses-table"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())
    before = sorted(map(canonical, table_items(ddb, "mystack-RulesTable")))
    with pytest.raises(TargetRefused, match=r"mystack-RulesTable is the table this backup was taken from \(same ARN"):
        restore_sources(ddb, None, f"s3://{BUCKET}/{directory}", table="mystack-RulesTable", mode="overwrite")
    assert sorted(map(canonical, table_items(ddb, "mystack-RulesTable"))) == before
    assert MARK_KEY not in _tags(ddb, "mystack-RulesTable")
    assert describe(ddb, "mystack-RulesTable")["Table"]["TableName"] == "mystack-RulesTable"
