"""``ddb-backup backtrack``, on the strict stream (issue 28 point 2): some items of a live table put back in place
to a time (from an exact backup and the change archive), conditional writes that never clobber, and --undo.

The table (pk S, sk N) is backed up exactly; a good change follows (the moment to go back to ends that second),
then a bad second: changes, a delete, a create, in the selected partition and outside it. The archive follows.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.changes import backtrack as core
from ddb_backup_cli.main import main
from devkit.strict.streams import StrictStreams
from tests.changes.test_model import create_table, end_of_this_second
from tests.conftest import canonical, table_items

BUCKET = "backtrack-backups"
TABLE = "bt-Table"
FROM = f"s3://{BUCKET}/p/"


def _put(ddb: Any, pk: str, sk: int, value: str, **more: Any) -> dict[str, Any]:
    item = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"S": value}, **more}
    ddb.put_item(TableName=TABLE, Item=item)
    return item


def _state(ddb: Any) -> dict[tuple[str, str], str]:
    return {(i["pk"]["S"], i["sk"]["N"]): canonical(i) for i in table_items(ddb, TABLE)}


@pytest.fixture
def history(aws: None, streams: StrictStreams) -> dict[str, Any]:
    """The table after the bad second, the model at the good moment (``when``), and the table's ARNs."""
    ddb = client("dynamodb")
    client("s3").create_bucket(Bucket=BUCKET)
    create_table(ddb, TABLE)
    for pk in ("a", "b"):
        for sk in range(8):
            _put(ddb, pk, sk, "v0", tags={"SS": ["x", "y"]})
    argv = ["-q", "backup", "--table", TABLE, "--to", FROM, "--consistent", "--settle", "0", "--segments", "1"]
    assert main(argv) == 0
    _put(ddb, "a", 2, "good")  # after the backup, before the moment: only the archive has it
    when = end_of_this_second()
    at_when = _state(ddb)
    for pk, sk in (("a", 0), ("a", 1), ("a", 2), ("b", 0)):
        _put(ddb, pk, sk, "bad", extra={"N": "1"})
    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "a"}, "sk": {"N": "3"}})
    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "b"}, "sk": {"N": "3"}})
    _put(ddb, "a", 20, "new")
    end_of_this_second()
    streams.deliver()
    assert main(["-q", "changes", "follow", "--table", TABLE, "--to", FROM, "--until-idle", "0"]) == 0
    table = ddb.describe_table(TableName=TABLE)["Table"]
    return {"ddb": ddb, "when": when.isoformat(), "at_when": at_when, "table": table}


SELECTED = [("a", "0"), ("a", "2"), ("a", "3"), ("a", "20")]


def _argv(history: dict[str, Any], *more: str) -> list[str]:
    keys = [w for pk, sk in SELECTED for w in ("--key", f"pk={pk},sk={sk}")]
    return ["backtrack", "--table", TABLE, "--from", FROM, "--to-time", history["when"], *keys, *more]


