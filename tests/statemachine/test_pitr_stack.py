"""PITR and on-demand backups on the local stack: deployed from template.yaml, custom resource, schedules.

New-table errors are injected in moto's backend (so every client the
functions create sees them), raised exactly as DynamoDB answers them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from ddb_backup import errors, events
from ddb_backup.aws.clients import client
from ddb_backup.aws.tables import describe
from ddb_backup.errors import DdbBackupError
from ddb_backup.native import snapshots
from ddb_backup_cli import main as cli
from devkit import sample
from devkit.emulator import LocalStack
from tests.conftest import canonical, table_items

PREFIX = "mystack-"
CUMULUS = [sample.table_name(PREFIX, short) for short in events.DEFAULT_CUMULUS_TABLES]
#: Short retry steps and budget, so waiting out injected errors takes milliseconds.
FAST = {"RETRY_BASE_SECONDS": "0.005", "TIME_BUDGET_SECONDS": "3"}
UNAVAILABLE = "ContinuousBackupsUnavailableException"


@pytest.fixture
def new_table_errors(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fail(operation, table, n)``: the backend answers the first ``n`` calls on ``table`` with new-table errors."""
    from moto.core.exceptions import JsonRESTError
    from moto.dynamodb.models import DynamoDBBackend

    def fail(operation: str, table: str, n: int, code: str = UNAVAILABLE) -> list[int]:
        original = getattr(DynamoDBBackend, operation)
        left = [n]

        def flaky(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
            if left[0] and table_name == table:
                left[0] -= 1
                raise JsonRESTError(code, f"Backups are being enabled for the table: {table_name}. Please retry later")
            return original(self, table_name, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, operation, flaky)
        return left

    return fail


def make_tables(names: list[str]) -> None:
    ddb = client("dynamodb")
    for name in names:
        short = name.removeprefix(PREFIX).removesuffix("Table")
        sample.create_table(ddb, name, sample.CUMULUS_TABLES.get(short, [("id", "HASH")]))


def pitr_status(table: str) -> str:
    desc = client("dynamodb").describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return str(desc["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"])


@pytest.fixture
def cumulus_stack() -> Iterator[LocalStack]:
    with LocalStack(parameters={"ManagedCumulusPrefix": PREFIX}, env=FAST) as local:
        yield local


# ------------------------------------------------------------------ deploy
def test_deploy_turns_pitr_on_for_every_table_including_one_created_a_moment_before(aws, new_table_errors):
    make_tables(CUMULUS)
    left = new_table_errors("update_continuous_backups", f"{PREFIX}GranulesTable", 4)
    with LocalStack(parameters={"ManagedCumulusPrefix": PREFIX}, env=FAST) as stack:
        assert left == [0]
        assert {t: pitr_status(t) for t in CUMULUS} == dict.fromkeys(CUMULUS, "ENABLED")
        assert stack.physical["EnsurePitrOnDeploy"] == "ddb-backup-local-EnsurePitrOnDeploy"
        update = stack.custom_resource("EnsurePitrOnDeploy", "Update")
        assert update["Data"] == {"AlreadyOn": "8", "Enabled": "0", "Missing": "0", "Failed": "0"}
        assert update["PhysicalResourceId"] == "ddb-backup-local-EnsurePitrOnDeploy"
        delete = stack.custom_resource("EnsurePitrOnDeploy", "Delete")
        assert delete["Status"] == "SUCCESS"
        assert {pitr_status(t) for t in CUMULUS} == {"ENABLED"}  # Delete leaves the tables alone


def test_a_custom_resource_that_answers_failed_fails_the_deploy(aws):
    params = {"ManagedTableNames": "not a table name!", "ManagedTableNamePattern": "not*"}
    stack = LocalStack(parameters=params, env=FAST)
    try:
        with pytest.raises(DdbBackupError, match=r"EnsurePitrOnDeploy Create FAILED: .*not a valid DynamoDB table"):
            stack.start()
    finally:
        stack.stop()


def test_the_default_stack_leaves_pitr_and_backups_alone(stack):
    assert "EnsurePitrFunction" not in stack.physical
    assert "OnDemandBackupsFunction" not in stack.physical
    assert stack.custom_resources == {}
    assert ("BackupStateMachine", "Nightly") in stack.schedules


# ------------------------------------------------------------------ the PITR schedule
def test_the_schedule_catches_tables_created_after_the_deploy(cumulus_stack, new_table_errors):
    assert cumulus_stack.custom_resources["EnsurePitrOnDeploy"]["physical"]  # answered with no tables yet
    make_tables([f"{PREFIX}GranulesTable", f"{PREFIX}FilesTable"])
    left = new_table_errors("update_continuous_backups", f"{PREFIX}FilesTable", 3)
    report = cumulus_stack.fire("EnsurePitrFunction", "Hourly")
    assert left == [0]
    assert report["counts"] == {"already-on": 0, "enabled": 2, "updated": 0, "missing": 6, "failed": 0}
    assert pitr_status(f"{PREFIX}FilesTable") == "ENABLED"
    again = cumulus_stack.fire("EnsurePitrFunction", "Hourly")
    assert again["counts"]["already-on"] == 2 and again["counts"]["enabled"] == 0


def test_the_schedule_fails_loudly_for_a_table_that_stays_unavailable(cumulus_stack, new_table_errors):
    make_tables([f"{PREFIX}GranulesTable", f"{PREFIX}RulesTable"])
    new_table_errors("update_continuous_backups", f"{PREFIX}RulesTable", 10**6)
    with pytest.raises(errors.PitrIncomplete, match=f"{PREFIX}RulesTable: {UNAVAILABLE}"):
        cumulus_stack.fire("EnsurePitrFunction", "Hourly")
    assert pitr_status(f"{PREFIX}GranulesTable") == "ENABLED"  # the others were done all the same


# ------------------------------------------------------------------ on-demand backups
def test_weekly_backups_and_retention_prune_only_the_stacks_own(aws, new_table_errors):
    granules, files = f"{PREFIX}GranulesTable", f"{PREFIX}FilesTable"
    make_tables([granules, files])
    ddb = client("dynamodb")
    marker = snapshots.stack_marker("ddb-backup-local")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=45)
    made = {
        "ours": ddb.create_backup(TableName=granules, BackupName=snapshots.backup_name(granules, marker, old)),
        "another stack's": ddb.create_backup(
            TableName=granules, BackupName=snapshots.backup_name(granules, snapshots.stack_marker("x"), old)
        ),
        "by hand": ddb.create_backup(TableName=granules, BackupName="before-migration"),
    }
    arns = {k: v["BackupDetails"]["BackupArn"] for k, v in made.items()}
    from tests.unit.native.test_snapshots_run import age

    for arn in arns.values():
        age(arn, old)
    params = {
        "ManagedTableNames": f"{granules},{files}",
        "ManagedTableNamePattern": f"{PREFIX}*",
        "OnDemandBackupRetentionDays": "30",
    }
    with LocalStack(parameters=params, env=FAST) as stack:
        left = new_table_errors("create_backup", files, 2)
        report = stack.fire("OnDemandBackupsFunction", "Weekly")
        assert left == [0]
        assert report["counts"] == {"created": 2, "recent": 0, "missing": 0, "failed": 0, "deleted": 1}
        assert [p["arn"] for p in report["pruned"]] == [arns["ours"]]
        remaining = {s["BackupArn"] for s in snapshots.list_backups(ddb, [granules, files])}
        assert arns["another stack's"] in remaining and arns["by hand"] in remaining
        assert arns["ours"] not in remaining
        ours = [s for s in snapshots.list_backups(ddb, [granules, files]) if snapshots.is_ours(s, marker)]
        assert len(ours) == 2
        again = stack.fire("OnDemandBackupsFunction", "Weekly")  # a duplicate delivery
        assert again["counts"]["recent"] == 2 and again["counts"]["created"] == 0


