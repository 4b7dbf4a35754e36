"""Restores to a time and exact backups through the CLI, on the strict stream (issue 23 points 3, 6 and 7).

A table is backed up exactly, then changed second by second while the archive follows it; every restore
below is compared item for item with the model at its moment.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.restore.partitioned import local as partitioned_local
from ddb_backup.restore.resume import read_mark
from ddb_backup_cli.files import backup as backup_local
from ddb_backup_cli.main import main
from devkit.strict.streams import StrictStreams
from tests.changes.test_model import end_of_this_second
from tests.conftest import canonical, table_items

BUCKET = "totime-backups"
TABLE = "tt-Table"
SOURCE = f"s3://{BUCKET}/p/{TABLE}/"


def _put(ddb: Any, key: str, value: str) -> dict[str, Any]:
    item = {"k": {"S": key}, "v": {"S": value}}
    ddb.put_item(TableName=TABLE, Item=item)
    return item


def _state(ddb: Any, table: str) -> list[str]:
    return sorted(map(canonical, table_items(ddb, table)))


@pytest.fixture
def history(aws: None, streams: StrictStreams, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An exact backup of 40 items taken while a write lands, then three seconds of changes, archived: the
    model at each second's end, and the backup's summary."""
    ddb = client("dynamodb")
    client("s3").create_bucket(Bucket=BUCKET)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    model = {f"k{i:02d}": _put(ddb, f"k{i:02d}", "v0") for i in range(40)}
    original = backup_local.scan_segment

    def scan_then_write(*args: Any, **kwargs: Any) -> Any:  # a change after the scan: only changes/ has it
        scanned = original(*args, **kwargs)
        model["during"] = _put(ddb, "during", "the scan")
        return scanned

    monkeypatch.setattr(backup_local, "scan_segment", scan_then_write)
    argv = ["--json", "backup", "--table", TABLE, "--to", f"s3://{BUCKET}/p/", "--consistent", "--settle", "0"]
    assert main([*argv, "--segments", "1"]) == 0
    monkeypatch.setattr(backup_local, "scan_segment", original)
    moments = [(dt.datetime.min.replace(tzinfo=dt.UTC), sorted(map(canonical, model.values())))]
    for second in range(3):
        for i in range(second * 5, second * 5 + 5):
            model[f"k{i:02d}"] = _put(ddb, f"k{i:02d}", f"s{second}")
        ddb.delete_item(TableName=TABLE, Key={"k": {"S": f"k{39 - second:02d}"}})
        model.pop(f"k{39 - second:02d}")
        moments.append((end_of_this_second(), sorted(map(canonical, model.values()))))
    streams.deliver()  # no mapping here: the CLI follows the stream instead
    assert main(["-q", "changes", "follow", "--table", TABLE, "--to", f"s3://{BUCKET}/p/", "--until-idle", "0"]) == 0
    return {"ddb": ddb, "moments": moments[1:]}


def test_a_time_with_a_negative_utc_offset_restores_the_same_moment_as_in_utc(history: dict[str, Any]) -> None:
    ddb = history["ddb"]
    for n, (when, expected) in enumerate(history["moments"]):
        for form, text in (("z", when.isoformat()), ("west", when.astimezone(dt.timezone(dt.timedelta(hours=-5))))):
            target = f"tt-{form}-{n}"
            assert main(["-q", "restore", SOURCE, "--table", target, "--to-time", str(text).replace(" ", "T")]) == 0
            assert _state(ddb, target) == expected, (form, text)


def test_a_dry_run_to_a_time_writes_and_deletes_nothing(history: dict[str, Any], capsys: Any) -> None:
    ddb = history["ddb"]
    when, _ = history["moments"][1]
    assert main(["-q", "restore", SOURCE, "--table", "tt-new", "--to-time", when.isoformat(), "--dry-run"]) == 0
    assert "tt-new" not in ddb.list_tables()["TableNames"]
    before = _state(ddb, TABLE)
    argv = ["restore", SOURCE, "--table", TABLE, "--to-time", when.isoformat(), "--mode", "mirror", "--dry-run"]
    argv.append("--allow-source")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert _state(ddb, TABLE) == before
    assert "dry run: nothing created, written or deleted" in out and "changes up to" in out


def test_expect_items_with_a_time_is_refused_not_ignored(history: dict[str, Any], capsys: Any) -> None:
    when, _ = history["moments"][0]
    argv = ["restore", SOURCE, "--table", "tt-x", "--to-time", when.isoformat(), "--expect-items", "40"]
    assert main(argv) == 2
    assert "--expect-items counts a file's items" in capsys.readouterr().err


def test_a_restore_to_a_time_stopped_before_its_changes_stays_marked(
    history: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = history["ddb"]
    when, expected = history["moments"][2]

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(partitioned_local, "apply_partition", killed)
    assert main(["-q", "restore", SOURCE, "--table", "tt-cut", "--to-time", when.isoformat()]) == 130
    arn = ddb.describe_table(TableName="tt-cut")["Table"]["TableArn"]
    assert read_mark(ddb, arn) is not None  # the parts are in, the changes are not: it must not look finished
    monkeypatch.undo()
    argv = ["-q", "restore", SOURCE, "--table", "tt-cut", "--to-time", when.isoformat(), "--mode", "overwrite"]
    assert main(argv) == 0
    assert _state(ddb, "tt-cut") == expected and read_mark(ddb, arn) is None


def test_an_exact_backup_copied_to_a_directory_restores_with_its_changes(
    history: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    ddb, s3 = history["ddb"], client("s3")
    [directory] = {k["Prefix"] for k in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"p/{TABLE}/2", Delimiter="/")["CommonPrefixes"]}  # fmt: skip
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory)["Contents"]:
        path = tmp_path / obj["Key"][len(directory) :]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["changes"] and manifest["changes"][0]["records"] >= 1
    assert main(["-q", "restore", f"{tmp_path}/", "--table", "tt-local"]) == 0
    at_backup = sorted(map(canonical, table_items(ddb, "tt-local")))
    assert '{"k":{"S":"during"},"v":{"S":"the scan"}}' in at_backup  # the change only changes/ holds
    # the changes must travel with the parts: a copy without them is refused, not restored short
    for changed in (tmp_path / "changes").iterdir():
        changed.unlink()
    assert main(["-q", "restore", f"{tmp_path}/", "--table", "tt-local-short"]) == 1
    assert "must be copied with it" in capsys.readouterr().err


def test_a_consistent_backup_to_a_local_file_is_refused(history: dict[str, Any], tmp_path: Path, capsys: Any) -> None:
    assert main(["backup", "--table", TABLE, "--out", str(tmp_path / "t.json"), "--consistent"]) == 2
    assert "--consistent writes an exact backup to S3" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
