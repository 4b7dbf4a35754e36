"""Issue 24: every printed resume command finishes the job it names, through an operator's mistakes too.

A message that tells the user what to run next is a promise: each test here
runs the printed command and checks the table equals the backup it names
(and its billing is what it was), not only that the command is printed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from ddb_backup.aws.clients import client
from ddb_backup_cli.files import mirror
from ddb_backup_cli.files import restore as restore_module
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import canonical, table_items

SOURCE, TARGET = "mystack-RulesTable", "copy-RulesTable"


def _items(ddb: Any, table: str) -> list[str]:
    return sorted(map(canonical, table_items(ddb, table)))


def _printed(err: str) -> list[str]:
    """The command a message says to run (its words after ``ddb-backup``)."""
    found = re.search(r"resume it with `([^`]+)`", err)
    assert found, err
    words = shlex.split(found.group(1))
    assert words[0] == "ddb-backup", words
    return words[1:]


@pytest.fixture
def drifted(endpoint, tmp_path) -> tuple[Any, str]:
    """A backup file of the Rules table (9 items) and a copy that drifted: 1 changed, 1 gone, 2 added."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 9})
    out = str(tmp_path / "rules.json")
    assert main(["backup", "--table", SOURCE, "--out", out, "-q"]) == 0
    assert main(["restore", out, "--table", TARGET, "-q"]) == 0
    ddb.update_item(
        TableName=TARGET,
        Key={"name": {"S": "name-0000002"}},
        UpdateExpression="SET extra = :e",
        ExpressionAttributeValues={":e": {"N": "1"}},
    )
    ddb.delete_item(TableName=TARGET, Key={"name": {"S": "name-0000005"}})
    for name in ("intruder-a", "intruder-b"):
        ddb.put_item(TableName=TARGET, Item={"name": {"S": name}, "status": {"S": "x"}})
    return ddb, out


# ------------------------------------------------------------------ point 1: a mirror resumes as a mirror
def test_an_interrupted_mirror_prints_a_command_that_makes_the_table_the_backup(drifted, monkeypatch, capsys):
    ddb, out = drifted

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(mirror, "diff_items", ctrl_c)  # Ctrl-C while the first diff runs: nothing written yet
        assert main(["restore", out, "--table", TARGET, "--mode", "mirror", "--yes"]) == 130
    err = capsys.readouterr().err
    assert "stopped before any item was written" in err, err
    assert "partial restore" not in err, err
    command = _printed(err)
    assert command[command.index("--mode") + 1] == "mirror", command
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)  # the operator runs it at a terminal and agrees
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert main(command) == 0, capsys.readouterr().err
    assert _items(ddb, TARGET) == _items(ddb, SOURCE)  # the intruders deleted, the changed item put back