def test_a_disabled_schedule_does_not_fire(aws):
    with LocalStack(parameters={"ManagedCumulusPrefix": PREFIX, "OnDemandBackupsEnabled": "false"}) as stack:
        with pytest.raises(DdbBackupError, match="disabled"):
            stack.fire("OnDemandBackupsFunction", "Weekly")
        with pytest.raises(DdbBackupError, match="no schedule event"):
            stack.fire("OnDemandBackupsFunction", "Hourly")


def test_the_nightly_schedule_starts_the_backup_state_machine(aws):
    make_tables([f"{PREFIX}RulesTable"])
    sample.fill(client("dynamodb"), f"{PREFIX}RulesTable", sample.items(sample.CUMULUS_TABLES["Rules"], 30))
    with LocalStack(parameters={"TablePrefix": PREFIX}) as stack:
        desc = stack.wait(stack.fire("BackupStateMachine", "Nightly"))
        assert desc["status"] == "SUCCEEDED", desc.get("cause")


# ------------------------------------------------------------------ restore, through the main CLI
def test_pitr_restore_on_the_local_stack_comes_back_with_ttl_stream_and_tags(cumulus_stack, capsys):
    source, target = f"{PREFIX}GranulesTable", "restore-GranulesTable"
    make_tables([source])
    ddb = client("dynamodb")
    ddb.update_time_to_live(TableName=source, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    ddb.update_table(TableName=source, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    arn = ddb.describe_table(TableName=source)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "cost-center", "Value": "cumulus"}])
    sample.fill(ddb, source, sample.items(sample.CUMULUS_TABLES["Granules"], 40))
    cumulus_stack.fire("EnsurePitrFunction", "Hourly")

    argv = ["pitr", "restore", "--table", source, "--to", target, "--time", "2026-11-22T03:00:00Z"]
    assert cli.main(argv) == 0
    assert f"restored {source} at 2026-11-22T03:00:00+00:00 to {target}" in capsys.readouterr().out
    src, dst = describe(ddb, source), describe(ddb, target)
    assert dst["TimeToLive"] == src["TimeToLive"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    assert dst["Table"]["StreamSpecification"] == src["Table"]["StreamSpecification"]
    assert sorted(map(str, dst["Tags"])) == sorted(map(str, src["Tags"]))
    assert pitr_status(target) == "ENABLED"
    assert sorted(map(canonical, table_items(ddb, target))) == sorted(map(canonical, table_items(ddb, source)))
    assert cli.main(argv) == 1  # the target exists now
    assert f"table {target!r} already exists" in capsys.readouterr().err
