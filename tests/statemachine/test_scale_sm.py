"""Runs past Step Functions' 256 KiB payload quota, on the strict local stack.

Every Map result is held to 256 KiB there, as on AWS: a Distributed Map without
a ResultWriter, or state that grows with the number of tables, fails these runs
with ``States.DataLimitExceeded`` after all the data was written.

Scaled down: the quota and the work items by the same factor (32 KiB and 150, for
256 KiB and 1,200), so a state that grows with the work items outgrows it just as
it would on AWS, at an eighth of the runs' cost.
"""

from __future__ import annotations

import json

import pytest
from moto.stepfunctions.parser import quotas

from ddb_backup.aws.clients import client
from devkit import sample

pytestmark = pytest.mark.slow

SCALE = 8
WORK_ITEMS = 1200 // SCALE


@pytest.fixture(autouse=True)
def _scaled_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step Functions' payload quota (moto reads it at every check), scaled down with WORK_ITEMS."""
    monkeypatch.setattr(quotas, "MAX_STATE_SIZE_UTF8_BYTES", quotas.MAX_STATE_SIZE_UTF8_BYTES // SCALE)


def test_a_backup_of_1200_segments_finishes_with_a_small_output(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 30, "Providers": 0})
    desc = stack.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": WORK_ITEMS // 2}, timeout=1200)
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    output = desc["output"]
    assert output["tables"] == 2 and output["segments"] == WORK_ITEMS and output["items"] == 30
    assert len(json.dumps(output)) < 2048
    bucket = stack.outputs["BackupBucketName"]
    report = json.loads(s3.get_object(Bucket=bucket, Key=output["report"])["Body"].read())
    assert {t["table"] for t in report["tables"]} == {"mystack-RulesTable", "mystack-ProvidersTable"}
    for row in report["tables"]:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=row["manifest"])["Body"].read())
        assert manifest["segments"] == WORK_ITEMS // 2 and manifest["totals"]["items"] == row["items"]


def test_a_restore_of_1200_parts_finishes(stack, monkeypatch):
    """One-item parts: the backup's single scan writes a part per page, the restore runs a child per part."""
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "1")
    monkeypatch.setenv("PART_BYTES", "1")
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": WORK_ITEMS})
    backup = stack.run("BackupStateMachine", {"tables": ["mystack-RulesTable"], "segments": 1}, timeout=1200)
    assert backup["status"] == "SUCCEEDED", backup.get("cause")
    assert backup["output"]["parts"] == WORK_ITEMS
    desc = stack.run("RestoreStateMachine", {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}]},
                     timeout=1200)  # fmt: skip
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert desc["output"]["itemsRestored"] == WORK_ITEMS
    count = ddb.scan(TableName="restore-RulesTable", Select="COUNT")["Count"]
    assert count == WORK_ITEMS
