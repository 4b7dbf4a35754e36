"""The CLI as an on-call operator meets it: mistakes, dead endpoints, pipes, multi-table runs (issue 16)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample

CLI = [sys.executable, "-m", "ddb_backup_cli.main"]


@pytest.fixture
def tables(endpoint):
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 40, "Rules": 7})
    return ddb


@pytest.fixture
def backed_up(tables, capsys):
    """Both tables backed up under the default prefix of bucket ``ops``."""
    client("s3").create_bucket(Bucket="ops")
    assert main(["--quiet", "backup", "--prefix", "mystack-", "--to", "s3://ops/backups/"]) == 0
    capsys.readouterr()
    return "ops"


# ------------------------------------------------------------------ list (point 2)
def _listed(capsys, *argv: str) -> list[tuple[str, bool]]:
    assert main(["list", "--json", *argv]) == 0
    return [(r["table"], r["complete"]) for r in json.loads(capsys.readouterr().out)]


def test_list_of_a_bare_bucket_url_uses_the_default_prefix(backed_up, capsys):
    want = [("mystack-GranulesTable", True), ("mystack-RulesTable", True)]
    assert _listed(capsys, "--bucket", "s3://ops") == want
    assert _listed(capsys, "--bucket", "s3://ops/") == want
    assert _listed(capsys, "--bucket", "ops") == want


def test_list_honours_prefix_with_an_s3_url(tables, capsys):
    client("s3").create_bucket(Bucket="ops")
    assert main(["--quiet", "backup", "--table", "mystack-RulesTable", "--to", "s3://ops/nightly/"]) == 0
    assert _listed(capsys, "--bucket", "s3://ops", "--prefix", "nightly/") == [("mystack-RulesTable", True)]
    assert _listed(capsys, "--bucket", "s3://ops") == []  # nothing under backups/
    assert main(["list", "--bucket", "s3://ops/nightly/", "--prefix", "other/"]) == 2
    assert "give one" in capsys.readouterr().err


# ------------------------------------------------------------------ errors with a next step (point 7)
@pytest.mark.parametrize("argv", [["backup", "--table", "x"], ["backup", "--tables", "mystack-RulesTable,a b"]])
def test_an_invalid_table_name_states_the_rule_and_exits_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "3 to 255 characters, only letters, digits, '_', '-' and '.'" in err
    assert err.startswith("usage: ddb-backup backup")


@pytest.mark.parametrize(
    ("argv", "usage", "hint"),
    [
        (["backup", "--tabel", "T"], "usage: ddb-backup backup", "did you mean --table?"),
        (["restore", "f.json", "--table", "abc", "--allow-sources"], "usage: ddb-backup restore", "--allow-source?"),
        (["pitr", "status", "--cumulus-prefx", "m-"], "usage: ddb-backup pitr status", "--cumulus-prefix?"),
    ],
)
def test_an_unknown_option_shows_the_subcommands_usage_and_the_closest_option(capsys, argv, usage, hint):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert hint in err


@pytest.mark.parametrize("command", [["restore", "f.json"], ["start-restore", "--backup", "s3://b/x/"]])
def test_neither_table_nor_map_is_not_called_both(capsys, command):
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "not both" not in err
    assert "--table NAME" in err and "--map OLD=NEW" in err


def _no_aws_config(monkeypatch, tmp_path):
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "")  # so that teardown restores what main() sets from --region / --profile
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backup", "--table", "abc"], "no AWS region: give --region REGION or set AWS_REGION"),
        (["--region", "us-east-1", "backup", "--table", "abc"], "give --profile NAME (or set AWS_PROFILE)"),
        (["--profile", "nope", "backup", "--table", "abc"], "check --profile / AWS_PROFILE"),
    ],
)
def test_missing_region_credentials_or_profile_name_the_option(monkeypatch, tmp_path, capsys, argv, message):
    _no_aws_config(monkeypatch, tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_json_into_a_closed_pipe_ends_quietly(backed_up):
    proc = subprocess.Popen(
        [*CLI, "--json", "list", "--bucket", "s3://ops"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader (``| head``) is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert "Broken pipe" not in err and "Traceback" not in err and "Exception ignored" not in err, err


# ------------------------------------------------------------------ an endpoint that stops answering (point 4)
class Silent:
    """A TCP server on 127.0.0.1 that accepts connections and never answers; ``held`` are the ones it accepted."""

    def __init__(self, url: str, held: list[socket.socket]) -> None:
        self.url, self.held = url, held


@pytest.fixture
def silent_endpoint():
    """A :class:`Silent` server, closed after the test."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield Silent(f"http://127.0.0.1:{server.getsockname()[1]}", held)
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_silent_endpoint_fails_within_the_timeout_saying_what_it_waited_for(silent_endpoint):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    url = silent_endpoint.url
    # botocore's own read timeout is 60 s an attempt: a run that ignored --timeout would not end within 40 s
    proc = subprocess.run(
        [*CLI, "backup", "--table", "mystack-RulesTable", "--endpoint-url", url, "--timeout", "3"],
        capture_output=True,
        check=False,
        text=True,
        env=env,
        timeout=40,
    )
    assert proc.returncode == 1
    assert f"waiting for dynamodb DescribeTable at {url}" in proc.stderr
    assert f"no answer from {url}" in proc.stderr and "within 3 s" in proc.stderr
    assert "--timeout SECONDS" in proc.stderr and "Traceback" not in proc.stderr
    # one attempt: a request that waited --timeout is not retried (botocore's standard mode would try 5 times)
    assert len(silent_endpoint.held) == 1, f"{len(silent_endpoint.held)} connections"


