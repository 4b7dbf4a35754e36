"""Issue 24, point 11: estimates and the backup's progress when DescribeTable's figures are stale, and the time
from what the table serves now (provisioned units, WarmThroughput), not a flat 40,000 units a second."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pytest
from botocore.client import BaseClient
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from ddb_backup.backup.sample import may_be_stale, sample_size, spread
from ddb_backup.estimate import TABLE_QUOTA_UNITS, Plan, capacity_of, estimate, scan_read_units
from ddb_backup_cli.files.backup import backup_to_file
from ddb_backup_cli.main import main
from ddb_backup_cli.progress import Progress
from devkit import sample

TABLE, ITEMS = "fresh-Table", 40_000


def _item(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i:06d}"}, "v": {"S": "x" * 80}}


ITEM_BYTES = 2 + 7 + 1 + 80  # names and values, as DynamoDB sizes an item


@pytest.fixture
def fresh(ddb, monkeypatch) -> Any:
    """A table filled a moment ago with 40,000 items, whose DescribeTable says 0 items and 0 bytes, as AWS does
    for hours after a fill (moto counts at once: the answer is changed to what AWS would say)."""
    sample.create_table(ddb, TABLE, [("pk", "HASH")])
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    for i in range(ITEMS):  # straight into moto's table: 40,000 BatchWriteItem items would take 10 s
        backend.put_item(TABLE, _item(i))
    send = BaseClient._make_api_call

    def call(self: Any, operation: str, params: Any) -> Any:
        answer = send(self, operation, params)
        if operation == "DescribeTable":
            answer["Table"].update(ItemCount=0, TableSizeBytes=0)
        return answer

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return ddb


def test_a_freshly_filled_table_is_sampled_not_estimated_empty(fresh, capsys):
    assert main(["--json", "estimate", "--table", TABLE]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["items"] == pytest.approx(ITEMS, rel=0.1), row
    assert row["bytes"] == pytest.approx(ITEMS * ITEM_BYTES, rel=0.1), row
    assert row["figures"].startswith("sampled: 4 of 64 scan segments read"), row["figures"]
    assert "DescribeTable says 0 items and 0 bytes" in row["figures"]
    assert row["backup"]["cost"]["total"] > 0 and row["backup"]["readUnits"] > 400
    assert main(["estimate", "--table", TABLE]) == 0
    text = capsys.readouterr().out
    assert "(sampled: 4 of 64 scan segments read" in text and "capacity: WarmThroughput: 12,000 reads" in text, text


class Totals(Progress):
    """A progress that keeps every total it was given (a total the count passes is dropped from the display)."""

    def set_total(self, total: int | None, *, approximate: bool = False) -> None:
        self.given = [*getattr(self, "given", []), total]
        super().set_total(total, approximate=approximate)


def test_the_backup_of_a_freshly_filled_table_keeps_a_progress_total(fresh, tmp_path):
    shown = Totals(TABLE, stream=io.StringIO(), enabled=True)  # drawn, as on a terminal
    backup_to_file(fresh, TABLE, tmp_path / "t.json", progress=shown)
    assert shown.items == ITEMS
    assert shown.given[-1] == pytest.approx(ITEMS, rel=0.1), shown.given


def test_a_small_table_is_counted_whole(ddb):
    sample.create_table(ddb, "small-Table", [("pk", "HASH")])
    sample.fill(ddb, "small-Table", (_item(i) for i in range(30)))
    found = sample_size(ddb, "small-Table")
    assert found["exact"] and found["items"] == 30 and found["bytes"] == 30 * ITEM_BYTES


def test_figures_that_hold_are_used_and_said_so():
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert may_be_stale({"ItemCount": 5, "TableSizeBytes": 500, "CreationDateTime": old}) is None
    assert "0 items" in (may_be_stale({"ItemCount": 0, "TableSizeBytes": 0, "CreationDateTime": old}) or "")
    new = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert "created 1.0 h ago" in (may_be_stale({"ItemCount": 5, "TableSizeBytes": 500, "CreationDateTime": new}) or "")


def test_spread_reads_every_segment_once_and_far_apart_first():
    assert sorted(spread(64)) == list(range(64)) and list(spread(64))[:4] == [0, 32, 16, 48]
    assert sorted(spread(1000)) == list(range(1000))


ON_DEMAND = {"BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}


def test_capacity_is_what_the_table_serves_now():
    provisioned = capacity_of({"ProvisionedThroughput": {"ReadCapacityUnits": 1000, "WriteCapacityUnits": 200}})
    assert (provisioned.read, provisioned.write, provisioned.ramps) == (1000, 200, False)
    warm = capacity_of({**ON_DEMAND, "WarmThroughput": {"ReadUnitsPerSecond": 30000, "WriteUnitsPerSecond": 9000}})
    assert (warm.read, warm.write, warm.ramps) == (30000, 9000, True) and warm.source.startswith("WarmThroughput")
    absent = capacity_of(ON_DEMAND)  # moto, an older API: no WarmThroughput
    assert (absent.read, absent.write) == (12000, 4000) and absent.source.startswith("no WarmThroughput"), absent
    capped = capacity_of({**ON_DEMAND, "OnDemandThroughput": {"MaxReadRequestUnits": 500}})
    assert (capped.read, capped.write) == (500, 4000)


def test_the_time_follows_the_capacity_not_a_flat_quota():
    size = 1024**4
    units = scan_read_units(size)
    provisioned = capacity_of({"ProvisionedThroughput": {"ReadCapacityUnits": 10000, "WriteCapacityUnits": 10}})
    backup = estimate(10**9, size, Plan(capacity=provisioned))["backup"]
    assert backup["seconds"] == pytest.approx(units / 10000, rel=0.01)
    new = estimate(10**9, size, Plan())["backup"]  # a new on-demand table: 12,000, 24,000, then the quota
    ramp = 1800 * 12000 + 1800 * 24000
    assert new["seconds"] == pytest.approx(3600 + (units - ramp) / TABLE_QUOTA_UNITS, rel=0.01)
    assert new["seconds"] > units / TABLE_QUOTA_UNITS * 1.5
