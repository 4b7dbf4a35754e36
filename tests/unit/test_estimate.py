"""The estimate: read units of a full scan, costs from the dated price table, the CLI on a table that is not there."""

from __future__ import annotations

import json

import pytest

from ddb_backup.estimate import PRICES, Plan, estimate, scan_read_units, write_units
from ddb_backup_cli.estimate import parse_size
from ddb_backup_cli.main import main


def test_scan_read_units_are_4_kib_a_unit_halved_for_eventually_consistent_reads() -> None:
    assert scan_read_units(8192 * 1000) == pytest.approx(1000, rel=0.01)
    assert scan_read_units(8192 * 1000, consistent=True) == pytest.approx(2000, rel=0.01)


def test_write_units_round_each_item_up_to_a_kib() -> None:
    assert write_units(1000, 1000 * 1000) == 1000
    assert write_units(1000, 1000 * 1100) == 2000
    assert write_units(0, 0) == 0


def test_a_rate_sets_the_time_and_costs_use_the_price_table() -> None:
    doc = estimate(1_000_000, 8192 * 1_000_000, Plan(segments=4, read_rate=1000, write_rate=500))
    backup = doc["backup"]
    assert backup["seconds"] == pytest.approx(backup["readUnits"] / 1000, rel=0.01)
    assert backup["cost"]["reads"] == pytest.approx(backup["readUnits"] * 0.125 / 1e6, abs=1e-4)
    writes = doc["restore"]["write"]
    assert writes["writeUnits"] == 8_000_000 and writes["seconds"] == pytest.approx(16_000)
    assert writes["cost"]["writes"] == pytest.approx(5.0)
    assert doc["restore"]["import"]["cost"]["total"] == pytest.approx(8.192 * 0.15, abs=1e-3)
    assert doc["prices"]["region"] == PRICES.region == "us-east-1"


@pytest.mark.parametrize(("text", "size"), [("1TiB", 1024**4), ("500GB", 500 * 10**9), ("2.5 GiB", int(2.5 * 1024**3))])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_the_cli_estimates_a_table_that_is_not_there(capsys) -> None:
    assert main(["estimate", "--size", "1TiB", "--items", "1100000000", "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["items"] == 1_100_000_000 and doc["bytes"] == 1024**4
    assert doc["restore"]["write"]["writeUnits"] == 1_100_000_000
    assert main(["estimate", "--size", "1TiB"]) == 2
    assert "--size needs --items" in capsys.readouterr().err
    assert main(["estimate", "--size", "1TiB", "--items", "5", "--read-percent", "50"]) == 2
    assert "give --read-rate" in capsys.readouterr().err


def test_the_cli_estimates_a_real_table_and_start_backup_dry_run_starts_nothing(aws, capsys) -> None:
    from ddb_backup.aws.clients import client
    from devkit import sample

    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 50})
    assert main(["estimate", "--table", "mystack-GranulesTable", "--read-rate", "10", "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert doc["table"] == "mystack-GranulesTable" and doc["backup"]["readRate"] == 10
    assert main(["estimate", "--table", "mystack-GranulesTable", "--read-percent", "50"]) == 1
    assert "on-demand" in capsys.readouterr().err
    sfn = client("stepfunctions")
    arn = sfn.create_state_machine(
        name="x",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/r",
    )["stateMachineArn"]
    assert main(["start-backup", "--state-machine-arn", arn, "--table", "mystack-GranulesTable", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mystack-GranulesTable: " in out and "dry run: nothing started" in out
    assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
    assert main(["start-backup", "--state-machine-arn", arn, "--table", "mystack-GranulesTable"]) == 0
    assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1  # without --dry-run: started


def test_one_segment_and_one_item_are_singular() -> None:
    from ddb_backup.estimate import describe_estimate

    lines = describe_estimate(estimate(1, 400, Plan(segments=1), table="t"))
    assert lines[0].startswith("t: 1 item, ") and ", 1 segment, " in lines[1], lines
    assert ", 4 segments, " in describe_estimate(estimate(9, 400, Plan(segments=4), table="t"))[1]


def test_importtable_is_priced_on_the_backup_bytes_before_gzip_when_known() -> None:
    # ImportTable bills the uncompressed source: DynamoDB JSON is larger than the table's own size figure
    by_table = estimate(1000, 1_000_000_000)["restore"]["import"]
    by_source = estimate(1000, 1_000_000_000, import_bytes=3_000_000_000)["restore"]["import"]
    assert by_table["gb"] == 1.0 and by_table["cost"]["import"] == round(1.0 * PRICES.import_gb, 4)
    assert by_source["gb"] == 3.0 and by_source["cost"]["import"] == round(3.0 * PRICES.import_gb, 4)