# ------------------------------------------------------------------ every table checked first, a summary (point 6)
def test_a_missing_table_stops_the_run_before_any_backup(tables, tmp_path, capsys):
    argv = ["backup", "--tables", "mystack-RulesTable,nope-Table,mystack-GranulesTable", "--dir", str(tmp_path)]
    assert main(argv) == 1
    assert "table 'nope-Table' does not exist; nothing was backed up" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_multi_table_run_ends_with_a_summary_table(tables, tmp_path, capsys):
    assert main(["backup", "--prefix", "mystack-", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    header = out.index(next(line for line in out if line.startswith("table ")))
    assert out[header].split() == ["table", "items", "size", "time", "result"]
    rows = {line.split()[0]: line.split() for line in out[header + 1 :]}
    assert rows["mystack-GranulesTable"][1] == "40" and rows["mystack-GranulesTable"][-1] == "ok"
    assert rows["mystack-RulesTable"][1] == "7" and rows["mystack-RulesTable"][-1] == "ok"
    client("s3").create_bucket(Bucket="ops")
    assert main(["backup", "--table", "mystack-RulesTable", "--to", "s3://ops/backups/", "--segments", "1"]) == 0
    assert "mystack-RulesTable: 7 items in 1 part -> s3://ops/" in capsys.readouterr().out


def _summary(out: str) -> dict[str, list[str]]:
    """The closing summary table of a run's stdout: each table's row, split on spaces."""
    lines = out.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("table ")))
    assert lines[header].split() == ["table", "items", "size", "time", "result"]
    return {line.split()[0]: line.split() for line in lines[header + 1 :] if line.strip()}


def test_a_multi_table_backup_to_s3_ends_with_a_summary_table(tables, capsys):
    client("s3").create_bucket(Bucket="ops")
    assert main(["backup", "--prefix", "mystack-", "--to", "s3://ops/backups/"]) == 0
    rows = _summary(capsys.readouterr().out)
    assert set(rows) == {"mystack-GranulesTable", "mystack-RulesTable"}
    for table, items in (("mystack-GranulesTable", "40"), ("mystack-RulesTable", "7")):
        row = rows[table]
        assert row[1] == items and row[-1] == "ok"
        assert row[2] != "-" and row[3:5] != ["-", "-"]  # a size in MB and a time in s


def test_a_restore_of_a_set_ends_with_a_summary_table_with_sizes(backed_up, tmp_path, capsys):
    assert main(["restore", "s3://ops/backups/", "--map", "mystack-=restore-"]) == 0
    rows = _summary(capsys.readouterr().out)
    assert set(rows) == {"restore-GranulesTable", "restore-RulesTable"}
    for table, items in (("restore-GranulesTable", "40"), ("restore-RulesTable", "7")):
        row = rows[table]
        assert row[1] == items and row[-1] == "ok"
        assert row[2] != "-" and row[3] == "MB", row  # the backup's size, not "-"


