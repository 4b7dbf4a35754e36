"""Exact backups, the change archive's faults (a killed archiver, a split shard, records past retention)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from typing import Any

import pytest
from botocore.client import BaseClient

from ddb_backup.aws.clients import client
from ddb_backup.changes import archive
from ddb_backup.changes.follow import follow
from ddb_backup.changes.stream import lineage_order, read_shard
from ddb_backup.errors import BadInput
from ddb_backup.names import parse_time
from ddb_backup_cli.files import backup as backup_local
from ddb_backup_cli.main import main
from devkit.strict.streams import StrictStreams
from tests.changes.fakes import T0, FakeStreams, record
from tests.conftest import backup_items, canonical, table_items

BUCKET = "exact-backups"


def _table(ddb: Any, name: str, stream: str | None = "NEW_AND_OLD_IMAGES") -> None:
    spec = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": stream}} if stream else {}
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        **spec,
    )


def _put(ddb: Any, table: str, key: str, value: str) -> dict[str, Any]:
    item = {"k": {"S": key}, "v": {"S": value}, "b": {"B": value.encode()}}
    ddb.put_item(TableName=table, Item=item)
    return item


def _state(ddb: Any, table: str) -> list[str]:
    return sorted(map(canonical, table_items(ddb, table)))


@pytest.fixture
def env(aws: None, streams: StrictStreams) -> Any:
    client("s3").create_bucket(Bucket=BUCKET)
    return client("dynamodb")


def test_a_consistent_backup_restores_the_table_at_consistent_at(
    env: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    ddb = env
    _table(ddb, "src-Table")
    model = {f"k{i:03d}": _put(ddb, "src-Table", f"k{i:03d}", "v0") for i in range(200)}
    original = backup_local.scan_segment
    writes = iter(range(1, 1000))

    one_writer = threading.Lock()  # the segments' threads write in turn: each write and its model entry together

    def scan_while_writing(*args: Any, **kwargs: Any) -> Any:  # writes land between segments' scans
        with one_writer:
            n = next(writes)
            for i in range(0, 200, 7):
                model[f"k{i:03d}"] = _put(ddb, "src-Table", f"k{i:03d}", f"v{n}")
            ddb.delete_item(TableName="src-Table", Key={"k": {"S": f"k{n * 3:03d}"}})
            model.pop(f"k{n * 3:03d}", None)
            model[f"new{n}"] = _put(ddb, "src-Table", f"new{n}", "fresh")
        return original(*args, **kwargs)

    monkeypatch.setattr(backup_local, "scan_segment", scan_while_writing)
    written: list[dict[str, Any]] = []  # every manifest.json put, as put: an exact one never reads as plain
    call = BaseClient._make_api_call

    def recorded(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "PutObject" and params["Key"].endswith("manifest.json"):
            written.append(json.loads(params["Body"]))
        return call(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recorded)
    argv = ["--json", "backup", "--table", "src-Table", "--to", f"s3://{BUCKET}/p/", "--segments", "4", "--settle", "0"]
    assert main([*argv, "--consistent"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    expected = sorted(map(canonical, model.values()))
    _put(ddb, "src-Table", "after", "not in the backup")

    manifest = json.loads(client("s3").get_object(Bucket=BUCKET, Key=summary["manifest"])["Body"].read())
    assert manifest["consistentAt"] == summary["consistentAt"]
    assert [m.get("consistentAt") for m in written] == [manifest["consistentAt"]]  # written once
    [entry] = manifest["changes"]
    assert entry["key"].startswith("changes/") and len(entry["sha256"]) == 64 and entry["records"] > 0
    directory = summary["manifest"].rsplit("/", 1)[0]
    assert main(["restore", f"s3://{BUCKET}/{directory}/", "--table", "dst-Table", "-q"]) == 0
    assert _state(ddb, "dst-Table") == expected
    # the parts alone (what a plain scan gives) are not the table at that moment: the issue this fixes
    assert sorted(map(canonical, backup_items(client("s3"), BUCKET, summary["manifest"]))) != expected


def test_a_table_without_a_stream_is_refused_saying_how_to_enable_one(env: Any, capsys: Any) -> None:
    _table(env, "nostream-Table", stream=None)
    assert main(["backup", "--table", "nostream-Table", "--to", f"s3://{BUCKET}/p/", "--consistent"]) == 1
    err = capsys.readouterr().err
    assert "nostream-Table has no stream" in err and "StreamViewType=NEW_AND_OLD_IMAGES" in err
    _table(env, "keys-Table", stream="KEYS_ONLY")
    assert main(["changes", "follow", "--table", "keys-Table", "--to", f"s3://{BUCKET}/p/", "--until-idle", "0"]) == 1
    assert "keys-Table has KEYS_ONLY" in capsys.readouterr().err


# ------------------------------------------------------------------ the archive's faults, on laid-out shards
def _expected(records: list[dict[str, Any]], until: dt.datetime) -> list[str]:
    state: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: int(r["dynamodb"]["SequenceNumber"])):
        body = r["dynamodb"]
        if body["ApproximateCreationDateTime"] <= until:
            key = body["Keys"]["k"]["S"]
            if "NewImage" in body:
                state[key] = body["NewImage"]
            else:
                state.pop(key, None)
    return sorted(map(canonical, state.values()))


def _exact_backup_at(ddb: Any, table: str, at: dt.datetime) -> None:
    """An exact backup of an empty table consistent at ``at`` (the base every restore to a time starts from)."""
    s3 = client("s3")
    directory = f"p/{table}/20261201T000000Z-00000000/"
    manifest = {
        "format": "ddb-backup",
        "formatVersion": 1,
        "table": table,
        "backupId": "20261201T000000Z-00000000",
        "parts": [],
        "totals": {"items": 0},
        "description": ddb.describe_table(TableName=table),
        "consistentAt": at.isoformat(),
        "changes": [],
    }
    archive.put_json(s3, BUCKET, directory + "manifest.json", manifest)


def _follow(ddb: Any, streams: FakeStreams, table: str, now: dt.datetime) -> dict[str, Any]:
    return follow(ddb, streams, client("s3"), BUCKET, "p/", table, until_idle=0, lag=0, clock=lambda: now)


def _restore(table: str, target: str, when: dt.datetime) -> int:
    return main(["restore", f"s3://{BUCKET}/p/{table}/", "--table", target, "--to-time", when.isoformat(), "-q"])


def test_a_split_shard_is_read_parent_first_and_restores_exactly(env: Any) -> None:
    ddb = env
    _table(ddb, "split-Table")
    parent = [record(100 + i, i, f"k{i % 3}", f"p{i}") for i in range(6)]
    left = [record(200 + i, 6 + i, f"k{i % 3}", f"l{i}") for i in range(4)] + [record(210, 11, "k0", None)]
    right = [record(300 + i, 6.5 + i, f"r{i % 2}", f"r{i}") for i in range(3)]
    streams = FakeStreams(
        {"child-left": ("parent", left, False), "parent": (None, parent, True), "child-right": ("parent", right, False)}
    )
    assert (
        next(s["ShardId"] for s in lineage_order(streams.describe_stream("x")["StreamDescription"]["Shards"]))
        == "parent"
    )
    _exact_backup_at(ddb, "split-Table", T0 - dt.timedelta(minutes=1))
    _follow(ddb, streams, "split-Table", T0 + dt.timedelta(minutes=30))
    every = parent + left + right
    for n, minute in enumerate([2.5, 5.5, 7.0, 9.75, 20]):
        when = T0 + dt.timedelta(minutes=minute)
        assert _restore("split-Table", f"split-at-{n}", when) == 0
        assert _state(ddb, f"split-at-{n}") == _expected(every, when), minute


def test_an_archiver_killed_between_file_and_checkpoint_repeats_the_batch_and_stays_exact(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = env
    _table(ddb, "crash-Table")
    records = [record(100 + i, i, f"k{i % 4}", None if i % 5 == 4 else f"v{i}") for i in range(12)]
    streams = FakeStreams({"only": (None, records, False)})
    _exact_backup_at(ddb, "crash-Table", T0 - dt.timedelta(minutes=1))
    saved = archive.save_state
    calls = iter(range(100))

    def killed(*args: Any, **kwargs: Any) -> None:
        if next(calls) == 2:
            raise SystemExit("archiver killed")
        saved(*args, **kwargs)

    monkeypatch.setattr(archive, "save_state", killed)
    with pytest.raises(SystemExit):
        _follow(ddb, streams, "crash-Table", T0 + dt.timedelta(minutes=30))
    monkeypatch.setattr(archive, "save_state", saved)
    streams.page = 3  # the retry reads other batch boundaries (as a bisected Lambda batch does)
    _follow(ddb, streams, "crash-Table", T0 + dt.timedelta(minutes=30))
    lines = [
        c
        for k in archive.files_between(client("s3"), BUCKET, "p/crash-Table/", T0, T0 + dt.timedelta(hours=1))
        for c in archive.get_changes(client("s3"), BUCKET, k)
    ]
    assert len(lines) > len(records)  # at least once: the killed batch is archived twice
    for n, minute in enumerate([3.5, 8.5, 20]):
        when = T0 + dt.timedelta(minutes=minute)
        assert _restore("crash-Table", f"crash-at-{n}", when) == 0
        assert _state(ddb, f"crash-at-{n}") == _expected(records, when)


def test_records_past_retention_are_recorded_and_a_restore_inside_them_is_refused_by_name(
    env: Any, capsys: Any
) -> None:
    ddb = env
    _table(ddb, "trim-Table")
    records = [record(100 + i, i, f"k{i % 2}", f"v{i}") for i in range(4)]
    streams = FakeStreams({"only": (None, records, False)})
    _exact_backup_at(ddb, "trim-Table", T0 - dt.timedelta(minutes=1))
    _follow(ddb, streams, "trim-Table", T0 + dt.timedelta(minutes=5))
    # the archiver stops; the stream moves on past its 24 hours and trims what was never archived
    later = [record(500 + i, 60 * 30 + i, f"k{i % 2}", f"w{i}") for i in range(3)]
    streams.shards["only"] = (None, later, False)
    totals = _follow(ddb, streams, "trim-Table", T0 + dt.timedelta(hours=31))
    assert totals["gaps"] == 1
    [gap] = archive.gaps(client("s3"), BUCKET, "p/trim-Table/")
    assert gap["shard"] == "only" and "24 h retention" in gap["reason"]
    capsys.readouterr()
    assert _restore("trim-Table", "trim-inside", T0 + dt.timedelta(hours=10)) == 1
    err = capsys.readouterr().err
    assert "may be missing" in err and "on only" in err and gap["from"] in err
    assert _restore("trim-Table", "trim-before", T0 + dt.timedelta(minutes=2, seconds=30)) == 0
    assert _state(ddb, "trim-before") == _expected(records, T0 + dt.timedelta(minutes=2, seconds=30))


def test_a_restore_past_what_the_archive_holds_is_refused_naming_the_shard(
    env: Any, streams: StrictStreams, capsys: Any
) -> None:
    """Reach is proved per shard, on the stream: a change stamped before the time that the archive has not
    received yet (Lambda reads shards concurrently; one shard ran ahead) refuses the restore, by shard."""
    ddb, s3 = env, client("s3")
    _table(ddb, "reach-Table")
    arn = ddb.describe_table(TableName="reach-Table")["Table"]["LatestStreamArn"]
    _exact_backup_at(ddb, "reach-Table", T0 - dt.timedelta(minutes=1))
    archive.start_archive(s3, BUCKET, "p/reach-Table/", "reach-Table", arn, T0 - dt.timedelta(hours=1))
    for i in range(12):
        _put(ddb, "reach-Table", f"k{i}", "v")
    assert _restore("reach-Table", "reach-future", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)) == 1
    assert "is not yet past on DynamoDB's clock" in capsys.readouterr().err
    when = dt.datetime.now(dt.UTC).replace(microsecond=999999)  # the end of the second of the last write
    past = when + dt.timedelta(seconds=0.05)  # DynamoDB's clock has whole seconds: wait for the next one
    time.sleep(max(0.0, (past - dt.datetime.now(dt.UTC)).total_seconds()))
    # the archiver took the first shard only
    first = next(iter(streams.streams[arn].shards))
    for page in read_shard(client("dynamodbstreams"), arn, first):
        archive.append(s3, BUCKET, "p/reach-Table/", page.records)
    assert _restore("reach-Table", "reach-out", when) == 1
    err = capsys.readouterr().err
    assert "has not received yet" in err and "shardId-" in err and first not in err
    _follow(ddb, client("dynamodbstreams"), "reach-Table", dt.datetime.now(dt.UTC))
    assert _restore("reach-Table", "reach-in", when) == 0
    assert _state(ddb, "reach-in") == _state(ddb, "reach-Table")
    with pytest.raises(BadInput):
        parse_time("yesterday", "--to-time")


def test_a_shard_gone_before_it_was_archived_to_its_end_is_a_gap(env: Any, capsys: Any) -> None:
    ddb = env
    _table(ddb, "lost-Table")
    parent = [record(100 + i, i, "k", f"p{i}") for i in range(3)]
    streams = FakeStreams({"parent": (None, parent, False)})
    _exact_backup_at(ddb, "lost-Table", T0 - dt.timedelta(minutes=1))
    _follow(ddb, streams, "lost-Table", T0 + dt.timedelta(minutes=5))
    # the parent went on, split, and left the stream before the archiver saw its end
    child = [record(300, 60 * 26, "k", "c0")]
    streams.shards = {"child": ("parent", child, False)}
    _follow(ddb, streams, "lost-Table", T0 + dt.timedelta(hours=27))
    [gap] = archive.gaps(client("s3"), BUCKET, "p/lost-Table/")
    assert gap["shard"] == "parent" and "left the stream" in gap["reason"]
    capsys.readouterr()
    assert _restore("lost-Table", "lost-inside", T0 + dt.timedelta(hours=26, minutes=30)) == 1
    assert "on parent" in capsys.readouterr().err


def test_a_scan_that_outlasted_the_stream_retention_is_refused(env: Any) -> None:
    from ddb_backup.changes.consistent import Position
    from ddb_backup.changes.gather import Limits, gather
    from ddb_backup.errors import BackupIncomplete

    streams = FakeStreams({"later": (None, [record(900, 60 * 25, "k", "v")], False)})
    began = Position("slow-Table", "arn", frozenset({"first"}), T0)
    with pytest.raises(BackupIncomplete, match=r"shards \['first'\] were trimmed \(24 h retention\) during the scan"):
        gather(client("s3"), streams, BUCKET, "p/slow-Table/20261201T000000Z-0123abcd/", began, Limits(settle=0))


def test_the_plan_refuses_an_exact_backup_whose_scan_outlasts_the_stream_retention(env: Any) -> None:
    from ddb_backup.backup.exact import noter

    _table(env, "huge-Table")
    description = {"Table": {**env.describe_table(TableName="huge-Table")["Table"], "TableSizeBytes": 4 * 2**40}}
    note = noter(env, client("dynamodbstreams"), True, 100)
    assert note is not None
    assert "stream" in note(
        "huge-Table", description, 4000, None
    )  # 4 TiB on-demand, 12,000 reads a second doubling up to the 40,000 quota: 4.3 h
    with pytest.raises(BadInput) as refused:
        note("huge-Table", description, 4000, 1000.0)  # at 1,000 read units a second: 6 days
    assert "huge-Table: its scan is estimated at" in str(refused.value) and "24 h retention" in str(refused.value)
    unasked = noter(env, client("dynamodbstreams"), None, 100)
    assert unasked is not None
    warned = unasked("huge-Table", description, 4000, 1000.0)
    assert warned is not None and "without consistentAt" in warned["warning"]
    assert noter(env, client("dynamodbstreams"), False, 100) is None
