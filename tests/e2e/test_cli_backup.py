"""The CLI's backup side against an emulator on a free port: output, messages, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.format import ddbjson
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import backup_items, canonical, table_items


@pytest.fixture
def tables(endpoint):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 250, "Rules": 7})
    return ddb


def test_backup_table_writes_backups_table_json(tables, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["backup", "--table", "mystack-GranulesTable"]) == 0
    path = tmp_path / "backups" / "mystack-GranulesTable.json"
    lines = path.read_bytes().splitlines()
    header, end = json.loads(lines[0]), json.loads(lines[-1])
    assert header["ddbBackupFile"]["table"] == "mystack-GranulesTable"
    assert header["ddbBackupFile"]["description"]["Table"]["KeySchema"][0]["AttributeName"] == "granuleId"
    assert end["ddbBackupEnd"]["items"] == 250 and len(end["ddbBackupEnd"]["sha256"]) == 64
    saved = sorted(canonical(ddbjson.parse_line(line, "t")) for line in lines[1:-1])
    assert saved == sorted(canonical(i) for i in table_items(tables, "mystack-GranulesTable"))
    assert "250 items" in capsys.readouterr().out


def test_backup_gzip_when_the_name_ends_in_gz(tables, tmp_path):
    out = tmp_path / "g.json.gz"
    assert main(["backup", "--table", "mystack-RulesTable", "--out", str(out), "--quiet"]) == 0
    import gzip

    assert json.loads(gzip.decompress(out.read_bytes()).splitlines()[-1])["ddbBackupEnd"]["items"] == 7


def test_backup_a_set_to_s3_writes_format_v1(tables, capsys):
    s3 = client("s3")
    s3.create_bucket(Bucket="cli-backups")
    assert (
        main(["--json", "backup", "--prefix", "mystack-", "--to", "s3://cli-backups/nightly/", "--segments", "3"]) == 0
    )
    summaries = json.loads(capsys.readouterr().out)
    assert {s["table"] for s in summaries} == {"mystack-GranulesTable", "mystack-RulesTable"}
    for s in summaries:
        saved = sorted(canonical(i) for i in backup_items(s3, "cli-backups", s["manifest"]))
        assert saved == sorted(canonical(i) for i in table_items(tables, s["table"]))
    assert main(["list", "--bucket", "s3://cli-backups/nightly/", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["table"], r["complete"], r["items"]) for r in rows] == [
        ("mystack-GranulesTable", True, 250),
        ("mystack-RulesTable", True, 7),
    ]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["backup", "--table", "nope-Table"], 1, "table 'nope-Table' does not exist"),
        (["backup", "--prefix", "zzz-"], 1, "no table name starts with 'zzz-'"),
        (["backup"], 2, "give --table/--tables or --prefix"),
        (["backup", "--table", "mystack-RulesTable", "--to", "s3://no-such-bucket/x/"], 1, "NoSuchBucket"),
        (["backup", "--table", "mystack-RulesTable", "--to", "bucket/x"], 1, "is not an s3:// URL"),
        (["list", "--bucket", "s3://no-such-bucket/"], 1, "NoSuchBucket"),
        (["start-backup", "--prefix", "mystack-"], 2, "--stack-name"),
        (["start-backup", "--prefix", "mystack-", "--stack-name", "nope"], 1, "stack 'nope'"),
    ],
)
def test_bad_input_gets_one_clear_line_and_the_right_exit_code(tables, capsys, argv, code, message):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["backup", "--segments", "many"])
    assert exc.value.code == 2


def test_the_console_script_runs_as_a_process(tables, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "ddb_backup_cli.main", "backup", "--table", "mystack-RulesTable", "--out", str(out)],
        capture_output=True,
        check=False,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "7 items" in proc.stdout