def _expected(history: dict[str, Any], before: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """The selected keys as at the moment, every other key as before the backtrack."""
    out = {k: v for k, v in before.items() if k not in SELECTED}
    out.update({k: v for k, v in history["at_when"].items() if k in SELECTED})
    return out


def test_the_selected_keys_go_back_to_the_time_and_nothing_else_changes(history: dict[str, Any]) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    assert ("a", "20") in before and ("a", "3") not in before
    assert main(["-q", *_argv(history, "--yes")]) == 0
    after = _state(ddb)
    assert after == _expected(history, before)
    assert ("a", "3") in after and ("a", "20") not in after  # deleted since: back; created since: gone
    assert json.loads(after[("a", "2")])["v"] == {"S": "good"}  # the archive's change, not the backup's image
    table = ddb.describe_table(TableName=TABLE)["Table"]
    assert (table["TableArn"], table["LatestStreamArn"]) == (history["table"]["TableArn"], history["table"]["LatestStreamArn"])  # fmt: skip


def test_a_partition_selector_takes_back_the_whole_partition(history: dict[str, Any]) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    argv = ["-q", "backtrack", "--table", TABLE, "--from", FROM, "--to-time", history["when"], "--key", "pk=a", "--yes"]
    assert main(argv) == 0
    after = _state(ddb)
    assert {k: v for k, v in after.items() if k[0] == "a"} == {k: v for k, v in history["at_when"].items() if k[0] == "a"}  # fmt: skip
    assert {k: v for k, v in after.items() if k[0] != "a"} == {k: v for k, v in before.items() if k[0] != "a"}


def test_a_dry_run_shows_the_diff_and_writes_nothing(history: dict[str, Any], capsys: Any) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    assert main(_argv(history, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert _state(ddb) == before
    assert "dry run: nothing written" in out
    assert re.search(r"put back +pk=a,sk=0 +\(extra, tags, v\)", out)  # the key, and which attributes change
    assert re.search(r"recreate +pk=a,sk=3 ", out) and re.search(r"delete +pk=a,sk=20 ", out)
    assert not client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"p/{TABLE}/{core.BACKTRACKS}").get("Contents")


def test_without_yes_and_without_a_terminal_it_is_refused(
    history: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # an answer is there, but no terminal to have asked on
    assert main(_argv(history)) == 2
    assert "stdin is not a terminal: give --yes" in capsys.readouterr().err
    assert _state(ddb) == before


def test_an_item_changed_between_the_read_and_the_write_is_skipped_and_named(
    history: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    read = core.read_item
    racing: list[dict[str, Any]] = []

    def read_then_someone_writes(ddb_: Any, table: str, key: dict[str, Any]) -> Any:
        got = read(ddb_, table, key)
        if key == {"pk": {"S": "a"}, "sk": {"N": "0"}} and not racing:
            racing.append(_put(ddb, "a", 0, "meanwhile", extra={"N": "1"}))  # same attributes, another value
        return got

    monkeypatch.setattr(core, "read_item", read_then_someone_writes)
    assert main(["-q", *_argv(history, "--yes")]) == 1
    err = capsys.readouterr().err
    assert "skipped pk=a,sk=0: changed since it was read" in err and "left as they are" in err
    after = _state(ddb)
    assert after[("a", "0")] == canonical(racing[0])  # not clobbered
    expected = _expected(history, before)
    expected[("a", "0")] = canonical(racing[0])
    assert after == expected  # the others were written


def test_undo_puts_back_the_state_before_the_backtrack(history: dict[str, Any], capsys: Any) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    assert main(["--json", *_argv(history, "--yes")]) == 0
    run_id = json.loads(capsys.readouterr().out)["runId"]
    assert _state(ddb) != before
    assert main(["-q", "backtrack", "--table", TABLE, "--from", FROM, "--undo", run_id, "--yes"]) == 0
    assert _state(ddb) == before


def test_undo_leaves_an_item_changed_since_the_backtrack(history: dict[str, Any], capsys: Any) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    assert main(["--json", *_argv(history, "--yes")]) == 0
    run_id = json.loads(capsys.readouterr().out)["runId"]
    later = _put(ddb, "a", 3, "later")
    assert main(["-q", "backtrack", "--table", TABLE, "--from", FROM, "--undo", run_id, "--yes"]) == 1
    assert "skipped pk=a,sk=3: changed since the backtrack" in capsys.readouterr().err
    expected = {**before, ("a", "3"): canonical(later)}
    assert _state(ddb) == expected


def test_a_time_the_backups_do_not_reach_is_refused_naming_why(history: dict[str, Any], capsys: Any) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    early = (dt.datetime.fromisoformat(history["when"]) - dt.timedelta(hours=1)).isoformat()
    argv = ["backtrack", "--table", TABLE, "--from", FROM, "--to-time", early, "--key", "pk=a", "--yes"]
    assert main(argv) == 1
    assert "no exact backup consistent at or before" in capsys.readouterr().err
    assert _state(ddb) == before


def test_a_selector_is_required(history: dict[str, Any], capsys: Any) -> None:
    assert main(["backtrack", "--table", TABLE, "--from", FROM, "--to-time", history["when"], "--yes"]) == 2
    assert "choose its items with --key" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_it_asks_and_a_no_writes_nothing(
    history: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert main(["-q", *_argv(history)]) == 1
    assert _state(ddb) == before
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main(["-q", *_argv(history)]) == 0
    assert _state(ddb) == _expected(history, before)


def test_a_key_that_matches_nothing_then_or_now_is_refused_before_any_write(
    history: dict[str, Any], capsys: Any
) -> None:
    ddb = history["ddb"]
    before = _state(ddb)
    assert main([*_argv(history, "--yes"), "--key", "pk=zz,sk=1"]) == 1
    assert "--key 'pk=zz,sk=1': matched no item of bt-Table" in capsys.readouterr().err
    assert _state(ddb) == before


def test_a_partition_selector_is_read_by_query_and_the_dry_run_states_the_cost(
    history: dict[str, Any], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 28 point 3: a selection of whole partitions reads the live table by Query, not a whole-table Scan;
    the dry run says what reading the backup (every part) and the writes cost, in bytes and dollars."""
    calls: list[str] = []

    def watched(service: str) -> Any:  # the clients the command makes, each DynamoDB call noted
        made = client(service)
        if service == "dynamodb":
            made.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
        return made

    monkeypatch.setattr("ddb_backup_cli.files.backtrack.client", watched)
    argv = ["backtrack", "--table", TABLE, "--from", FROM, "--to-time", history["when"], "--key", "pk=a"]
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Query" in calls and "Scan" not in calls
    assert "a consistent Query of 1 partition(s), then a consistent GetItem a key" in out
    objects = client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"p/{TABLE}/")["Contents"]
    parts = [o for o in objects if "/data/" in o["Key"]]
    assert f"reads all {len(parts)} part(s) of the backup, {sum(o['Size'] for o in parts):,} bytes, from S3" in out
    assert "writing 5 item(s): 5 write units" in out and "on-demand in us-east-1" in out  # a0-a3 back, a20 gone
    calls.clear()
    assert main(["-q", *argv[:-2], "--key-prefix", "pk=a", "--dry-run"]) == 0
    assert "Scan" in calls  # a prefix names no whole partition: the table is scanned
