"""The checks a restore makes before it creates or writes anything (ddb_backup.restore.preflight), without moto."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError
from ddb_backup.format import location
from ddb_backup.format.lines import PartRef
from ddb_backup.format.sources import Source
from ddb_backup.restore import capacity, preflight

NOTHING_DONE = "nothing was created or written"


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, operation)


class _S3:
    """HeadObject over a dict of key -> size; a missing key raises ``missing_code`` (as S3 does: 404, NoSuchKey...)."""

    def __init__(self, sizes: dict[str, int], missing_code: str = "404") -> None:
        self.sizes, self.missing_code = sizes, missing_code
        self.heads: list[str] = []

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.heads.append(f"s3://{Bucket}/{Key}")
        if Key not in self.sizes:
            raise _error(self.missing_code, "HeadObject")
        return {"ContentLength": self.sizes[Key]}


def _part(url: str, size: int | None) -> PartRef:
    return PartRef(id=url.rsplit("/", 1)[-1], url=url, dialect="item", items=1, bytes=size)


def _local(tmp_path: Path, name: str, size: int, manifest_size: int | None = None) -> PartRef:
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    return _part(str(path), size if manifest_size is None else manifest_size)


# ------------------------------------------------------------------ check_parts_present
@pytest.mark.parametrize("code", ["404", "NoSuchKey", "NotFound"])
def test_a_missing_s3_part_is_named_and_nothing_is_done(code: str) -> None:
    s3 = _S3({"b/p0.jsonl.gz": 10}, missing_code=code)
    parts = [_part("s3://bkt/b/p0.jsonl.gz", 10), _part("s3://bkt/b/p1.jsonl.gz", 20)]
    with pytest.raises(BackupIncomplete) as raised:
        preflight.check_parts_present(parts, s3)
    assert str(raised.value) == (f"1 part(s) the backup names are missing: s3://bkt/b/p1.jsonl.gz; {NOTHING_DONE}")
    assert sorted(s3.heads) == ["s3://bkt/b/p0.jsonl.gz", "s3://bkt/b/p1.jsonl.gz"]


def test_any_other_s3_error_is_raised_as_it_is_not_taken_for_a_missing_part() -> None:
    s3 = _S3({}, missing_code="AccessDenied")
    with pytest.raises(ClientError) as raised:
        preflight.check_parts_present([_part("s3://bkt/b/p0.jsonl.gz", 10)], s3)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"


def test_every_s3_part_with_its_manifest_size_passes() -> None:
    s3 = _S3({"b/p0": 10, "b/p1": 0})
    preflight.check_parts_present([_part("s3://bkt/b/p0", 10), _part("s3://bkt/b/p1", 0)], s3)
    assert sorted(s3.heads) == ["s3://bkt/b/p0", "s3://bkt/b/p1"]


def test_a_part_of_another_size_is_named_with_both_sizes(tmp_path: Path) -> None:
    good = _local(tmp_path, "good.jsonl", 7)
    short = _local(tmp_path, "short.jsonl", 5, manifest_size=9)
    with pytest.raises(IntegrityError) as raised:
        preflight.check_parts_present([good, short], None)
    assert str(raised.value) == f"{short.url} is 5 bytes, the manifest says 9: {NOTHING_DONE}"


def test_a_part_the_manifest_gives_no_size_for_is_only_checked_for_presence(tmp_path: Path) -> None:
    (tmp_path / "any.jsonl").write_bytes(b"12345")
    s3 = _S3({"b/any": 7})
    present = [_part(str(tmp_path / "any.jsonl"), None), _part("s3://bkt/b/any", None)]
    assert preflight.check_parts_present(present, s3) is None  # any size passes
    assert s3.heads == ["s3://bkt/b/any"]
    gone = _part(str(tmp_path / "gone.jsonl"), None)
    with pytest.raises(BackupIncomplete, match=r"1 part\(s\) the backup names are missing: .*gone.jsonl; nothing"):
        preflight.check_parts_present([*present, gone], s3)


def test_a_missing_local_part_is_named(tmp_path: Path) -> None:
    there = _local(tmp_path, "there.jsonl", 3)
    gone = _part(str(tmp_path / "gone.jsonl"), 3)
    a_dir = _part(str(tmp_path), 3)  # a directory is not a part file
    with pytest.raises(BackupIncomplete) as raised:
        preflight.check_parts_present([there, gone, a_dir], None)
    assert str(raised.value) == f"2 part(s) the backup names are missing: {gone.url}, {a_dir.url}; {NOTHING_DONE}"


def test_missing_parts_are_reported_before_wrong_sizes(tmp_path: Path) -> None:
    wrong = _local(tmp_path, "wrong.jsonl", 5, manifest_size=6)
    gone = _part(str(tmp_path / "gone.jsonl"), 3)
    with pytest.raises(BackupIncomplete, match=r"1 part\(s\) the backup names are missing: .*gone.jsonl; nothing"):
        preflight.check_parts_present([wrong, gone], None)


def test_five_names_at_most_then_how_many_more() -> None:
    s3 = _S3({})
    parts = [_part(f"s3://bkt/p{i}", 1) for i in range(7)]
    with pytest.raises(BackupIncomplete) as raised:
        preflight.check_parts_present(parts, s3)
    named = ", ".join(f"s3://bkt/p{i}" for i in range(5))
    assert str(raised.value) == f"7 part(s) the backup names are missing: {named} (and 2 more); {NOTHING_DONE}"
    with pytest.raises(BackupIncomplete) as five:
        preflight.check_parts_present(parts[:5], s3)
    assert str(five.value) == f"5 part(s) the backup names are missing: {named}; {NOTHING_DONE}"


def test_five_wrong_sizes_at_most_then_how_many_more() -> None:
    s3 = _S3({f"p{i}": 1 for i in range(6)})
    parts = [_part(f"s3://bkt/p{i}", 2) for i in range(6)]
    with pytest.raises(IntegrityError) as raised:
        preflight.check_parts_present(parts, s3)
    named = "; ".join(f"s3://bkt/p{i} is 1 bytes, the manifest says 2" for i in range(5))
    assert str(raised.value) == f"{named} (and 1 more): {NOTHING_DONE}"


def test_parts_are_headed_side_by_side() -> None:
    """Four HEADs that each wait for the other three finish only if they run at once."""
    barrier = threading.Barrier(4, timeout=5)

    class Waiting(_S3):
        def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:
            barrier.wait()
            return super().head_object(Bucket, Key)

    s3 = Waiting({f"p{i}": 1 for i in range(4)})
    preflight.check_parts_present([_part(f"s3://bkt/p{i}", 1) for i in range(4)], s3, workers=4)
    assert len(s3.heads) == 4


def test_no_workers_asked_still_checks_with_one(tmp_path: Path) -> None:
    gone = _part(str(tmp_path / "gone.jsonl"), 3)
    with pytest.raises(BackupIncomplete, match=r"gone\.jsonl"):
        preflight.check_parts_present([gone], None, workers=0)


def test_s3_parts_with_no_client_given_use_the_shared_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = _S3({"p0": 1})
    monkeypatch.setattr(location, "s3_client", lambda s3: shared if s3 is None else s3)
    local = _local(tmp_path, "local.jsonl", 2)
    preflight.check_parts_present([local, _part("s3://bkt/p0", 1)], None)
    assert shared.heads == ["s3://bkt/p0"]


def test_no_parts_is_nothing_to_check() -> None:
    preflight.check_parts_present([], _S3({}))


# ------------------------------------------------------------------ resume_hint
SM = '(restore state machine: the same input with "mode": "overwrite")'


def test_the_resume_command_of_one_table_names_the_source_and_the_target() -> None:
    hint = preflight.resume_hint({"source": "s3://bkt/backups/orders/b1/manifest.json"}, "orders-copy")
    assert hint == (
        "resume it with `ddb-backup restore s3://bkt/backups/orders/b1/manifest.json --table orders-copy "
        f"--mode overwrite` {SM}"
    )


def test_the_resume_command_quotes_what_the_shell_would_split() -> None:
    hint = preflight.resume_hint({"source": "/backups/my orders"}, "t")
    assert "`ddb-backup restore '/backups/my orders' --table t --mode overwrite`" in hint


def test_the_resume_command_of_a_set_repeats_its_maps_backup_and_tables() -> None:
    request = {
        "source": "s3://bkt/backups/",
        "map": [{"from": "a", "to": "a-copy"}, {"from": "b", "to": "b-copy"}],
        "backupId": "20260101T000000Z",
        "tables": ["a", "b"],
    }
    assert preflight.resume_hint(request, "a-copy") == (
        "resume it with `ddb-backup restore s3://bkt/backups/ --map a=a-copy --map b=b-copy "
        f"--backup-id 20260101T000000Z --tables a,b --mode overwrite` {SM}"
    )


def test_the_resume_command_of_a_set_leaves_out_what_the_request_did_not_give() -> None:
    request = {"source": "s3://bkt/backups/", "map": [{"from": "a", "to": "a2"}], "backupId": None, "tables": []}
    assert preflight.resume_hint(request, "a2") == (
        f"resume it with `ddb-backup restore s3://bkt/backups/ --map a=a2 --mode overwrite` {SM}"
    )


def test_the_resume_command_repeats_the_options_the_run_was_given() -> None:
    # a resume without --allow-source is refused on the source table; without the pace it writes at another rate
    request = {
        "source": "s3://bkt/backups/orders/b1/manifest.json",
        "allowSource": True,
        "allowPartial": True,
        "keys": ["pk", "sk"],
        "writeRate": 250.0,
        "writePercent": 37.5,
        "loadBilling": "on-demand",
    }
    assert preflight.resume_hint(request, "orders") == (
        "resume it with `ddb-backup restore s3://bkt/backups/orders/b1/manifest.json --table orders "
        "--allow-source --allow-partial --keys pk,sk --write-rate 250 --write-percent 37.5 "
        f"--load-billing on-demand --mode overwrite` {SM}"
    )


def test_the_resume_command_leaves_out_the_options_the_run_was_not_given() -> None:
    request = {
        "source": "/b/orders.json",
        "allowSource": False,
        "allowPartial": None,
        "keys": None,
        "writeRate": None,
        "writePercent": None,
        "loadBilling": None,
    }
    assert (
        preflight.resume_hint(request, "t")
        == f"resume it with `ddb-backup restore /b/orders.json --table t --mode overwrite` {SM}"
    )


# ------------------------------------------------------------------ write_rate
class _Ddb:
    """DescribeTable over a dict of name -> Table; a missing table is ResourceNotFoundException."""

    def __init__(self, **described: dict[str, Any]) -> None:
        self.described = described

    def describe_table(self, TableName: str) -> dict[str, Any]:
        if TableName not in self.described:
            raise _error("ResourceNotFoundException", "DescribeTable")
        return {"Table": self.described[TableName]}


def _provisioned(name: str, write_units: int) -> dict[str, Any]:
    return {
        "TableName": name,
        "BillingModeSummary": {"BillingMode": "PROVISIONED"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": write_units},
    }


def _on_demand(name: str) -> dict[str, Any]:
    return {"TableName": name, "BillingModeSummary": {"BillingMode": capacity.ON_DEMAND}}


def _source(saved: dict[str, Any] | None = None, parts: list[PartRef] | None = None) -> Source:
    return Source("ddb-backup-v1", "s3://bkt/b/", "src", {"Table": saved} if saved else None, parts or [])


def test_a_write_percent_is_of_the_existing_targets_units_not_the_backups() -> None:
    ddb = _Ddb(target=_provisioned("target", 40))
    src = _source(_provisioned("src", 400))
    assert preflight.write_rate(ddb, src, "target", {"writePercent": 50}, None) == 20.0
    assert preflight.write_rate(ddb, src, "target", {}, 25) == 10.0


def test_a_write_percent_for_a_table_to_create_is_of_the_units_the_backup_saved() -> None:
    src = _source(_provisioned("src", 400))
    assert preflight.write_rate(_Ddb(), src, "new", {"writePercent": 50}, None) == 200.0


def test_a_write_rate_wins_over_any_percent() -> None:
    ddb = _Ddb(target=_provisioned("target", 40))
    assert preflight.write_rate(ddb, _source(), "target", {"writeRate": 7, "writePercent": 50}, 25) == 7.0


def test_a_table_to_create_without_a_saved_description_is_on_demand() -> None:
    """No schema saved (a JSON-lines source): the table is created on-demand, so the stack's default does not apply."""
    assert preflight.write_rate(_Ddb(), _source(), "new", {}, 50) is None
    with pytest.raises(BadInput) as raised:
        preflight.write_rate(_Ddb(), _source(), "new", {"writePercent": 50}, None)
    assert "table new is on-demand" in str(raised.value)
    assert "--write-rate" in str(raised.value)


