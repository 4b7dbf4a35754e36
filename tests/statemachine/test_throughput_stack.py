"""PROVISIONED tables on the local stack throttle at their units: backup and restore meet it and lose nothing.

The source is filled at high capacity, then set to a few units, so the backup's Scan pages and the
restore's writes (into a target created with the source's capacity) are refused and left unprocessed
for real; the counters of :class:`devkit.strict.throughput.Throughput` prove they were.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import backup_summaries, canonical, table_items

SOURCE = "mystack-BlobsTable"
ITEMS = 120  # under 1 KiB each: one write unit, 120 units in all


def _provisioned_source(ddb: Any, rcu: int, wcu: int) -> list[str]:
    """A PROVISIONED table with a binary hash key and every attribute type, filled, then set to (rcu, wcu)."""
    ddb.create_table(
        TableName=SOURCE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "B"}],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 10_000, "WriteCapacityUnits": 10_000},
    )
    rng = random.Random(11)
    items = []
    for i, item in enumerate(sample.items([("k", "HASH")], ITEMS, seed=5, size=450)):
        item["k"] = {"B": bytes([i % 256, 0, 255, 10]) + rng.randbytes(6)}
        items.append(item)
    sample.fill(ddb, SOURCE, iter(items))
    ddb.update_table(TableName=SOURCE, ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu})
    return sorted(map(canonical, items))


def _exact(ddb: Any, target: str, expected: list[str]) -> None:
    got = Counter(map(canonical, table_items(ddb, target)))
    assert got == Counter(expected), f"{target}: {sum((Counter(expected) - got).values())} items missing or changed"
    table = ddb.describe_table(TableName=target)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 20


def test_state_machines_back_up_and_restore_provisioned_tables_through_throttling(stack, monkeypatch):
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "20")  # six pages of ~2.5 read units at 4 a second
    monkeypatch.setenv("READ_PERCENT", "0")  # full speed: the stack's default (50 %) keeps a scan under the throttle
    monkeypatch.setenv("WRITE_PERCENT", "0")  # and the restore: at its default (50 %) it throttled only at first
    ddb = client("dynamodb")
    expected = _provisioned_source(ddb, rcu=4, wcu=20)
    desc = stack.run("BackupStateMachine", {"tables": [SOURCE], "segments": 2})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert backup_summaries(desc)[0]["items"] == ITEMS
    throughput = stack.enforcement.throughput
    assert throughput.throttled[f"{SOURCE}:read"] > 0, dict(throughput.throttled)
    desc = stack.run("RestoreStateMachine", {"source": "backups/", "map": [{"from": "mystack-", "to": "restore-"}]})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert desc["output"]["itemsRestored"] == ITEMS and desc["output"]["deadLettered"] == 0
    assert throughput.throttled["restore-BlobsTable:write"] > 0, dict(throughput.throttled)
    assert throughput.consumed["restore-BlobsTable:write"] >= ITEMS
    _exact(ddb, "restore-BlobsTable", expected)


def test_the_cli_restores_into_a_provisioned_table_through_throttling(stack, tmp_path):
    """The CLI's restore is write_items and the fast write path, as in the Lambda; its target throttles."""
    ddb = client("dynamodb")
    expected = _provisioned_source(ddb, rcu=1000, wcu=20)
    assert main(["backup", "--table", SOURCE, "--dir", str(tmp_path), "-q"]) == 0
    throughput = stack.enforcement.throughput
    assert main(["restore", str(tmp_path), "--map", "mystack-=cli-", "-q"]) == 0
    assert throughput.throttled["cli-BlobsTable:write"] > 0, dict(throughput.throttled)
    _exact(ddb, "cli-BlobsTable", expected)
