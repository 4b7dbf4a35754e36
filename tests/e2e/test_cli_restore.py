"""The CLI's restore and verify against an emulator on a free port: round trips, formats, refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import FIXTURES, canonical, expected_items, table_items


@pytest.fixture
def tables(endpoint):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 180, "Rules": 9})
    return ddb


def _same(ddb, a: str, b: str) -> bool:
    return sorted(map(canonical, table_items(ddb, a))) == sorted(map(canonical, table_items(ddb, b)))


def test_backup_then_restore_round_trips_a_table_exactly(tables, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["backup", "--table", "mystack-GranulesTable"]) == 0
    assert main(["restore", "backups/mystack-GranulesTable.json", "--table", "restore-GranulesTable"]) == 0
    out, err = capsys.readouterr()
    assert "180 items restored" in out
    assert "BatchWriteItem" not in out + err  # the default method, chosen by nobody: no reason to give (issue 24)
    assert _same(tables, "mystack-GranulesTable", "restore-GranulesTable")
    restored = tables.describe_table(TableName="restore-GranulesTable")["Table"]
    assert restored["GlobalSecondaryIndexes"][0]["IndexName"] == "status-index"
    assert main(["verify", "--table", "restore-GranulesTable", "--backup", "backups/mystack-GranulesTable.json"]) == 0
    assert "identical" in capsys.readouterr().out


def test_a_set_round_trips_through_s3_with_a_prefix_map(tables, capsys):
    client("s3").create_bucket(Bucket="cli-restore")
    assert main(["backup", "--prefix", "mystack-", "--to", "s3://cli-restore/b/", "-q"]) == 0
    assert main(["--json", "restore", "s3://cli-restore/b/", "--map", "mystack-=restore-"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert {r["table"] for r in results} == {"restore-GranulesTable", "restore-RulesTable"}
    assert _same(tables, "mystack-GranulesTable", "restore-GranulesTable")
    assert _same(tables, "mystack-RulesTable", "restore-RulesTable")


def test_a_local_directory_restores_as_a_set(tables, tmp_path):
    assert main(["backup", "--prefix", "mystack-", "--dir", str(tmp_path / "b"), "-q"]) == 0
    assert main(["restore", str(tmp_path / "b"), "--map", "mystack-=copy-", "-q"]) == 0
    assert _same(tables, "mystack-RulesTable", "copy-RulesTable")


def test_a_local_directory_mixing_two_runs_is_refused_naming_each(tables, tmp_path, capsys):
    """Issue 15 point 1: night 2 died after its first file; the directory holds one table of night 2."""
    night1, night2 = tmp_path / "b", tmp_path / "night2"
    assert main(["backup", "--prefix", "mystack-", "--dir", str(night1), "-q"]) == 0
    assert main(["backup", "--prefix", "mystack-", "--dir", str(night2), "-q"]) == 0
    shutil.copy(night2 / "mystack-GranulesTable.json", night1 / "mystack-GranulesTable.json")
    capsys.readouterr()
    assert main(["restore", str(night1), "--map", "mystack-=copy-", "-q"]) == 1
    err = capsys.readouterr().err
    assert "is not one complete backup run: " in err, err
    assert "mystack-GranulesTable from run " in err and "mystack-RulesTable from run " in err
    assert "--allow-partial" in err
    assert not [t for t in tables.list_tables()["TableNames"] if t.startswith("copy-")]
    (night2 / "mystack-RulesTable.json").unlink()  # a run cut short: a table it planned has no file
    assert main(["restore", str(night2), "--map", "mystack-=copy-", "-q"]) == 1
    assert "no file of mystack-RulesTable, which the run planned" in capsys.readouterr().err
    assert main(["restore", str(night1), "--map", "mystack-=copy-", "--allow-partial", "-q"]) == 0
    assert _same(tables, "mystack-RulesTable", "copy-RulesTable")


@pytest.mark.parametrize("dialect", ["cumulus-api-1.18.0", "cumulus-api-1.24.0"])
def test_cumulus_files_restore_into_an_existing_table(endpoint, dialect, capsys):
    ddb = client("dynamodb")
    sample.create_table(ddb, "restore-GranulesTable", [("granuleId", "HASH")])
    src = FIXTURES / dialect / "mystack-GranulesTable.json"
    assert main(["restore", str(src), "--table", "restore-GranulesTable"]) == 0
    got = sorted(map(canonical, table_items(ddb, "restore-GranulesTable")))
    assert got == sorted(map(canonical, expected_items("mystack-GranulesTable")))
    if dialect.endswith("1.24.0"):
        assert "cannot tell sets from lists" in capsys.readouterr().err


def test_a_native_export_restores_with_keys_given(endpoint, tmp_path):
    s3 = client("s3")
    s3.create_bucket(Bucket="mystack-backups")
    root = FIXTURES / "native-export"
    for path in root.rglob("*"):
        if path.is_file():
            s3.put_object(
                Bucket="mystack-backups", Key="exports/" + str(path.relative_to(root)), Body=path.read_bytes()
            )
    url = "s3://mystack-backups/exports/AWSDynamoDB/01763780000000-a1b2c3d4/"
    assert main(["restore", url, "--table", "restore-GranulesTable", "--keys", "granuleId", "-q"]) == 0
    ddb = client("dynamodb")
    got = sorted(map(canonical, table_items(ddb, "restore-GranulesTable")))
    assert got == sorted(map(canonical, expected_items("mystack-GranulesTable")))


def test_verify_reports_differences_and_exits_1(tables, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out), "-q"]) == 0
    tables.delete_item(TableName="mystack-RulesTable", Key={"name": {"S": "name-0000003"}})
    tables.put_item(TableName="mystack-RulesTable", Item={"name": {"S": "intruder"}})
    assert main(["verify", "--table", "mystack-RulesTable", "--backup", str(out)]) == 1
    text = capsys.readouterr().out
    assert "DIFFERENT" in text and "1 missing, 1 extra" in text and "name-0000003" in text


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["restore", "{b}/mystack-RulesTable.json", "--table", "mystack-GranulesTable"], 1, "mystack-GranulesTable"),
        (["restore", "{b}/mystack-RulesTable.json", "--table", "mystack-RulesTable"], 1, "mystack-RulesTable"),
        (["restore", "{b}/nope.json", "--table", "restore-RulesTable"], 1, "nope.json"),
        (["restore", "{b}/garbage.json", "--table", "restore-RulesTable"], 1, "garbage.json"),
        (["restore", "{b}/truncated.json", "--table", "restore-RulesTable"], 1, "truncated.json"),
        (["restore", "{b}/mystack-RulesTable.json"], 2, "--table"),
        (["restore", "{b}/mystack-RulesTable.json", "--table", "restore-T", "--map", "a=b"], 2, "not both"),
        (["restore", "{b}/mystack-RulesTable.json", "--map", "nonsense"], 2, "OLD_PREFIX=NEW_PREFIX"),
        (["verify", "--table", "nope-Table", "--backup", "{b}/mystack-RulesTable.json"], 1, "nope-Table"),
    ],
)
def test_restore_refusals_are_one_clear_line(tables, tmp_path, capsys, argv, code, message):
    b = tmp_path / "b"
    assert main(["backup", "--table", "mystack-RulesTable", "--dir", str(b), "-q"]) == 0
    (b / "garbage.json").write_text("this is not a backup\n")
    lines = (b / "mystack-RulesTable.json").read_text().splitlines()
    (b / "truncated.json").write_text("\n".join(lines[:-3]) + "\n")
    assert main([a.format(b=b) for a in argv]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert [line.startswith("ddb-backup: error:") for line in err.splitlines()].count(True) == 1


def test_a_non_empty_target_is_refused_unless_overwrite(tables, tmp_path, capsys):
    out = tmp_path / "g.json"
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out), "-q"]) == 0
    sample.create_table(tables, "busy-RulesTable", [("name", "HASH")])
    tables.put_item(TableName="busy-RulesTable", Item={"name": {"S": "already here"}})
    assert main(["restore", str(out), "--table", "busy-RulesTable"]) == 1
    assert "busy-RulesTable" in capsys.readouterr().err
    assert main(["restore", str(out), "--table", "busy-RulesTable", "--mode", "overwrite", "-q"]) == 0
    assert len(table_items(tables, "busy-RulesTable")) == 10


def _pk_sk_file(tmp_path):
    """A cumulus-api file of a table keyed (pk, sk): ten items, all with pk 'a'."""
    path = tmp_path / "pksk-Table.json"
    items = [{"pk": {"S": "a"}, "sk": {"S": f"s{i:02d}"}, "v": {"N": str(i)}} for i in range(10)]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def test_items_sharing_the_targets_key_fail_the_restore_naming_the_key(endpoint, tmp_path, capsys):
    """Issue 24 point 3: --keys pk for a (pk, sk) file said "10 items restored" of a table holding 1."""
    ddb = client("dynamodb")
    src = _pk_sk_file(tmp_path)
    assert main(["restore", str(src), "--table", "new-Table", "--keys", "pk", "--expect-items", "10"]) == 1
    out, err = capsys.readouterr()
    assert '9 item(s) read have the key (pk) of an earlier item, first {"pk": {"S": "a"}}' in err, err
    assert "--keys HASH,RANGE" in err and "restored" not in out
    sample.create_table(ddb, "pk-Table", [("pk", "HASH")])
    ddb.put_item(TableName="pk-Table", Item={"pk": {"S": "other"}})
    assert main(["restore", str(src), "--table", "pk-Table", "--mode", "overwrite"]) == 1
    assert "have the key (pk) of an earlier item" in capsys.readouterr().err
    assert main(["restore", str(src), "--table", "both-Table", "--keys", "pk,sk", "--expect-items", "10", "-q"]) == 0
    assert len(table_items(ddb, "both-Table")) == 10


def _edit_manifest(s3, bucket: str, key: str, edit) -> None:
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    edit(manifest)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())


def test_a_manifest_that_lists_fewer_parts_than_data_holds_is_refused_naming_them(tables, capsys):
    """Issue 24 point 4: one part's entry dropped and the totals lowered: restore said 0, with items missing."""
    s3 = client("s3")
    s3.create_bucket(Bucket="cut")
    assert main(["backup", "--table", "mystack-GranulesTable", "--segments", "4", "--to", "s3://cut/b/", "-q"]) == 0
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket="cut")["Contents"] if o["Key"].endswith("manifest.json")]
    dropped: list[dict] = []

    def drop_one(manifest):
        dropped.append(manifest["parts"].pop(0))
        manifest["totals"]["items"] -= dropped[0]["items"]
        manifest["totals"]["parts"] -= 1

    _edit_manifest(s3, "cut", key, drop_one)
    url = f"s3://cut/{key}"
    for argv in (["restore", url, "--table", "copy-Table", "--method", m] for m in ("write", "auto")):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"1 file(s) in data/ the manifest does not list: ['{dropped[0]['key']}']" in err, err
    assert main(["describe", url]) == 1
    assert "file(s) in data/ the manifest does not list" in capsys.readouterr().err
    assert "copy-Table" not in tables.list_tables()["TableNames"]

    def put_back(manifest):
        manifest["parts"].insert(0, dropped[0])
        manifest["totals"]["items"] += dropped[0]["items"]
        manifest["totals"]["parts"] += 1

    _edit_manifest(s3, "cut", key, put_back)
    s3.delete_object(Bucket="cut", Key=key.rsplit("/", 1)[0] + "/" + dropped[0]["key"])
    assert main(["restore", url, "--table", "copy-Table"]) == 1
    assert f"1 part(s) it lists are missing from data/: ['{dropped[0]['key']}']" in capsys.readouterr().err


