"""Plan and finalize of a restore run, called directly on moto (no state machine)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

from ddb_backup.errors import BadInput, BillingNotRestored, DdbBackupError, IntegrityError, RestoreIncomplete
from ddb_backup.restore.finalize import finalize_restore
from ddb_backup.restore.run import RestoreSettings, plan_restore, run_id_from
from ddb_backup.restore.write import note_key
from ddb_backup_cli.files.backup import backup_to_s3
from devkit import sample

BUCKET = "backups"
SETTINGS = RestoreSettings(bucket=BUCKET, prefix="backups/")
NOW = dt.datetime(2026, 11, 22, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def run(ddb, s3):
    s3.create_bucket(Bucket=BUCKET)
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 30, "Rules": 0})
    sample.create_cumulus_tables(ddb, "other-", {"Granules": 5})
    backup_to_s3(ddb, s3, BUCKET, "backups/", table_prefix="mystack-", segments=2)
    return ddb, s3


def _plan(ddb, s3, request, run_id="r1"):
    return plan_restore(ddb, s3, SETTINGS, request, run_id=run_id, now=NOW)


def test_a_set_plan_creates_the_mapped_tables_and_writes_the_work_list(run):
    ddb, s3 = run
    planned = _plan(ddb, s3, {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}]})
    assert planned["runPrefix"] == "backups/@ddb-backup/restores/r1/"
    assert {t["target"] for t in planned["tables"]} == {"restore-GranulesTable", "restore-RulesTable"}
    work = json.loads(s3.get_object(Bucket=BUCKET, Key=planned["workKey"])["Body"].read())
    assert len(work) == planned["parts"] >= 2
    assert {w["target"] for w in work} == {"restore-GranulesTable"}  # the empty table has no parts
    assert {"restore-GranulesTable", "restore-RulesTable"} <= set(ddb.list_tables()["TableNames"])


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"source": "backups/", "map": [{"from": "nope-", "to": "x-"}]}, "has no table the name mapping applies to"),
        ({"source": "backups/", "backupId": "20200101T000000Z-00000000", "map": []}, "no backup 20200101T000000Z"),
        ({"source": "backups/", "backupId": "20200101T000000Z-00000000", "table": "t-x"}, "'table' names one target"),
        ({"source": "backups/"}, "no backup found"),
    ],
)
def test_a_plan_that_cannot_be_made_says_why(run, request_, message):
    ddb, s3 = run
    with pytest.raises(DdbBackupError, match=message):
        _plan(ddb, s3, request_)


def test_a_mirror_plan_is_refused_before_any_table_is_made(run):
    """Issue 16: the state machine does not delete, so a mirror it planned would report success for less than asked."""
    ddb, s3 = run
    request = {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}], "mode": "mirror"}
    with pytest.raises(BadInput, match="command line only"):
        _plan(ddb, s3, request)
    assert not [t for t in ddb.list_tables()["TableNames"] if t.startswith("restore-")]


def test_two_sources_never_go_into_one_table(run):
    ddb, s3 = run
    mapping = [{"from": "mystack-Granules", "to": "one-Table"}, {"from": "mystack-Rules", "to": "one-Table"}]
    with pytest.raises(BadInput, match="several sources would be restored into one-TableTable"):
        _plan(ddb, s3, {"source": "backups/", "map": mapping})


def test_run_ids_come_from_the_execution_name():
    assert run_id_from("restore-20261122T040000Z-abc") == "restore-20261122T040000Z-abc"
    assert run_id_from(None, NOW).startswith("20261122T040000Z-")
    assert run_id_from("bad/name", NOW).startswith("20261122T040000Z-")


def _note(s3, planned, kind, part, doc):
    s3.put_object(
        Bucket=BUCKET,
        Key=note_key(planned["runPrefix"], kind, 0, part["id"]),
        Body=json.dumps(doc).encode(),
    )


def _granules_plan(ddb, s3):
    planned = _plan(ddb, s3, {"source": "backups/", "map": [{"from": "mystack-Granules", "to": "restore-Granules"}]})
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=planned["runPrefix"] + "plan.json")["Body"].read())
    return planned, plan["tables"][0]["parts"]


def test_finalize_reports_when_every_part_has_its_count(run):
    ddb, s3 = run
    planned, parts = _granules_plan(ddb, s3)
    for part in parts:
        _note(s3, planned, "results", part, {"items": part["items"], "duplicateKeys": 0, "retries": 2})
    report = finalize_restore(s3, BUCKET, planned["runPrefix"], now=NOW + dt.timedelta(seconds=42))
    assert report["status"] == "SUCCEEDED" and report["itemsRestored"] == 30 and report["seconds"] == 42
    assert report["tables"][0]["retries"] == 2 * len(parts) and report["deadLettered"] == 0
    saved = json.loads(s3.get_object(Bucket=BUCKET, Key=planned["runPrefix"] + "report.json")["Body"].read())
    assert saved["status"] == "SUCCEEDED"


def test_finalize_names_a_part_that_never_finished_and_one_that_failed(run):
    ddb, s3 = run
    planned, parts = _granules_plan(ddb, s3)
    _note(
        s3,
        planned,
        "errors",
        parts[0],
        {
            "error": "DeadLettered",
            "message": "2 items ... saved in s3://x",
            "deadLetter": "s3://x",
            "counts": {"deadLettered": 2},
        },
    )
    with pytest.raises(RestoreIncomplete) as info:
        finalize_restore(s3, BUCKET, planned["runPrefix"])
    message = str(info.value)
    assert f"part {parts[0]['id']} failed: DeadLettered: 2 items" in message
    assert f"part {parts[1]['id']} did not finish" in message
    saved = json.loads(s3.get_object(Bucket=BUCKET, Key=planned["runPrefix"] + "report.json")["Body"].read())
    assert saved["status"] == "FAILED" and saved["deadLettered"] == 2 and len(saved["problems"]) == len(parts)


def test_finalize_fails_on_a_count_that_differs_from_the_backup(run):
    ddb, s3 = run
    planned, parts = _granules_plan(ddb, s3)
    for part in parts:
        _note(s3, planned, "results", part, {"items": part["items"] - 1})
    with pytest.raises(IntegrityError, match=rf"part {parts[0]['id']} restored \d+ items, the backup says"):
        finalize_restore(s3, BUCKET, planned["runPrefix"])


def test_finalize_after_a_failed_map_always_fails(run):
    ddb, s3 = run
    planned, parts = _granules_plan(ddb, s3)
    for part in parts:
        _note(s3, planned, "results", part, {"items": part["items"]})
    with pytest.raises(RestoreIncomplete, match="the Distributed Map failed"):
        finalize_restore(s3, BUCKET, planned["runPrefix"], map_failed=True)


def test_the_state_carries_counts_and_keys_never_a_list_that_grows_with_the_tables():
    """A set of 1,000 tables: the plan's and the report's state stay a few hundred bytes (256 KiB is the limit)."""
    from ddb_backup.restore.run import for_the_state

    tables = [{"source": f"s3://b/backups/t{i:04}/", "target": f"restore-t{i:04}", "parts": 3} for i in range(1000)]
    run = {"runId": "r", "bucket": "b", "runPrefix": "p/", "parts": 3000, "tables": tables, "warnings": ["w"] * 1000}
    state = for_the_state(run, "p/report.json")
    assert len(json.dumps(state)) < 400
    assert state["tableCount"] == 1000 and state["warningCount"] == 1000 and state["report"] == "p/report.json"
    assert "tables" not in state and "warnings" not in state


@pytest.fixture
def provisioned_run(ddb, s3):
    s3.create_bucket(Bucket=BUCKET)
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 30})
    units = {"ReadCapacityUnits": 7, "WriteCapacityUnits": 9}
    ddb.update_table(TableName="mystack-GranulesTable", BillingMode="PROVISIONED", ProvisionedThroughput=units)
    backup_to_s3(ddb, s3, BUCKET, "backups/", table_prefix="mystack-", segments=2)
    return ddb, s3


def _loaded_on_demand(ddb, s3, request):
    planned = _plan(ddb, s3, {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}], **request})
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=planned["runPrefix"] + "plan.json")["Body"].read())
    for part in plan["tables"][0]["parts"]:
        _note(s3, planned, "results", part, {"items": part["items"]})
    return planned, plan


def test_a_target_loaded_on_demand_is_created_so_and_switched_back_by_finalize(provisioned_run):
    ddb, s3 = provisioned_run
    planned, plan = _loaded_on_demand(ddb, s3, {"loadBilling": "on-demand", "writeRate": 100})
    table = ddb.describe_table(TableName="restore-GranulesTable")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert plan["tables"][0]["writeRate"] == 100  # only the run's rate limits an on-demand load
    finalize_restore(s3, BUCKET, planned["runPrefix"], ddb=ddb)
    table = ddb.describe_table(TableName="restore-GranulesTable")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 9


def test_finalize_fails_naming_the_command_when_a_target_cannot_be_switched_back(provisioned_run):
    ddb, s3 = provisioned_run
    planned, _ = _loaded_on_demand(ddb, s3, {"loadBilling": "on-demand"})

    class Refusing:
        def update_table(self, **kwargs):
            raise ClientError({"Error": {"Code": "LimitExceededException", "Message": "too many"}}, "UpdateTable")

        def __getattr__(self, name):
            return getattr(ddb, name)

    with pytest.raises(BillingNotRestored) as raised:
        finalize_restore(s3, BUCKET, planned["runPrefix"], ddb=Refusing())
    message = str(raised.value)
    assert "every item was restored, but table restore-GranulesTable was loaded in on-demand mode" in message
    assert "aws dynamodb update-table --table-name restore-GranulesTable --billing-mode PROVISIONED" in message
    saved = json.loads(s3.get_object(Bucket=BUCKET, Key=planned["runPrefix"] + "report.json")["Body"].read())
    assert saved["status"] == "FAILED" and "still on-demand" in saved["problems"][0]


def test_a_write_percent_with_an_on_demand_load_is_refused_at_the_door():
    from pydantic import ValidationError

    from ddb_backup.events import RestoreRequest

    with pytest.raises(ValidationError, match="give 'writeRate'"):
        RestoreRequest.model_validate(
            {"source": "s3://b/x/", "table": "abc", "loadBilling": "on-demand", "writePercent": 50}
        )
    with pytest.raises(ValidationError, match=r"e\.g\. 90m"):
        RestoreRequest.model_validate({"source": "s3://b/x/", "table": "abc", "within": "soon"})