# ------------------------------------------------------------------ point 2: the backup the mark names
@pytest.fixture
def two_backups(endpoint, monkeypatch, capsys) -> dict[str, Any]:
    """The Rules table (300 items) backed up to S3; a restore of its directory stopped part-way; then a newer backup
    of the table after 100 items were deleted and 50 changed."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 300})
    client("s3").create_bucket(Bucket="ops")
    first = _items(ddb, SOURCE)
    assert main(["--quiet", "backup", "--table", SOURCE, "--to", "s3://ops/backups/"]) == 0
    real = restore_module.fastwrite.read_part
    sent = 0

    def stop_part_way(*args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        for item in real(*args, **kwargs):
            if sent == 230:
                raise KeyboardInterrupt
            sent += 1
            yield item

    with monkeypatch.context() as patch:
        patch.setattr(restore_module.fastwrite, "read_part", stop_part_way)
        directory = f"s3://ops/backups/{SOURCE}/"
        assert main(["restore", directory, "--table", TARGET, "--workers", "1"]) == 130
    err = capsys.readouterr().err
    time.sleep(1.1)  # backup ids sort by the second
    for i, item in enumerate(table_items(ddb, SOURCE)):
        if i < 100:
            ddb.delete_item(TableName=SOURCE, Key={"name": item["name"]})
        elif i < 150:
            ddb.put_item(TableName=SOURCE, Item={**item, "status": {"S": "changed"}})
    assert main(["--quiet", "backup", "--table", SOURCE, "--to", "s3://ops/backups/"]) == 0
    capsys.readouterr()
    return {"ddb": ddb, "first": first, "err": err}


def test_a_resume_after_a_newer_backup_finishes_with_the_backup_it_began(two_backups, capsys):
    ddb, err = two_backups["ddb"], two_backups["err"]
    command = _printed(err)
    assert re.fullmatch(rf"s3://ops/backups/{SOURCE}/\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}/", command[1]), command
    assert main(command) == 0, capsys.readouterr().err
    assert _items(ddb, TARGET) == two_backups["first"]


def test_a_resume_from_another_backup_is_refused_naming_both(two_backups, capsys):
    ddb = two_backups["ddb"]
    directory = f"s3://ops/backups/{SOURCE}/"
    assert main(["restore", directory, "--table", TARGET, "--mode", "overwrite"]) == 1
    err = capsys.readouterr().err
    began = _printed(two_backups["err"])[1].rstrip("/").rpartition("/")[2]
    assert f"holds a partial restore of backup {began}" in err, err
    newer = re.search(r"this run restores backup (\d{8}T\d{6}Z-[0-9a-f]{8})", err)
    assert newer and newer.group(1) != began, err
    assert main(_printed(err)) == 0  # the command it names finishes the first backup
    assert _items(ddb, TARGET) == two_backups["first"]


# ------------------------------------------------------------------ point 3: billing switched back
def _provisioned(ddb: Any, name: str, read: int = 5, write: int = 7) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": read, "WriteCapacityUnits": write},
    )


def _billing(ddb: Any, name: str) -> tuple[str, int, int]:
    table = ddb.describe_table(TableName=name)["Table"]
    units = table["ProvisionedThroughput"]
    mode = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    return mode, units["ReadCapacityUnits"], units["WriteCapacityUnits"]


def test_a_killed_load_on_demand_is_switched_back_by_the_printed_resume(endpoint, tmp_path, monkeypatch, capsys):
    """SIGKILL after the switch: no ``finally`` runs. The next run's printed command puts the units back."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 40})
    out = str(tmp_path / "rules.json")
    assert main(["backup", "--table", SOURCE, "--out", out, "-q"]) == 0
    _provisioned(ddb, TARGET)

    class Killed(BaseException):
        """As SIGKILL: nothing after it runs, not even the restore's own clean-up."""

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(restore_module, "_write_one", killed)
        patch.setattr(restore_module, "_put_back_all", lambda *a: None)
        with pytest.raises(Killed):
            main(["restore", out, "--table", TARGET, "--mode", "overwrite", "--load-billing", "on-demand"])
    assert _billing(ddb, TARGET)[0] == "PAY_PER_REQUEST"
    capsys.readouterr()
    assert main(["restore", out, "--table", TARGET]) == 1  # the operator runs it again, plainly
    err = capsys.readouterr().err
    assert f"table {TARGET} is on-demand for a restore's load; it was PROVISIONED" in err, err
    assert main(_printed(err)) == 0, capsys.readouterr().err
    assert _billing(ddb, TARGET) == ("PROVISIONED", 5, 7)
    assert _items(ddb, TARGET) == _items(ddb, SOURCE)
    assert [t["Key"] for t in ddb.list_tags_of_resource(ResourceArn=_arn(ddb, TARGET))["Tags"]] == []


def _arn(ddb: Any, name: str) -> str:
    return str(ddb.describe_table(TableName=name)["Table"]["TableArn"])


