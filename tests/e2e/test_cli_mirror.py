"""Issue 16: ``restore --mode mirror``, ``restore --dry-run`` and verify's attribute names, on an emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from ddb_backup.aws.clients import client
from ddb_backup.errors import RestoreIncomplete
from ddb_backup.restore.resume import read_mark
from ddb_backup_cli.files.restore import restore_sources
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import canonical, table_items

SOURCE, TARGET = "mystack-RulesTable", "copy-RulesTable"
WRITES = ("Put", "Delete", "Update", "Create", "Tag", "Untag", "BatchWrite", "Restore", "Import", "TransactWrite")


@pytest.fixture
def drifted(endpoint, tmp_path) -> tuple[Any, str]:
    """A backup of the Rules table (9 items) and a copy of it that drifted: 1 changed, 1 gone, 2 added."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 1, "Rules": 9})
    out = str(tmp_path / "rules.json")
    assert main(["backup", "--table", SOURCE, "--out", out, "-q"]) == 0
    assert main(["restore", out, "--table", TARGET, "-q"]) == 0
    ddb.update_item(
        TableName=TARGET,
        Key={"name": {"S": "name-0000002"}},
        UpdateExpression="SET #s = :s, extra = :e REMOVE notes",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "failed"}, ":e": {"N": "1"}},
    )
    ddb.delete_item(TableName=TARGET, Key={"name": {"S": "name-0000005"}})
    for name in ("intruder-a", "intruder-b"):
        ddb.put_item(TableName=TARGET, Item={"name": {"S": name}, "status": {"S": "x"}})
    return ddb, out


def _items(ddb: Any, table: str) -> list[str]:
    return sorted(map(canonical, table_items(ddb, table)))


def test_mirror_makes_the_target_exactly_the_backup(drifted, capsys):
    ddb, out = drifted
    capsys.readouterr()
    assert main(["--json", "restore", out, "--table", TARGET, "--mode", "mirror", "--yes"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["added"], row["changed"], row["unchanged"], row["deleted"]) == (1, 1, 7, 2)
    assert row["items"] == 2 and row["itemsRead"] == 9  # only what differed was written
    assert _items(ddb, TARGET) == _items(ddb, SOURCE)
    assert read_mark(ddb, ddb.describe_table(TableName=TARGET)["Table"]["TableArn"]) is None
    assert main(["restore", out, "--table", TARGET, "--mode", "mirror"]) == 0  # again: nothing to do
    assert "0 added, 0 changed, 9 unchanged, 0 deleted" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mode", "add", "change", "delete", "keep"), [("mirror", 1, 1, 2, 0), ("overwrite", 1, 1, 0, 2)]
)
def test_dry_run_says_what_would_change_and_changes_nothing(
    drifted, capsys, monkeypatch, mode, add, change, delete, keep
):
    ddb, out = drifted
    before = _items(ddb, TARGET)
    calls: list[str] = []
    send = BaseClient._make_api_call

    def record(self: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        return send(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)  # every call of every client
    capsys.readouterr()
    assert main(["--json", "restore", out, "--table", TARGET, "--mode", mode, "--dry-run"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["add"], row["change"], row["unchanged"], row["delete"], row["keep"]) == (add, change, 7, delete, keep)
    assert row["examples"]["add"] == [{"name": {"S": "name-0000005"}}]
    assert row["examples"]["change"] == [{"name": {"S": "name-0000002"}}]
    assert sorted(k["name"]["S"] for k in row["examples"]["delete"]) == (["intruder-a", "intruder-b"] if delete else [])
    assert _items(ddb, TARGET) == before
    assert calls and not [c for c in calls if c.startswith(WRITES)], calls
    assert main(["restore", out, "--table", TARGET, "--mode", mode, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert f"{add} to add, {change} to change, 7 unchanged, {delete} to delete" in text
    assert 'change: {"name": {"S": "name-0000002"}}' in text and "nothing created, written or deleted" in text


def test_dry_run_of_a_new_table_creates_nothing(drifted, capsys):
    ddb, out = drifted
    assert main(["--json", "restore", out, "--table", "fresh-RulesTable", "--dry-run"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["createTable"] and (row["add"], row["delete"]) == (9, 0) and len(row["examples"]["add"]) == 9
    assert "fresh-RulesTable" not in ddb.list_tables()["TableNames"]


class _Losing:
    """A DynamoDB client whose BatchWriteItem loses the put of one key: refused as invalid, or silently dropped."""

    def __init__(self, ddb: Any, silent: bool) -> None:
        self._ddb, self._silent = ddb, silent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ddb, name)

    def batch_write_item(self, RequestItems: dict[str, Any], **kwargs: Any) -> Any:
        ((table, requests),) = RequestItems.items()
        lost = [r for r in requests if r.get("PutRequest", {}).get("Item", {}).get("name") == {"S": "name-0000002"}]
        if lost and not self._silent:
            error = {"Error": {"Code": "ValidationException", "Message": "refused"}}
            raise ClientError(error, "BatchWriteItem")
        kept = [r for r in requests if r not in lost]
        return self._ddb.batch_write_item(RequestItems={table: kept}, **kwargs) if kept else {}


@pytest.mark.parametrize("silent", [False, True], ids=["dead-lettered", "lost-silently"])
def test_a_write_that_did_not_land_is_never_followed_by_deletes(drifted, tmp_path, silent):
    ddb, out = drifted
    expect = "after writing, 0 items of the backup are missing and 1 differ" if silent else "could not be written"
    with pytest.raises(RestoreIncomplete, match=expect):
        restore_sources(_Losing(ddb, silent), client("s3"), out, table=TARGET, mode="mirror")
    names = {i["name"]["S"] for i in table_items(ddb, TARGET)}
    assert {"intruder-a", "intruder-b", "name-0000005"} <= names  # written, nothing deleted
    assert read_mark(ddb, ddb.describe_table(TableName=TARGET)["Table"]["TableArn"]) is not None


def test_verify_names_the_attributes_that_differ(drifted, capsys):
    _, out = drifted
    capsys.readouterr()
    assert main(["verify", "--table", TARGET, "--backup", out]) == 1
    text = capsys.readouterr().out
    assert 'changed: {"name": {"S": "name-0000002"}}: attributes changed status; added extra; removed notes' in text
    assert main(["--json", "verify", "--table", TARGET, "--backup", out]) == 1
    report = json.loads(capsys.readouterr().out)
    (changed,) = [e for e in report["examples"] if e["kind"] == "changed"]
    assert changed["attributes"] == {"added": ["extra"], "removed": ["notes"], "changed": ["status"]}


def test_the_state_machine_refuses_mirror_naming_the_command_line():
    from pydantic import ValidationError

    from ddb_backup.events import RestoreRequest

    with pytest.raises(ValidationError, match="command line only"):
        RestoreRequest.model_validate({"source": "s3://b/p/", "table": "T", "mode": "mirror"})