# ------------------------------------------------------------------ what help and output say (point 8)
def test_pitr_and_snapshot_tables_have_words_for_headers_and_yes_no_for_booleans(tables, capsys):
    assert main(["pitr", "status", "--table", "mystack-RulesTable"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "recovery period in days" in header and "RECOVERYPERIODINDAYS" not in header
    assert main(["--quiet", "snapshots", "create", "--table", "mystack-RulesTable"]) == 0
    capsys.readouterr()
    assert main(["snapshots", "list", "--table", "mystack-RulesTable"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ours = lines[0].split().index("ours")
    assert lines[1].split()[ours] == "yes"
    assert "False" not in lines[1] and "True" not in lines[1]


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["verify"], "--table"),
        (["start-restore"], "--map"),
        (["start-restore"], "--mode"),
        (["start-restore"], "--allow-source"),
        (["list"], "--stack-name"),
        (["backup"], "--timeout"),
    ],
)
def test_every_option_has_help_text(capsys, command, option):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    options = lines[lines.index("options:") :]  # not the usage lines, which may also start with the option
    described = [line for line in options if line.strip().startswith(option)]
    assert described, out
    words = described[0].strip().split("  ", 1)
    assert len(words) == 2 or options[options.index(described[0]) + 1].startswith(" " * 20)


# ------------------------------------------------------------------ describe, list --dir
def test_describe_a_local_file_an_s3_backup_and_a_native_export(backed_up, tmp_path, capsys):
    from tests.conftest import FIXTURES

    path = tmp_path / "r.json"
    assert main(["--quiet", "backup", "--table", "mystack-RulesTable", "--out", str(path)]) == 0
    assert main(["describe", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["format"], doc["table"], doc["items"], doc["complete"]) == ("local-file", "mystack-RulesTable", 7, True)
    assert doc["bytes"] == path.stat().st_size and doc["keySchema"][0]["AttributeName"] == "name"

    assert main(["list", "--json", "--bucket", "s3://ops", "--table", "mystack-GranulesTable"]) == 0
    url = json.loads(capsys.readouterr().out)[0]["url"]
    assert main(["describe", url]) == 0
    out = capsys.readouterr().out
    assert "table:           mystack-GranulesTable" in out and "items:           40" in out
    assert "checksums:       sha256 of every part" in out and "complete:        yes" in out
    assert "billingMode:" in out and "time:            20" in out

    export = next(p for p in (FIXTURES / "native-export").rglob("manifest-summary.json"))
    assert main(["describe", "--json", str(export.parent)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "native-export" and doc["complete"] and doc["items"] > 0


def test_describe_says_incomplete_and_exits_1(tmp_path, capsys):
    path = tmp_path / "cut.json"
    path.write_text('{"ddbBackupFile": {"formatVersion": 1, "table": "abc", "description": null}}\n')
    assert main(["describe", str(path)]) == 1
    assert "INCOMPLETE" in capsys.readouterr().out


def test_list_of_a_local_directory(tables, tmp_path, capsys):
    assert main(["--quiet", "backup", "--prefix", "mystack-", "--dir", str(tmp_path)]) == 0
    (tmp_path / "cut.json").write_text('{"ddbBackupFile": {"formatVersion": 1, "table": "abc", "description": null}}\n')
    assert main(["list", "--dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r.get("table"), r.get("items"), r["complete"]) for r in rows] == [
        (None, None, False),
        ("mystack-GranulesTable", 40, True),
        ("mystack-RulesTable", 7, True),
    ]


def test_start_restore_passes_the_write_rate_load_billing_and_pre_warm_to_the_machine(monkeypatch):
    from ddb_backup_cli import stack

    started = {}
    monkeypatch.setattr(stack, "_start", lambda args, arn, payload, prefix: started.update(payload) or 0)
    base = [
        "start-restore",
        "--state-machine-arn",
        "arn:aws:states:us-east-1:1:stateMachine:x",
        "--backup",
        "s3://b/x/",
    ]
    assert main([*base, "--table", "abc", "--write-rate", "250", "--load-billing", "on-demand", "--within", "2h"]) == 0
    assert started == {
        "source": "s3://b/x/",
        "mode": "new",
        "allowSource": False,
        "table": "abc",
        "writeRate": 250.0,
        "loadBilling": "on-demand",
        "within": "2h",
    }
    started.clear()
    assert main([*base, "--table", "abc", "--write-percent", "30"]) == 0
    assert started["writePercent"] == 30.0 and "writeRate" not in started


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--write-percent", "30", "--load-billing", "on-demand"], "give --write-rate UNITS instead"),
        (["--within", "soon"], "--within: duration 'soon'"),
        (["--write-rate", "5", "--write-percent", "5"], "not both"),
    ],
)
@pytest.mark.parametrize("command", [["restore", "f.json"], ["start-restore", "--backup", "s3://b/x/"]])
def test_bad_load_options_are_refused_naming_the_fix(command, extra, message, capsys):
    assert main([*command, "--table", "abc", *extra]) == 2
    assert message in capsys.readouterr().err