@pytest.fixture
def set_run(endpoint, capsys) -> Any:
    """A backup run of the Rules and Users tables; restore-RulesTable exists, provisioned at 5/7."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Rules": 20, "Users": 10})
    client("s3").create_bucket(Bucket="ops")
    tables = "mystack-RulesTable,mystack-UsersTable"
    assert main(["--quiet", "backup", "--tables", tables, "--to", "s3://ops/backups/"]) == 0
    _provisioned(ddb, "restore-RulesTable")
    capsys.readouterr()
    return ddb


def _refusing(monkeypatch: pytest.MonkeyPatch, refuse: Any) -> None:
    """Every client's calls, with ``refuse(operation, params)`` answering an error code for those it refuses."""
    send = BaseClient._make_api_call

    def call(self: Any, operation: str, params: Any) -> Any:
        code = refuse(operation, params)
        if code:
            raise ClientError({"Error": {"Code": code, "Message": "refused by the test"}}, operation)
        return send(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)


SET_RESTORE = ["restore", "s3://ops/backups/", "--map", "mystack-=restore-", "--mode", "overwrite"]


def test_a_set_whose_second_create_fails_switches_the_first_back(set_run, monkeypatch, capsys):
    ddb = set_run
    _refusing(monkeypatch, lambda op, p: op == "CreateTable" and p["TableName"] == "restore-UsersTable" and "Limit")
    assert main([*SET_RESTORE, "--load-billing", "on-demand"]) == 1
    err = capsys.readouterr().err
    assert "restore-UsersTable could not be created" in err, err
    assert "restore-RulesTable was switched back to PROVISIONED" in err, err
    assert _billing(ddb, "restore-RulesTable") == ("PROVISIONED", 5, 7)


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI runs the printed command")
def test_a_table_left_on_demand_is_named_with_a_command_that_switches_it_back(set_run, monkeypatch, capsys):
    ddb = set_run

    def refuse(operation: str, params: dict[str, Any]) -> str | None:
        if operation == "CreateTable" and params["TableName"] == "restore-UsersTable":
            return "ValidationException"
        if operation == "UpdateTable" and params.get("BillingMode") == "PROVISIONED":
            return "ValidationException"
        return None

    with monkeypatch.context() as patch:
        _refusing(patch, refuse)
        assert main([*SET_RESTORE, "--load-billing", "on-demand"]) == 1
    err = capsys.readouterr().err
    assert _billing(ddb, "restore-RulesTable")[0] == "PAY_PER_REQUEST"
    found = re.search(
        r"table restore-RulesTable [^\n]*still on-demand: switch it back with: (aws dynamodb [^\n]+)", err
    )
    assert found, err
    words = shlex.split(found.group(1).rstrip(";. "))
    done = subprocess.run(words, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _billing(ddb, "restore-RulesTable") == ("PROVISIONED", 5, 7)


# ------------------------------------------------------------------ point 4: mirror deletes only on a checked count
@pytest.fixture
def granules(endpoint, tmp_path) -> tuple[Any, str, str]:
    """restore-GranulesTable holding all 120 items of a cumulus-api file; the same file cut after 50 lines."""
    from tests.conftest import FIXTURES

    ddb = client("dynamodb")
    full = FIXTURES / "cumulus-api-1.18.0" / "mystack-GranulesTable.json"
    cut = tmp_path / "cut.json"
    cut.write_bytes(b"".join(full.read_bytes().splitlines(keepends=True)[:50]))
    argv = ["restore", str(full), "--table", "restore-GranulesTable", "--keys", "granuleId", "--expect-items", "120"]
    assert main([*argv, "-q"]) == 0
    return ddb, str(full), str(cut)


def test_mirror_refuses_a_source_without_a_count_before_anything(granules, capsys):
    ddb, _, cut = granules
    assert main(["restore", cut, "--table", "restore-GranulesTable", "--mode", "mirror", "--yes"]) == 1
    err = capsys.readouterr().err
    assert f"{cut} carries no count of its items" in err and "--expect-items N" in err, err
    assert len(table_items(ddb, "restore-GranulesTable")) == 120
    assert main(["restore", cut, "--table", "restore-GranulesTable", "--mode", "mirror", "--expect-items", "120"]) == 1
    assert len(table_items(ddb, "restore-GranulesTable")) == 120
    assert main(["--json", "restore", cut, "--table", "restore-GranulesTable", "--mode", "mirror", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["delete"] == 70  # a dry run deletes nothing: no count needed


@pytest.fixture
def extra(granules) -> tuple[Any, str]:
    """The full file and a target holding it and 3 items more."""
    ddb, full, _ = granules
    for i in range(3):
        ddb.put_item(TableName="restore-GranulesTable", Item={"granuleId": {"S": f"extra-{i}"}})
    return ddb, full


MIRROR = ["restore", "--table", "restore-GranulesTable", "--mode", "mirror", "--expect-items", "120"]


def test_mirror_without_a_terminal_deletes_only_with_yes(extra, capsys):
    ddb, full = extra
    assert main([*MIRROR[:1], full, *MIRROR[1:]]) == 1  # pytest's stdin is no terminal
    err = capsys.readouterr().err
    assert "would delete 3 items of restore-GranulesTable" in err and "--yes" in err, err
    assert len(table_items(ddb, "restore-GranulesTable")) == 123
    assert main([*MIRROR[:1], full, *MIRROR[1:], "--yes"]) == 0
    assert len(table_items(ddb, "restore-GranulesTable")) == 120


@pytest.mark.parametrize(("answer", "code", "left"), [("n", 1, 123), ("y", 0, 120)])
def test_mirror_on_a_terminal_asks_before_deleting(extra, capsys, monkeypatch, answer, code, left):
    ddb, full = extra
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    assert main([*MIRROR[:1], full, *MIRROR[1:]]) == code
    assert len(asked) == 1 and "delete 3 items of restore-GranulesTable" in asked[0], asked
    assert len(table_items(ddb, "restore-GranulesTable")) == left


# ------------------------------------------------------------------ issue 24's leftovers
def test_the_printed_mirror_resume_runs_with_no_terminal(drifted, monkeypatch, capsys):
    """A script (no terminal to ask) runs the printed command: it carries --yes, so the mirror finishes."""
    ddb, out = drifted

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(mirror, "diff_items", ctrl_c)
        assert main(["restore", out, "--table", TARGET, "--mode", "mirror", "--yes"]) == 130
    command = _printed(capsys.readouterr().err)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(command) == 0, capsys.readouterr().err
    assert _items(ddb, TARGET) == _items(ddb, SOURCE)


def test_a_set_failing_with_no_error_of_its_own_names_the_table_left_on_demand(set_run, monkeypatch, capsys):
    """The network drops at the second CreateTable and the first table's switch back is refused: the failure is no
    DdbBackupError, yet the message names the table left on-demand with the command that switches it back."""
    from botocore.exceptions import EndpointConnectionError

    ddb = set_run
    send = BaseClient._make_api_call

    def call(self: Any, operation: str, params: Any) -> Any:
        if operation == "CreateTable" and params["TableName"] == "restore-UsersTable":
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        if operation == "UpdateTable" and params.get("BillingMode") == "PROVISIONED":
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "refused"}}, operation)
        return send(self, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", call)
        assert main([*SET_RESTORE, "--load-billing", "on-demand"]) == 1
    err = capsys.readouterr().err
    assert "Could not connect to the endpoint URL" in err, err
    found = re.search(
        r"table restore-RulesTable [^\n]*still on-demand: switch it back with: (aws dynamodb [^\n;]+)", err
    )
    assert found, err
    assert _billing(ddb, "restore-RulesTable")[0] == "PAY_PER_REQUEST"
    if shutil.which("aws"):
        command = shlex.split(found.group(1).rstrip(". "))
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert _billing(ddb, "restore-RulesTable") == ("PROVISIONED", 5, 7)


def test_a_set_failing_while_writing_with_no_error_of_its_own_says_where_each_table_stands(
    set_run, monkeypatch, capsys
):
    """A failure that is no DdbBackupError while the second table is written: the set's summary is printed too."""
    calls = 0
    real = restore_module._write_one

    def fails_second(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(restore_module, "_write_one", fails_second)
    assert main(SET_RESTORE) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the set restore stopped; its tables:" in err, err
    assert re.search(r"restore-RulesTable\s+finished", err) and "marked, partial" in err, err
    monkeypatch.setattr(restore_module, "_write_one", real)
    assert main(_printed(err)) == 0, capsys.readouterr().err
