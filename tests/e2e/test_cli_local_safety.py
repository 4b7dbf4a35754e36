"""The CLI with local files: counts it cannot check, checksums, never replacing a backup, private files."""

from __future__ import annotations

import gzip
import json
import os
import stat

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import FIXTURES, table_items


@pytest.fixture
def tables(endpoint):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 12})
    sample.create_table(ddb, "restore-GranulesTable", [("granuleId", "HASH")])
    return ddb


def _cut(tmp_path, kind: str, lines: int):
    """A 120-item file of ``kind`` cut after ``lines`` lines, at a line boundary."""
    src = (FIXTURES / "cumulus-api-1.18.0" / "mystack-GranulesTable.json").read_bytes().splitlines(keepends=True)
    if kind == "item-lines":
        src = [b'{"Item":' + line.rstrip(b"\n") + b"}\n" for line in src]
    path = tmp_path / f"{kind}.json"
    path.write_bytes(b"".join(src[:lines]))
    return str(path)


@pytest.mark.parametrize("kind", ["cumulus-api", "item-lines"])
def test_a_source_without_a_count_says_so_and_how_many_items_it_restored(tables, tmp_path, capsys, kind):
    assert main(["restore", _cut(tmp_path, kind, 80), "--table", "restore-GranulesTable", "-q"]) == 0
    err = capsys.readouterr().err
    assert "carries no item count, so a file cut short at a line boundary cannot be detected" in err
    assert "80 items restored into restore-GranulesTable; the source carries no count" in err
    assert "--expect-items" in err


@pytest.mark.parametrize("kind", ["cumulus-api", "item-lines"])
def test_expect_items_refuses_a_file_cut_at_a_line_boundary_before_writing(tables, tmp_path, capsys, kind):
    source = _cut(tmp_path, kind, 80)
    assert main(["restore", source, "--table", "restore-GranulesTable", "--expect-items", "120", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"ddb-backup: error: {source} holds 80 items, --expect-items says 120: nothing restored" in err
    assert table_items(tables, "restore-GranulesTable") == []
    assert main(["restore", source, "--table", "restore-GranulesTable", "--expect-items", "80", "-q"]) == 0
    assert len(table_items(tables, "restore-GranulesTable")) == 80
    assert "carries no count to check" not in capsys.readouterr().err


def test_expect_items_is_for_one_table(tables, tmp_path, capsys):
    assert main(["restore", str(tmp_path), "--map", "a=b", "--expect-items", "3"]) == 2
    assert "single --table" in capsys.readouterr().err


def test_a_local_file_with_a_flipped_letter_is_refused_and_nothing_is_created(tables, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out), "-q"]) == 0
    lines = out.read_bytes().splitlines(keepends=True)
    lines[4] = lines[4].replace(b"name-", b"nbme-", 1)
    out.write_bytes(b"".join(lines))
    assert main(["restore", str(out), "--table", "copy-RulesTable"]) == 1
    assert f"{out} is corrupt: its lines have sha256" in capsys.readouterr().err
    assert "copy-RulesTable" not in tables.list_tables()["TableNames"]


def test_backup_never_replaces_a_backup_without_force(tables, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out), "-q"]) == 0
    good = out.read_bytes()
    tables.delete_item(TableName="mystack-RulesTable", Key={"name": {"S": "name-0000003"}})
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out} already exists: a backup never replaces another unless asked: give --force" in err
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out), "--force", "-q"]) == 0
    assert json.loads(out.read_bytes().splitlines()[-1])["ddbBackupEnd"]["items"] == 11


@pytest.mark.parametrize("name", ["r.json", "r.json.gz"])
def test_backup_files_are_0600_whatever_the_umask(tables, tmp_path, name):
    old = os.umask(0o022)
    try:
        assert main(["backup", "--table", "mystack-RulesTable", "--out", str(tmp_path / name), "-q"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    if name.endswith(".gz"):
        assert gzip.decompress((tmp_path / name).read_bytes()).count(b"\n") == 14


def test_list_dir_lists_every_file_and_marks_the_bad_ones(tables, tmp_path, capsys):
    """Issue 24 point 8: one bad file hid every backup in the directory."""
    assert main(["backup", "--table", "mystack-RulesTable", "--dir", str(tmp_path), "-q"]) == 0
    (tmp_path / "notes.json").write_text("meeting notes, not JSON\n")
    (tmp_path / "broken.json.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not gzip")
    capsys.readouterr()
    assert main(["list", "--dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"mystack-RulesTable.json", "notes.json", "broken.json.gz"}, out
    assert rows["mystack-RulesTable.json"].endswith("complete")
    assert rows["notes.json"].endswith("not a backup") and rows["broken.json.gz"].endswith("CORRUPT"), out
    assert f"{tmp_path / 'notes.json'}: not a backup: " in err and f"{tmp_path / 'broken.json.gz'}: CORRUPT: " in err
    assert main(["--json", "list", "--dir", str(tmp_path)]) == 1
    states = {r["source"].rpartition("/")[2]: r.get("state") for r in json.loads(capsys.readouterr().out)}
    assert states == {"broken.json.gz": "CORRUPT", "mystack-RulesTable.json": "complete", "notes.json": "not a backup"}
