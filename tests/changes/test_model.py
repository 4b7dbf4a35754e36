"""Model-based: random puts, updates and deletes against a table and a shadow model, exact backups while
a writer runs, then restores to chosen times, each equal to the model at that time, item for item."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import threading
import time
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit.strict.streams import StrictStreams
from tests.conftest import canonical, table_items

TABLE = "model-Table"
BUCKET = "model-backups"
#: The writer's bound during each backup (it stops sooner if the backup ends first): unbounded, it kept pace
#: with the backup it slowed, up to 17,000 writes and 11 GB on a loaded machine.
WRITES_PER_BACKUP = 500


class Writer:
    """Random writes to the table, mirrored in a model; snapshots of the model at moments between writes."""

    def __init__(self, ddb: Any, seed: int) -> None:
        self.ddb, self.rng = ddb, random.Random(seed)
        self.model: dict[tuple[str, str], dict[str, Any]] = {}
        self.snapshots: list[tuple[dt.datetime, dict[tuple[str, str], dict[str, Any]]]] = []
        self.ops = {"put": 0, "update": 0, "delete": 0}
        self.stop = threading.Event()

    def key(self) -> dict[str, Any]:
        return {"pk": {"S": f"p{self.rng.randrange(40)}"}, "sk": {"N": str(self.rng.randrange(25))}}

    def one(self) -> None:
        key = self.key()
        k = (key["pk"]["S"], key["sk"]["N"])
        kind = self.rng.choices(["put", "update", "delete"], [5, 3, 2])[0]
        if kind == "put":
            item = {
                **key,
                "n": {"N": str(self.rng.randrange(10**37)) + ".5"},
                "b": {"B": self.rng.randbytes(8)},
                "m": {
                    "M": {
                        "tags": {"SS": [f"t{self.rng.randrange(5)}", "x"]},
                        "l": {"L": [{"BOOL": True}, {"NULL": True}]},
                    }
                },
            }
            self.ddb.put_item(TableName=TABLE, Item=item)
            self.model[k] = item
        elif kind == "update":
            got = self.ddb.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="SET c = :c REMOVE b ADD ns :one",
                ExpressionAttributeValues={
                    ":c": {"S": f"v{self.rng.randrange(1000)}"},
                    ":one": {"NS": [str(self.rng.randrange(9))]},
                },
                ReturnValues="ALL_NEW",
            )
            self.model[k] = got["Attributes"]
        else:
            self.ddb.delete_item(TableName=TABLE, Key=key)
            self.model.pop(k, None)
        self.ops[kind] += 1

    def run(self, count: int | None = None, snapshot_every: int = 100) -> None:
        n = 0
        while not self.stop.is_set() and (count is None or n < count):
            self.one()
            n += 1
            if n % snapshot_every == 0:  # stream times have whole seconds: the end of this one, once past
                self.snapshots.append((end_of_this_second(), copy.deepcopy(self.model)))


def end_of_this_second() -> dt.datetime:
    """The last instant of the current second, returned once it is past: every write before it is stamped at
    or before it, every write after it later (DynamoDB Streams stamps changes in whole seconds)."""
    moment = dt.datetime.now(dt.UTC).replace(microsecond=999999)
    time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()) + 0.01)
    return moment


def create_table(ddb: Any, name: str = TABLE, stream: str | None = "NEW_AND_OLD_IMAGES") -> None:
    """The model's table (pk S, sk N), with a stream of ``stream`` images (None: no stream)."""
    spec = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": stream}} if stream else {}
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        **spec,
    )


def _state(ddb: Any, table: str) -> list[str]:
    return sorted(map(canonical, table_items(ddb, table)))


def _model(state: dict[Any, dict[str, Any]]) -> list[str]:
    return sorted(map(canonical, state.values()))


def _backup_while_writing(writer: Writer, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    thread = threading.Thread(target=writer.run, kwargs={"count": WRITES_PER_BACKUP})
    thread.start()
    try:
        time.sleep(0.05)
        assert (
            main(
                [
                    "--json",
                    "backup",
                    "--table",
                    TABLE,
                    "--to",
                    f"s3://{BUCKET}/p/",
                    "--consistent",
                    "--segments",
                    "4",
                    "--settle",
                    "0",
                ]
            )
            == 0
        )
    finally:
        writer.stop.set()
        thread.join()
        writer.stop.clear()
    [summary] = json.loads(capsys.readouterr().out)
    return dict(summary)


def test_restores_to_chosen_times_equal_the_model(
    aws: None, streams: StrictStreams, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the strict stream: 4 shards that split as they fill, empty pages, whole-second times; restore times
    given in UTC and with positive and negative offsets, each the end of a second some change was made in."""
    ddb = client("dynamodb")
    client("s3").create_bucket(Bucket=BUCKET)
    streams.split_every = 300  # a few splits, not one every 40 records: each shard's tip costs empty pages
    create_table(ddb)
    writer = Writer(ddb, seed=14)
    writer.run(count=600)
    first = _backup_while_writing(writer, capsys)
    writer.run(count=300)
    second = _backup_while_writing(writer, capsys)
    writer.run(count=300)
    assert (
        main(
            [
                "changes",
                "follow",
                "--table",
                TABLE,
                "--to",
                f"s3://{BUCKET}/p/",
                "--until-idle",
                "0",
                "--lag",
                "0",
                "-q",
            ]
        )
        == 0
    )

    after_first = [s for s in writer.snapshots if s[0] > dt.datetime.fromisoformat(first["consistentAt"])]
    chosen = [*after_first[:: max(1, len(after_first) // 6)], writer.snapshots[-1]]
    results = []
    offsets = [dt.UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=5, minutes=30))]
    for n, (when, state) in enumerate(chosen):
        target, text = f"restored-{n:02d}", when.astimezone(offsets[n % 3]).isoformat()
        assert main(["--json", "restore", f"s3://{BUCKET}/p/{TABLE}/", "--table", target, "--to-time", text]) == 0
        [row] = json.loads(capsys.readouterr().out)
        results.append((when.isoformat(), row["consistentAt"], len(state), _state(ddb, target) == _model(state)))
    print(
        f"\nops {writer.ops} (total {sum(writer.ops.values())}); backups consistent at {first['consistentAt']}, {second['consistentAt']}"
    )
    for row in results:
        print("restore to {} from backup at {}: {} items, identical {}".format(*row))
    assert {r[1] for r in results} == {first["consistentAt"], second["consistentAt"]}  # both backups serve
    assert streams.splits >= 2 and len(next(iter(streams.streams.values())).shards) >= 4
    assert all(r[3] for r in results), results
