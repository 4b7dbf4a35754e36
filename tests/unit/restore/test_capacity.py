"""Load billing and pre-warm of restore targets (ddb_backup.restore.capacity) on moto."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddb_backup import names
from ddb_backup.errors import BadInput, BillingNotRestored, TargetRefused
from ddb_backup.restore import capacity
from ddb_backup.restore.target import prepare_target

KEYS = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "g", "AttributeType": "S"},
    ],
}
GSI = {
    "IndexName": "by-g",
    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
    "Projection": {"ProjectionType": "ALL"},
}


def _provisioned(ddb: Any, name: str, units: tuple[int, int] = (3, 4), index_units: tuple[int, int] = (5, 6)) -> None:
    ddb.create_table(
        TableName=name,
        **KEYS,
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": units[0], "WriteCapacityUnits": units[1]},
        GlobalSecondaryIndexes=[
            {
                **GSI,
                "ProvisionedThroughput": {"ReadCapacityUnits": index_units[0], "WriteCapacityUnits": index_units[1]},
            }
        ],
    )


class _Refusing:
    """A DynamoDB client whose UpdateTable to ``mode`` fails for ``table`` (as a fifth switch in 24 h would)."""

    def __init__(self, ddb: Any, table: str, mode: str, code: str = "LimitExceededException") -> None:
        self.ddb, self.table, self.mode, self.code = ddb, table, mode, code

    def update_table(self, **kwargs: Any) -> Any:
        if kwargs["TableName"] == self.table and kwargs.get("BillingMode") == self.mode:
            error = {"Error": {"Code": self.code, "Message": "Subscriber limit exceeded: switches to on-demand"}}
            raise ClientError(error, "UpdateTable")
        return self.ddb.update_table(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ddb, name)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("3600", 3600), ("45s", 45)]
)
def test_durations(text, seconds):
    assert names.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "2 hours", "0s", "-5m", "1.5h"])
def test_bad_durations_are_refused_with_an_example(text):
    with pytest.raises(BadInput, match=r"e\.g\. 90m, 2h|at least one second"):
        names.parse_duration(text)


def test_warm_throughput_is_the_backups_write_units_over_the_duration_capped_at_the_table_quota():
    # 100 M items of 1 KB: 100 M write units; in an hour, 27,778 a second.
    assert capacity.warm_throughput(100_000_000, 100_000_000_000, 3600)[0] == {"WriteUnitsPerSecond": 27_778}
    # 2 KB items count two units each.
    assert capacity.warm_throughput(50_000_000, 100_000_000_000, 3600)[0] == {"WriteUnitsPerSecond": 27_778}
    warm, note = capacity.warm_throughput(1_000_000_000, 10**12, 3600)  # 277,778 a second: over the quota
    assert warm == {"WriteUnitsPerSecond": 40_000}
    assert "capped at the per-table quota of 40,000" in note and "25,000 s" in note
    warm, note = capacity.warm_throughput(1_000_000, 10**9, 3600)  # 278 a second: a new table takes 4,000
    assert warm is None and "no pre-warm needed" in note


def test_a_created_on_demand_target_is_pre_warmed(ddb):
    keys = {**KEYS, "AttributeDefinitions": KEYS["AttributeDefinitions"][:1]}
    saved = {"Table": {"TableName": "src", **keys, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}}
    warm, _ = capacity.warm_throughput(100_000_000, 100_000_000_000, 3600)
    adjust = lambda args: capacity.create_on_demand(args, warm)  # noqa: E731
    prepare_target(ddb, "target", description=saved, adjust=adjust, sleep=lambda s: None)
    table = ddb.describe_table(TableName="target")["Table"]
    assert table["WarmThroughput"]["WriteUnitsPerSecond"] == 27_778
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_a_provisioned_backup_is_created_on_demand_for_the_load_then_gets_its_units(ddb):
    _provisioned(ddb, "src", (7, 8), (9, 10))
    saved = {"Table": ddb.describe_table(TableName="src")["Table"]}
    plan = capacity.load_plan(ddb, "target", saved)
    assert plan == {"switch": False, "restore": capacity.provisioned_spec(saved["Table"])}
    prepare_target(ddb, "target", description=saved, adjust=capacity.create_on_demand, sleep=lambda s: None)
    table = ddb.describe_table(TableName="target")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    capacity.put_back(ddb, "target", plan["restore"])
    table = ddb.describe_table(TableName="target")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 8
    assert table["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["WriteCapacityUnits"] == 10


def test_an_on_demand_target_needs_no_switch(ddb):
    ddb.create_table(
        TableName="target",
        **{**KEYS, "AttributeDefinitions": KEYS["AttributeDefinitions"][:1]},
        BillingMode="PAY_PER_REQUEST",
    )
    assert capacity.load_plan(ddb, "target", None) is None


def test_a_refused_switch_refuses_the_restore_and_switches_the_others_back(ddb):
    _provisioned(ddb, "a")
    _provisioned(ddb, "b")
    plans = {name: capacity.load_plan(ddb, name, None) for name in ("a", "b")}
    with pytest.raises(
        TargetRefused, match=r"table b could not switch to on-demand.*four switches.*nothing was restored"
    ):
        capacity.switch_to_on_demand(_Refusing(ddb, "b", "PAY_PER_REQUEST"), plans)
    for name in ("a", "b"):
        table = ddb.describe_table(TableName=name)["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
        assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 4


def test_a_failed_switch_back_names_the_table_and_the_command_that_fixes_it(ddb):
    _provisioned(ddb, "a")
    plan = capacity.load_plan(ddb, "a", None)
    capacity.switch_to_on_demand(ddb, {"a": plan})
    assert ddb.describe_table(TableName="a")["Table"]["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    with pytest.raises(BillingNotRestored) as raised:
        capacity.put_back(_Refusing(ddb, "a", "PROVISIONED", "ValidationException"), "a", plan["restore"])
    message = str(raised.value)
    assert "table a was loaded in on-demand mode" in message and "it is still on-demand" in message
    assert (
        "aws dynamodb update-table --table-name a --billing-mode PROVISIONED --provisioned-throughput "
        "ReadCapacityUnits=3,WriteCapacityUnits=4 --global-secondary-index-updates "
        '\'[{"Update":{"IndexName":"by-g","ProvisionedThroughput":{"ReadCapacityUnits":5,"WriteCapacityUnits":6}}}]\''
    ) in message