def test_a_failed_set_restore_says_where_each_table_stands_and_how_to_resume(endpoint, capsys):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 30, "Providers": 5, "Rules": 9})
    s3 = client("s3")
    s3.create_bucket(Bucket="cli-set")
    assert main(["backup", "--prefix", "mystack-", "--to", "s3://cli-set/b/", "-q"]) == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="cli-set", Prefix="b/mystack-ProvidersTable/")["Contents"]]
    part = next(k for k in keys if "/data/" in k)
    body = bytearray(s3.get_object(Bucket="cli-set", Key=part)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # the size the manifest says, not its sha256: found when the part is read
    s3.put_object(Bucket="cli-set", Key=part, Body=bytes(body))
    capsys.readouterr()
    assert main(["restore", "s3://cli-set/b/", "--map", "mystack-=restore-"]) == 1
    err = capsys.readouterr().err
    assert part.rsplit("/", 1)[-1] in err, err  # the corrupt part, as before
    lines = err.splitlines()
    assert any("restore-GranulesTable" in line and "finished (30 items" in line for line in lines), err
    assert any("restore-ProvidersTable" in line and "marked, partial" in line for line in lines), err
    assert any("restore-RulesTable" in line and "marked, not started" in line for line in lines), err
    assert "resume it with `ddb-backup restore s3://cli-set/b/ --map mystack-=restore- --backup-id " in err, err
    assert "--mode overwrite" in err, err
