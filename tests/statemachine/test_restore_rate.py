"""Restore write rate and load billing on the local stack, whose PROVISIONED tables throttle at their units.

The restore state machine gives every part its share of the table's write
rate (``writeRate``, ``writePercent``, else the stack's ``WritePercent``), and
``loadBilling: on-demand`` loads a provisioned target on-demand, then switches
it back to its provisioned units.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from devkit import sample
from tests.conftest import canonical, table_items

SOURCE = "mystack-GranulesTable"
TARGET = "restore-GranulesTable"
ITEMS = 300  # ~700 bytes each: one write unit apiece


def _source(ddb: Any, wcu: int) -> list[str]:
    """A PROVISIONED source of ITEMS one-unit items, set to ``wcu`` write units once filled (what a restore copies)."""
    sample.create_table(ddb, SOURCE, [("pk", "HASH")])
    items = [{"pk": {"S": f"g-{i:05d}"}, "body": {"S": "x" * 650}} for i in range(ITEMS)]
    sample.fill(ddb, SOURCE, iter(items))
    units = {"ReadCapacityUnits": 10_000, "WriteCapacityUnits": wcu}
    ddb.update_table(TableName=SOURCE, BillingMode="PROVISIONED", ProvisionedThroughput=units)
    return sorted(map(canonical, items))


def _backup(stack: Any) -> None:
    desc = stack.run("BackupStateMachine", {"tables": [SOURCE], "segments": 2})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")


def _restore(stack: Any, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    desc = stack.run(
        "RestoreStateMachine", {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}], **request}
    )
    return desc, time.monotonic() - started


def _run_file(stack: Any, desc: dict[str, Any], name: str) -> Any:
    run_id = desc["executionArn"].rsplit(":", 1)[-1]
    key = f"backups/@ddb-backup/restores/{run_id}/{name}"
    return json.loads(client("s3").get_object(Bucket=stack.outputs["BackupBucketName"], Key=key)["Body"].read())


def _same(ddb: Any, expected: list[str]) -> None:
    got = Counter(map(canonical, table_items(ddb, TARGET)))
    assert got == Counter(expected), f"{sum((Counter(expected) - got).values())} items missing or changed"


def test_a_restore_at_a_set_write_rate_holds_it_shared_by_its_parts_and_loses_nothing(stack, monkeypatch):
    monkeypatch.setenv("WRITE_PERCENT", "0")  # only the run's writeRate limits it
    ddb = client("dynamodb")
    expected = _source(ddb, wcu=1000)  # the target takes 1000 a second: only the rate holds the restore back
    _backup(stack)
    desc, seconds = _restore(stack, {"writeRate": 40})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    _same(ddb, expected)
    parts = _run_file(stack, desc, "parts.json")
    assert len(parts) > 1 and [p["writeRate"] for p in parts] == [40 / len(parts)] * len(parts)  # shared by all
    consumed = stack.enforcement.throughput.consumed[f"{TARGET}:write"]
    assert consumed >= ITEMS
    # Each part's first request goes out before its bucket has earned anything (25 units each), then 40 a second.
    assert consumed / seconds <= 40 * 1.1 + 25 * len(parts) / seconds, (consumed, seconds)
    assert stack.enforcement.throughput.throttled[f"{TARGET}:write"] == 0
    print(f"restore at writeRate 40: {consumed:.0f} units in {seconds:.2f} s = {consumed / seconds:.1f} units/s")


def test_the_stack_write_percent_is_a_share_of_the_provisioned_target(stack):
    ddb = client("dynamodb")
    _source(ddb, wcu=300)  # (30 units took 20 s to write the 300 items at the rate this test only reads)
    _backup(stack)
    desc, _ = _restore(stack, {})  # WritePercent 50 from template.yaml: 150 units a second for the table
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert _run_file(stack, desc, "plan.json")["tables"][0]["writeRate"] == 150
    assert [p["writeRate"] for p in _run_file(stack, desc, "parts.json")] == [37.5] * 4


@pytest.mark.parametrize("existing", [False, True], ids=["created", "existing"])
def test_load_billing_on_demand_loads_without_throttling_then_puts_the_units_back(stack, monkeypatch, existing):
    monkeypatch.setenv("WRITE_PERCENT", "0")
    ddb = client("dynamodb")
    expected = _source(ddb, wcu=2)  # provisioned at 2 units a second: 300 items would throttle for minutes
    _backup(stack)
    units = {"ReadCapacityUnits": 10_000, "WriteCapacityUnits": 2}
    if existing:
        units = {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4}
        ddb.create_table(
            TableName=TARGET,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PROVISIONED",
            ProvisionedThroughput=units,
        )
    desc, _ = _restore(stack, {"loadBilling": "on-demand"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    _same(ddb, expected)
    assert stack.enforcement.throughput.throttled[f"{TARGET}:write"] == 0
    table = ddb.describe_table(TableName=TARGET)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert {k: table["ProvisionedThroughput"][k] for k in units} == units
    assert _run_file(stack, desc, "plan.json")["tables"][0]["loadBilling"]["ProvisionedThroughput"] == units


def test_the_cli_loads_on_demand_and_puts_the_units_back(stack, tmp_path):
    from ddb_backup_cli.main import main

    ddb = client("dynamodb")
    expected = _source(ddb, wcu=2)
    assert main(["backup", "--table", SOURCE, "--dir", str(tmp_path), "-q"]) == 0
    assert main(["restore", str(tmp_path), "--map", "mystack-=restore-", "--load-billing", "on-demand", "-q"]) == 0
    _same(ddb, expected)
    assert stack.enforcement.throughput.throttled[f"{TARGET}:write"] == 0
    table = ddb.describe_table(TableName=TARGET)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 2
