"""``ddb-backup status --stack-name S``: the dashboard's facts, read from the stack's bucket and state machines."""

from __future__ import annotations

import json

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.changes.archive import record_gap
from ddb_backup_cli.main import main
from devkit import sample
from devkit.serve import register_outputs

COUNTS = {"Granules": 40, "Rules": 7}


@pytest.fixture
def deployed(stack):
    """The local stack, registered in CloudFormation under its name as a deployed one is, with two tables."""
    register_outputs(stack)
    sample.create_cumulus_tables(client("dynamodb"), "mystack-", COUNTS)
    return stack


def _status(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["status", "--stack-name", "ddb-backup-local", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_after_a_nightly_backup_every_table_is_fresh_with_its_items(deployed, capsys):
    desc = deployed.run("BackupStateMachine", {"tablePrefix": "mystack-"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")

    code, out, _ = _status(capsys, "--json")
    assert code == 0
    status = json.loads(out)
    assert (status["bucket"], status["prefix"], status["maxBackupAgeHours"]) == (
        deployed.outputs["BackupBucketName"],
        "backups/",
        26.0,
    )
    tables = {t["table"]: t for t in status["tables"]}
    assert set(tables) == {"mystack-GranulesTable", "mystack-RulesTable"}
    for short, count in COUNTS.items():
        t = tables[f"mystack-{short}Table"]
        assert t["newestComplete"]["backupId"] == desc["output"]["backupId"] == t["latest"]
        assert t["newestComplete"]["items"] == count and t["newestComplete"]["bytes"] > 0
        assert t["latestComplete"] and not t["stale"] and t["ageHours"] < 0.5 and t["seconds"] >= 0
        assert t["gaps"] == []
    backup = status["runs"]["backup"]
    assert backup["last"]["status"] == "SUCCEEDED" and backup["counts"] == {"SUCCEEDED": 1}
    assert backup["last"]["seconds"] >= 0
    assert status["runs"]["restore"]["last"] is None and status["stale"] == []

    code, out, _ = _status(capsys)
    assert code == 0
    assert "stale after 26 h" in out and "last backup run: " in out and "SUCCEEDED" in out
    [granules] = [line for line in out.splitlines() if line.startswith("mystack-GranulesTable")]
    assert desc["output"]["backupId"] in granules and " 40 " in granules and "complete" in granules


def test_a_table_never_backed_up_whole_is_stale_and_gaps_and_failed_restores_are_shown(deployed, capsys):
    s3, bucket = client("s3"), deployed.outputs["BackupBucketName"]
    assert deployed.run("BackupStateMachine", {"tables": ["mystack-GranulesTable"]})["status"] == "SUCCEEDED"
    sample.create_table(client("dynamodb"), "mystack-PdrsTable", sample.CUMULUS_TABLES["Pdrs"])  # it exists
    s3.put_object(Bucket=bucket, Key="backups/mystack-PdrsTable/20261122T030000Z-0000000f/plan.json", Body=b"{}")
    record_gap(
        s3,
        bucket,
        "backups/mystack-GranulesTable/",
        "shard-1",
        "2026-11-22T03:00:00+00:00",
        "2026-11-22T04:00:00+00:00",
        "dropped batch",
    )
    bad = {"source": f"s3://{bucket}/backups/mystack-NopeTable/20261122T030000Z-00000000/", "table": "restore-x"}
    assert deployed.run("RestoreStateMachine", bad)["status"] == "FAILED"

    code, out, _ = _status(capsys, "--json")
    assert code == 1  # a stale table: scripts and cron see it
    status = json.loads(out)
    tables = {t["table"]: t for t in status["tables"]}
    assert status["stale"] == ["mystack-PdrsTable"]
    pdrs = tables["mystack-PdrsTable"]
    assert (pdrs["newestComplete"], pdrs["latestComplete"], pdrs["ageHours"]) == (None, False, float("inf"))
    assert [g["reason"] for g in tables["mystack-GranulesTable"]["gaps"]] == ["dropped batch"]
    assert status["runs"]["restore"]["last"]["status"] == "FAILED"

    code, out, _ = _status(capsys)
    assert code == 1
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("mystack-")}
    assert "never" in lines["mystack-PdrsTable"] and "INCOMPLETE" in lines["mystack-PdrsTable"]
    assert lines["mystack-PdrsTable"].rstrip().endswith("STALE")
    assert lines["mystack-GranulesTable"].split()[-1] == "1"  # one gap
    assert "last restore run: " in out and "FAILED" in out and "STALE: mystack-PdrsTable" in out


def test_a_deleted_tables_backups_are_listed_but_never_stale(deployed, capsys):
    """Its backups stay until the bucket's lifecycle rule expires them; like the stale-backup alarm, status
    does not call it stale (it did, exiting 1 every day until then)."""
    desc = deployed.run("BackupStateMachine", {"tablePrefix": "mystack-"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    ddb = client("dynamodb")
    ddb.delete_table(TableName="mystack-RulesTable")
    ddb.get_waiter("table_not_exists").wait(TableName="mystack-RulesTable", WaiterConfig={"Delay": 1})
    code, out, _ = _status(capsys, "--json", "--max-age-hours", "0")
    status = json.loads(out)
    tables = {t["table"]: t for t in status["tables"]}
    assert tables["mystack-RulesTable"]["deleted"] and not tables["mystack-RulesTable"]["stale"]
    assert status["stale"] == ["mystack-GranulesTable"] and not tables["mystack-GranulesTable"]["deleted"]
    assert code == 1
    code, out, _ = _status(capsys, "--max-age-hours", "0")
    [rules] = [line for line in out.splitlines() if line.startswith("mystack-RulesTable")]
    assert rules.endswith("(table deleted)") and "STALE" not in rules


def test_a_threshold_given_on_the_command_line_overrides_the_stacks(deployed, capsys):
    assert deployed.run("BackupStateMachine", {"tables": ["mystack-RulesTable"]})["status"] == "SUCCEEDED"
    code, out, _ = _status(capsys, "--json", "--max-age-hours", "0")
    assert code == 1 and json.loads(out)["stale"] == ["mystack-RulesTable"]


def test_a_stack_that_does_not_exist_is_named_with_what_to_check(deployed, capsys):
    capsys.readouterr()
    assert main(["status", "--stack-name", "no-such-stack"]) == 1
    err = capsys.readouterr().err
    assert "no-such-stack" in err and "check --stack-name" in err
