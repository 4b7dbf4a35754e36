"""Model-based backtracks on the strict stream (issue 28 point 4): writers change a table, then several
backtracks of random key sets to random earlier times run while another writer keeps changing the other keys.

After each backtrack the selected keys equal the model at the time, every other key equals the model now
(the writer's changes made during the run included), and a selected key changed between the backtrack's read
and its write (a race made at that instant, so the test needs no timing) keeps that change and is named as
skipped. An undo puts back the state before the backtrack, again leaving the raced key as it was changed.
Seeded: each round's keys, time and race are the same on every run.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.changes import backtrack as core
from ddb_backup_cli.main import main
from devkit.strict.streams import StrictStreams
from tests.changes.test_model import create_table, end_of_this_second
from tests.conftest import canonical, table_items

BUCKET = "btm-backups"
TABLE = "btm-Table"
FROM = f"s3://{BUCKET}/p/"
KEYS = [(f"p{p}", str(s)) for p in range(8) for s in range(5)]
Model = dict[tuple[str, str], dict[str, Any]]
READ = core.read_item


class Writers:
    """Random puts, updates and deletes mirrored in a model (``lock`` guards both, so a thread may write)."""

    def __init__(self, ddb: Any, rng: random.Random) -> None:
        self.ddb, self.rng, self.lock = ddb, rng, threading.Lock()
        self.model: Model = {}
        self.serial = 0

    def write(self, key: tuple[str, str]) -> None:
        wire = {"pk": {"S": key[0]}, "sk": {"N": key[1]}}
        with self.lock:
            self.serial += 1
            kind = self.rng.choices(["put", "update", "delete"], [5, 3, 2])[0]
            if kind == "put":
                item = {**wire, "v": {"S": f"w{self.serial}"}, "tags": {"SS": ["x", f"t{self.serial % 3}"]}}
                self.ddb.put_item(TableName=TABLE, Item=item)
                self.model[key] = item
            elif kind == "update":
                got = self.ddb.update_item(
                    TableName=TABLE,
                    Key=wire,
                    UpdateExpression="SET u = :u ADD n :one",
                    ExpressionAttributeValues={":u": {"S": f"u{self.serial}"}, ":one": {"N": "1"}},
                    ReturnValues="ALL_NEW",
                )
                self.model[key] = got["Attributes"]
            else:
                self.ddb.delete_item(TableName=TABLE, Key=wire)
                self.model.pop(key, None)

    def keep_writing(self, keys: list[tuple[str, str]], stop: threading.Event, rng: random.Random) -> None:
        """Write random ``keys`` until ``stop`` (at least a few, so the writes overlap the run)."""
        n = 0
        while not stop.is_set() or n < 5:
            self.write(rng.choice(keys))
            n += 1
            stop.wait(0.02)  # a pace, not a timing: the run does not wait on the writer, nor the writer on it


def _table(ddb: Any) -> dict[tuple[str, str], str]:
    return {(i["pk"]["S"], i["sk"]["N"]): canonical(i) for i in table_items(ddb, TABLE)}


def _view(model: Model) -> dict[tuple[str, str], str]:
    return {k: canonical(v) for k, v in model.items()}


@pytest.fixture
def history(aws: None, streams: StrictStreams) -> tuple[Writers, list[tuple[Any, Model]]]:
    """The table written at random, an exact backup, then three rounds of writes each ended by a moment (the
    end of a second) and the model then, and more writes; the stream archived."""
    ddb = client("dynamodb")
    client("s3").create_bucket(Bucket=BUCKET)
    create_table(ddb, TABLE)
    writers = Writers(ddb, random.Random(2028))
    for key in KEYS:
        writers.write(key)
    argv = ["-q", "backup", "--table", TABLE, "--to", FROM, "--consistent", "--settle", "0", "--segments", "2"]
    assert main(argv) == 0
    moments = []
    for _ in range(3):
        for _ in range(25):
            writers.write(writers.rng.choice(KEYS))
        moments.append((end_of_this_second(), {k: dict(v) for k, v in writers.model.items()}))
    for _ in range(25):  # and after the last moment
        writers.write(writers.rng.choice(KEYS))
    streams.deliver()
    assert main(["-q", "changes", "follow", "--table", TABLE, "--to", FROM, "--until-idle", "0"]) == 0
    return writers, moments


def _selection(rng: random.Random, then: Model, now: Model) -> tuple[list[str], set[tuple[str, str]]]:
    """Random selectors (some keys, perhaps a whole partition), each matching an item then or now; the keys."""
    present = sorted(set(then) | set(now))
    keys = set(rng.sample(present, rng.randint(2, 6)))
    argv = [w for pk, sk in sorted(keys) for w in ("--key", f"pk={pk},sk={sk}")]
    if rng.random() < 0.5:
        pk = rng.choice(sorted({k[0] for k in present}))
        argv += ["--key", f"pk={pk}"]
        keys |= {k for k in KEYS if k[0] == pk}
    return argv, keys


def _race(monkeypatch: pytest.MonkeyPatch, writers: Writers, key: tuple[str, str] | None) -> list[Any]:
    """Right after the backtrack first reads ``key``, a writer changes it: the read is stale at the write."""
    raced: list[Any] = []

    def read_then_race(ddb: Any, table: str, wire: dict[str, Any]) -> Any:
        got = READ(ddb, table, wire)
        if key is not None and not raced and (wire["pk"]["S"], wire["sk"]["N"]) == key:
            item = {**wire, "v": {"S": "raced"}, "r": {"N": str(len(writers.model))}}
            with writers.lock:
                ddb.put_item(TableName=TABLE, Item=item)
                writers.model[key] = item
            raced.append(key)
        return got

    monkeypatch.setattr(core, "read_item", read_then_race)
    return raced


def _while_writing(writers: Writers, others: list[tuple[str, str]], seed: int, argv: list[str]) -> int:
    """``main(argv)`` while a writer keeps changing ``others``; its exit code."""
    stop = threading.Event()
    thread = threading.Thread(target=writers.keep_writing, args=(others, stop, random.Random(seed)))
    thread.start()
    try:
        return main(argv)
    finally:
        stop.set()
        thread.join()


def test_backtracks_of_random_keys_to_random_times_while_writers_go_on(
    history: tuple[Writers, list[tuple[Any, Model]]], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    writers, moments = history
    ddb, rng = writers.ddb, random.Random(28)
    rounds = [(2, True), (0, False), (1, True)]  # (moment, race); the undo of every round is checked
    for number, (moment, race) in enumerate(rounds):
        when, then = moments[moment]
        selectors, keys = _selection(rng, then, writers.model)
        differ = sorted(k for k in keys if (k in then and canonical(then[k])) != (k in writers.model and canonical(writers.model[k])))  # fmt: skip
        raced = _race(monkeypatch, writers, rng.choice(differ) if race and differ else None)
        before = {k: dict(v) for k, v in writers.model.items()}
        others = [k for k in KEYS if k not in keys]
        argv = ["--json", "backtrack", "--table", TABLE, "--from", FROM, "--to-time", when.isoformat(), *selectors]
        code = _while_writing(writers, others, number, [*argv, "--yes"])
        out, err = capsys.readouterr()
        row = json.loads(out)
        assert code == (1 if raced else 0), err
        for key in keys - set(raced):  # the selected keys as at the time ...
            if key in then:
                writers.model[key] = then[key]
            else:
                writers.model.pop(key, None)
        assert _table(ddb) == _view(writers.model)  # ... every other key as the model now, the race kept
        assert [s["key"] for s in row["skipped"]] == [f"pk={k[0]},sk={k[1]}" for k in raced]
        for key in raced:
            assert f"skipped pk={key[0]},sk={key[1]}: changed since it was read" in err

        assert row.get("runId"), row
        undo = ["-q", "backtrack", "--table", TABLE, "--from", FROM, "--undo", row["runId"], "--yes"]
        code = _while_writing(writers, others, 100 + number, undo)
        assert code == (1 if raced else 0), capsys.readouterr().err
        for key in keys - set(raced):  # the state before the backtrack, for the keys it wrote
            if key in before:
                writers.model[key] = before[key]
            else:
                writers.model.pop(key, None)
        assert _table(ddb) == _view(writers.model)
