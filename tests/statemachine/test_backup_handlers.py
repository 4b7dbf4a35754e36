"""The sample events in events/ drive the real handlers, in the order the state machine would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ddb_backup.aws.clients import client
from devkit import sample
from devkit.emulator import LambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _call(stack, logical_id: str, event: dict) -> dict:
    fn = next(f for f in stack.functions.values() if f.logical_id == logical_id)
    return fn.entry()(event, LambdaContext(fn))


def test_the_sample_events_run_a_backup_by_hand(stack):
    sample.create_cumulus_tables(client("dynamodb"), "mystack-", {"Granules": 40, "Collections": 3})
    run = _call(stack, "PlanBackupFunction", _event("plan_backup.json"))
    tables = json.loads(client("s3").get_object(Bucket=run["bucket"], Key=run["tablesKey"])["Body"].read())
    assert {t["table"] for t in tables} == {"mystack-GranulesTable", "mystack-CollectionsTable"}
    granules = next(t for t in tables if t["table"] == "mystack-GranulesTable")
    task = {
        **_event("scan_segment.json"),
        "backupDir": granules["backupDir"],
        "totalSegments": granules["totalSegments"],
    }
    for segment in range(granules["totalSegments"]):
        task = {**task, "segment": segment, "seq": 0, "nextPart": 0, "done": False}
        task.pop("startKey", None)
        while not task["done"]:
            task = _call(stack, "ScanSegmentFunction", task)
    final = _call(
        stack, "FinalizeBackupFunction", {**_event("finalize_backup.json"), "backupDir": granules["backupDir"]}
    )
    assert final["items"] == 40


@pytest.mark.parametrize(
    ("logical_id", "event", "field"),
    [
        ("PlanBackupFunction", {"request": {"tables": []}}, "tables"),
        ("PlanBackupFunction", {"request": {"tables": ["x"]}}, "not a valid DynamoDB table name"),
        ("ScanSegmentFunction", {**_event("scan_segment.json"), "segment": 5}, "not below totalSegments"),
        ("ScanSegmentFunction", {**_event("scan_segment.json"), "surprise": 1}, "surprise"),
        ("FinalizeBackupFunction", {"table": "mystack-GranulesTable"}, "backupDir"),
    ],
)
def test_handlers_reject_malformed_events_naming_the_field(stack, logical_id, event, field):
    with pytest.raises(ValidationError, match=field):
        _call(stack, logical_id, event)
