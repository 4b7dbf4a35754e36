"""``ddb-backup describe`` of local files (issue 24 point 11): the checksum a local file's end line carries,
completeness that a bare file cannot prove, and no Python ``None`` in what is printed."""

from __future__ import annotations

import json

from ddb_backup.format.localfile import write_local_file
from ddb_backup_cli.main import main

DESCRIPTION = {
    "Table": {
        "TableName": "mystack-RulesTable",
        "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "name", "AttributeType": "S"}],
    }
}


def _described(capsys, path: str) -> dict[str, str]:
    assert main(["describe", path]) == 0
    out = capsys.readouterr().out
    assert "None" not in out, out
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_a_local_file_with_a_sha256_end_line_says_so_and_is_complete(tmp_path, capsys):
    path = tmp_path / "r.json"
    items = [{"name": {"S": f"r{i}"}} for i in range(3)]
    write_local_file(path, items, table="mystack-RulesTable", description=DESCRIPTION)
    assert '"sha256"' in path.read_text().splitlines()[-1]
    shown = _described(capsys, str(path))
    assert shown["checksums"] == "sha256 of its lines (end line)"
    assert shown["complete"] == "yes"
    assert shown["stream"] == "-" and shown["ttlAttribute"] == "-" and shown["globalIndexes"] == "-", shown


def test_a_bare_file_cannot_say_it_is_complete(tmp_path, capsys):
    path = tmp_path / "cumulus.json"
    path.write_text("".join(json.dumps({"name": f"r{i}", "state": "ENABLED"}) + "\n" for i in range(3)))
    shown = _described(capsys, str(path))
    assert shown["format"] == "cumulus-api"
    assert shown["checksums"] == "none"
    assert shown["complete"] == "unknown (no count or checksum)"
    assert main(["describe", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["verifiable"] is False
