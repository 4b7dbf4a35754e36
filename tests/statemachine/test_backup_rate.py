"""Backup rate control on the local stack, whose PROVISIONED tables throttle at their units (devkit.strict.throughput).

moto reports a Scan page's ConsumedCapacity as 1.0 whatever its size; pages
of 10 items of ~700 bytes are ~7 KiB, which is 1.0 read unit eventually
consistent, so what moto reports is what the local stack charges.
"""

from __future__ import annotations

from typing import Any

import pytest

from ddb_backup.aws.clients import client
from devkit import sample
from tests.conftest import backup_items, backup_summaries

TABLE = "prod-GranulesTable"
ITEMS = 600


def _provisioned_table(read_units: int) -> None:
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": read_units, "WriteCapacityUnits": 1000},
    )
    sample.fill(ddb, TABLE, ({"pk": {"S": f"g-{i:05d}"}, "body": {"S": "x" * 650}} for i in range(ITEMS)))


def _backup(stack: Any, request: dict[str, Any]) -> tuple[int, int]:
    """Run a backup of TABLE: (reads throttled, items saved)."""
    before = stack.enforcement.throughput.throttled[f"{TABLE}:read"]
    desc = stack.run("BackupStateMachine", {"tables": [TABLE], "segments": 1, **request})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    (summary,) = backup_summaries(desc)
    saved = sum(1 for _ in backup_items(client("s3"), stack.outputs["BackupBucketName"], summary["manifest"]))
    return stack.enforcement.throughput.throttled[f"{TABLE}:read"] - before, saved


@pytest.fixture
def provisioned(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "10")
    _provisioned_table(10)  # 60 pages: full speed throttles unless slower than 12 pages a second
    return stack


def test_full_speed_is_throttled_and_half_the_read_capacity_is_not(provisioned, monkeypatch):
    monkeypatch.setenv("READ_PERCENT", "0")  # the stack's default off: full speed
    throttled, saved = _backup(provisioned, {})
    assert saved == ITEMS
    assert throttled > 0, "the local stack should throttle a full-speed scan of a 10-unit table"
    provisioned.enforcement.throughput.buckets.clear()  # a full bucket again
    throttled, saved = _backup(provisioned, {"readPercent": 50})
    assert saved == ITEMS
    assert throttled == 0


def test_the_stack_default_read_percent_applies_to_provisioned_tables(provisioned):
    throttled, saved = _backup(provisioned, {})  # ReadPercent 50 from template.yaml
    assert (throttled, saved) == (0, ITEMS)