def test_an_on_demand_load_is_limited_only_by_a_write_rate() -> None:
    ddb = _Ddb(target=_provisioned("target", 40))
    request = {"loadBilling": "on-demand", "writePercent": 50}
    assert preflight.write_rate(ddb, _source(), "target", request, 25) is None
    assert preflight.write_rate(ddb, _source(), "target", {**request, "writeRate": "12.5"}, 25) == 12.5


# ------------------------------------------------------------------ load_adjuster
CREATE = {
    "TableName": "new",
    "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
    "GlobalSecondaryIndexes": [
        {"IndexName": "g", "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}
    ],
}
ON_DEMAND_CREATE = {
    "TableName": "new",
    "BillingMode": capacity.ON_DEMAND,
    "GlobalSecondaryIndexes": [{"IndexName": "g"}],
}


def test_without_load_billing_or_within_the_create_table_is_left_as_the_backup_has_it() -> None:
    assert preflight.load_adjuster(_source(_provisioned("src", 4)), {}, None) == (None, [])


def test_a_provisioned_backup_loaded_on_demand_is_created_on_demand_without_a_pre_warm() -> None:
    adjust, notes = preflight.load_adjuster(_source(_provisioned("src", 4)), {}, {"switch": False, "restore": {}})
    assert adjust is not None and notes == []
    assert adjust(CREATE) == ON_DEMAND_CREATE


def test_an_existing_table_switched_for_the_load_is_not_created() -> None:
    assert preflight.load_adjuster(_source(_provisioned("src", 4)), {}, {"switch": True, "restore": {}}) == (None, [])


def test_within_on_a_table_created_provisioned_says_how_to_pre_warm_instead() -> None:
    adjust, notes = preflight.load_adjuster(_source(_provisioned("src", 4)), {"within": "1h"}, None)
    assert adjust is None
    assert notes == [
        "--within pre-warms on-demand tables: this target is created provisioned "
        "(add --load-billing on-demand to load it on-demand and pre-warmed)"
    ]


def _big(saved_items: int, saved_bytes: int | None, parts: list[PartRef]) -> Source:
    saved = {**_on_demand("src"), "ItemCount": saved_items}
    if saved_bytes is not None:
        saved["TableSizeBytes"] = saved_bytes
    return _source(saved, parts)


def test_within_pre_warms_from_the_parts_item_counts_and_the_saved_table_size() -> None:
    """10 M items of 1,500 bytes in 1,000 s: two units each, 20,000 a second (the saved ItemCount of 1 is stale).

    From the stale count, the bytes would be one 15 GB item (14,648 a second); from the parts' sizes
    (1 byte each here), 10,000.
    """
    parts = [
        PartRef("p0", "s3://b/p0", "item", items=4_000_000, bytes=1),
        PartRef("p1", "s3://b/p1", "item", items=6_000_000, bytes=1),
    ]
    adjust, notes = preflight.load_adjuster(_big(1, 10_000_000 * 1500, parts), {"within": "1000s"}, None)
    assert adjust is not None
    assert adjust(CREATE) == {**ON_DEMAND_CREATE, "WarmThroughput": {"WriteUnitsPerSecond": 20_000}}
    assert notes == ["pre-warmed to 20,000 write units a second for 20,000,000 units in 1,000 s"]


def test_a_part_without_a_size_adds_nothing_to_the_size_a_pre_warm_is_sized_from() -> None:
    """10 M items of exactly 1 KiB: one unit each; a byte more (a part of unknown size taken as 1) would be two."""
    parts = [
        PartRef("p0", "s3://b/p0", "item", items=10_000_000, bytes=10_000_000 * 1024),
        PartRef("p1", "s3://b/p1", "item", items=0, bytes=None),
    ]
    adjust, notes = preflight.load_adjuster(_big(0, None, parts), {"within": "1000s"}, None)
    assert adjust is not None
    assert adjust(CREATE)["WarmThroughput"] == {"WriteUnitsPerSecond": 10_000}
    assert notes == ["pre-warmed to 10,000 write units a second for 10,000,000 units in 1,000 s"]


def test_within_with_no_item_count_anywhere_pre_warms_for_the_size_alone() -> None:
    """A source with no counts (JSON lines) and no saved ItemCount: 10 GB is at least 10,000,001 units, not 0."""
    parts = [PartRef("p0", "/data/t.jsonl", "plain", items=None, bytes=10_240_001_024)]
    adjust, notes = preflight.load_adjuster(_source(None, parts), {"within": "1000s"}, None)
    assert adjust is not None
    assert adjust(CREATE)["WarmThroughput"] == {"WriteUnitsPerSecond": 10_001}
    assert notes == ["pre-warmed to 10,001 write units a second for 10,000,001 units in 1,000 s"]


def test_within_takes_the_saved_item_count_when_a_part_has_none_and_the_parts_bytes_when_no_size_was_saved() -> None:
    parts = [
        PartRef("p0", "s3://b/p0", "item", items=None, bytes=6_000_000_000),
        PartRef("p1", "s3://b/p1", "item", items=3, bytes=4_000_000_000),
    ]
    adjust, notes = preflight.load_adjuster(
        _big(5_000_000, None, parts), {"within": "100s", "loadBilling": "on-demand"}, None
    )
    assert adjust is not None
    # 10 GB over 5 M items is 2,000 bytes an item: 2 units each, 10 M units / 100 s = 100,000, capped at 40,000
    assert adjust(CREATE)["WarmThroughput"] == {"WriteUnitsPerSecond": 40_000}
    assert notes == [
        "pre-warmed to 40,000 write units a second for 10,000,000 units in 100 s "
        "(capped at the per-table quota of 40,000: the load takes about 250 s)"
    ]


def test_within_on_a_provisioned_backup_loaded_on_demand_pre_warms_it() -> None:
    saved = {**_provisioned("src", 4), "ItemCount": 1, "TableSizeBytes": 10_000_000 * 1024}
    parts = [PartRef("p0", "s3://b/p0", "item", items=10_000_000, bytes=1)]
    adjust, notes = preflight.load_adjuster(
        _source(saved, parts), {"within": "1000s"}, {"switch": False, "restore": {}}
    )
    assert adjust is not None
    assert adjust(CREATE)["WarmThroughput"] == {"WriteUnitsPerSecond": 10_000}
    assert notes == ["pre-warmed to 10,000 write units a second for 10,000,000 units in 1,000 s"]


def test_within_small_enough_for_a_new_on_demand_table_needs_no_pre_warm() -> None:
    adjust, notes = preflight.load_adjuster(_source(), {"within": "1h"}, None)
    assert adjust is not None
    assert adjust(CREATE) == ON_DEMAND_CREATE
    assert notes == ["0 write units in 3,600 s is 0 a second: within a new on-demand table's 4,000, no pre-warm needed"]
