"""Plan, segment math, scan continuation and finalize, on plain moto (no state machine)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from moto.s3.models import s3_backends

from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Settings, choose_segments, for_the_state, plan_run, resolve_tables
from ddb_backup.backup.scan import ScanSettings, scan_segment
from ddb_backup.errors import BackupIncomplete, BadInput, TableNotFound
from ddb_backup.format import layout
from devkit import sample
from tests.conftest import backup_items, canonical, table_items

BUCKET = "backups"


@pytest.mark.parametrize(
    ("size", "per", "cap", "expected"),
    [
        (0, 100, 10, 1),
        (1, 100, 10, 1),
        (100, 100, 10, 1),
        (101, 100, 10, 2),
        (10_000, 100, 10, 10),
        (5, 1, 1_000_000_000, 5),
    ],
)
def test_segments_follow_size_within_bounds(size, per, cap, expected):
    assert choose_segments(size, per, cap) == expected


def test_segments_never_exceed_dynamodb_limit():
    assert choose_segments(10**18, 1, 10**9) == 1_000_000


@pytest.fixture
def world(ddb, s3):
    s3.create_bucket(Bucket=BUCKET)
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 120, "Rules": 5})
    return ddb, s3


def test_tables_resolve_by_prefix_or_list(world):
    ddb, _ = world
    assert resolve_tables(ddb, None, "mystack-") == ["mystack-GranulesTable", "mystack-RulesTable"]
    assert resolve_tables(ddb, ["b-table", "a-table", "b-table"], None) == ["b-table", "a-table"]
    with pytest.raises(TableNotFound, match="nope-"):
        resolve_tables(ddb, None, "nope-")
    with pytest.raises(BadInput, match="either"):
        resolve_tables(ddb, ["x-table"], "x")


def _first_dir(s3, run):
    """The backup directory of the run's first table, from the table list the plan wrote to S3."""
    return json.loads(s3.get_object(Bucket=BUCKET, Key=run["tablesKey"])["Body"].read())[0]["backupDir"]


def test_plan_writes_the_work_list_and_each_plan(world):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET, prefix="p/"), table_prefix="mystack-", segments=4)
    work = json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read())
    assert len(work) == run["segments"] == 8
    assert {(w["table"], w["segment"]) for w in work} == {
        (t, s) for t in ("mystack-GranulesTable", "mystack-RulesTable") for s in range(4)
    }
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=_first_dir(s3, run) + layout.PLAN)["Body"].read())
    assert plan["description"]["Table"]["TableName"] == "mystack-GranulesTable"
    assert _first_dir(s3, run) == f"p/mystack-GranulesTable/{run['backupId']}/"
    # The state holds no list that grows with the tables: the table list is in S3, beside the work list.
    state = for_the_state(run)
    assert state["tableCount"] == 2 and state["tablesKey"] == f"p/@ddb-backup/runs/{run['backupId']}/tables.json"
    assert not [k for k, v in state.items() if isinstance(v, list)]


def _run_all(ddb, s3, run, settings, pages_per_call=None):
    """Drive every segment to done the way the state machine does, counting invocations."""
    calls = 0
    for entry in json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read()):
        task = dict(entry)
        while not task.get("done"):
            budget = iter(range(pages_per_call or 10**9, -1, -1)) if pages_per_call else None
            task = scan_segment(ddb, s3, settings, task, time_left=(lambda b=budget: next(b) if b else 1.0))
            json.dumps(task)  # state must stay JSON
            calls += 1
    return calls


def test_continuation_covers_every_item_exactly_once(world):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-GranulesTable"], segments=3)
    settings = ScanSettings(bucket=BUCKET, page_limit=7, part_bytes=4000)
    calls = _run_all(ddb, s3, run, settings, pages_per_call=1)
    assert calls > 3 * 2  # segments really spanned several invocations
    summary = finalize_table(s3, BUCKET, _first_dir(s3, run))
    saved = sorted(canonical(i) for i in backup_items(s3, BUCKET, summary["manifest"]))
    assert saved == sorted(canonical(i) for i in table_items(ddb, "mystack-GranulesTable"))


def test_a_retried_invocation_rewrites_instead_of_duplicating(world):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-GranulesTable"], segments=1)
    settings = ScanSettings(bucket=BUCKET, page_limit=50, part_bytes=1)
    (task,) = json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read())
    first = scan_segment(ddb, s3, settings, task, time_left=lambda: 0)
    # The invocation "died" after its checkpoint; Step Functions retries with the same input.
    again = scan_segment(ddb, s3, settings, task, time_left=lambda: 0)
    assert again == first
    while not task.get("done"):
        task = scan_segment(ddb, s3, settings, task, time_left=lambda: 0)
    summary = finalize_table(s3, BUCKET, _first_dir(s3, run))
    assert summary["items"] == 120


def test_finalize_deletes_parts_no_checkpoint_lists(world):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-RulesTable"], segments=1)
    directory = _first_dir(s3, run)
    _run_all(ddb, s3, run, ScanSettings(bucket=BUCKET))
    s3.put_object(Bucket=BUCKET, Key=directory + layout.part_key(0, 99), Body=b"left by a dead invocation")
    summary = finalize_table(s3, BUCKET, directory)
    assert summary["orphansDeleted"] == 1 and summary["items"] == 5
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + "data/")["Contents"]]
    assert keys == [directory + layout.part_key(0, 0)]


def test_finalize_refuses_an_unfinished_segment_naming_it(world):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-GranulesTable"], segments=2)
    (task, _) = json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read())
    while not task.get("done"):
        task = scan_segment(ddb, s3, ScanSettings(bucket=BUCKET), task, time_left=lambda: 1)
    with pytest.raises(BackupIncomplete, match="mystack-GranulesTable segment 1 of 2 did not finish"):
        finalize_table(s3, BUCKET, _first_dir(s3, run))
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=_first_dir(s3, run) + "manifest.json").get("Contents")


def test_a_scan_error_is_recorded_for_finalize_to_quote(world, monkeypatch):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-RulesTable"], segments=1)
    (task,) = json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read())

    def boom(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ddb, "scan", boom)
    with pytest.raises(RuntimeError):
        scan_segment(ddb, s3, ScanSettings(bucket=BUCKET), task, time_left=lambda: 1)
    said = r"^table mystack-RulesTable segment 0 of 1 did not finish \(no checkpoint 0\): RuntimeError: disk on fire$"
    with pytest.raises(BackupIncomplete, match=said):
        finalize_table(s3, BUCKET, _first_dir(s3, run))


def test_throttled_scans_back_off_and_complete(world, monkeypatch):
    from botocore.exceptions import ClientError

    ddb, s3 = world
    monkeypatch.setattr("ddb_backup.aws.retry.time.sleep", lambda s: None)
    real, calls = ddb.scan, {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] % 2:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "Scan")
        return real(**kwargs)

    monkeypatch.setattr(ddb, "scan", flaky)
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-GranulesTable"], segments=1)
    _run_all(ddb, s3, run, ScanSettings(bucket=BUCKET, page_limit=10))
    assert finalize_table(s3, BUCKET, _first_dir(s3, run))["items"] == 120


@pytest.mark.parametrize(
    ("raw", "message"), [("4", "GZIP_LEVEL=4 is above 3"), ("-1", "GZIP_LEVEL=-1 is below 0"), ("x", "not an integer")]
)
def test_gzip_level_outside_isal_levels_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str, message: str) -> None:
    from ddb_backup import config

    monkeypatch.setenv("BACKUP_BUCKET", "b")
    monkeypatch.setenv("GZIP_LEVEL", raw)
    with pytest.raises(BadInput, match=message):
        config.scan_settings()


def test_parts_are_standard_gzip_at_every_level() -> None:
    import gzip

    from ddb_backup.format.parts import GZIP_LEVELS, PartBuffer

    lines = [b'{"Item":{"pk":{"S":"%d"}}}\n' % i for i in range(5000)]
    for level in GZIP_LEVELS:
        buf = PartBuffer(level)
        buf.add(lines[:2500])
        buf.add(lines[2500:])
        assert gzip.decompress(buf.finish()) == b"".join(lines)


def _finished(world, table: str, segments: int, **scan: int) -> str:
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=[table], segments=segments)
    _run_all(ddb, s3, run, ScanSettings(bucket=BUCKET, **scan))
    return str(run["tables"][0]["backupDir"])


def test_the_manifest_lists_every_part_of_every_segment_with_totals_and_is_written_last(world):
    _, s3 = world
    directory = _finished(world, "mystack-GranulesTable", 3, page_limit=7, part_bytes=4000)
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=directory + layout.PLAN)["Body"].read())
    started = dt.datetime.fromisoformat(plan["startedAt"])
    summary = finalize_table(s3, BUCKET, directory, now=started + dt.timedelta(seconds=90.5012))
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=directory + layout.MANIFEST)["Body"].read())
    parts = manifest["parts"]
    assert len(parts) > 3 and [p["key"] for p in parts] == sorted(p["key"] for p in parts)  # segment order
    totals = {
        "items": 120,
        "bytes": sum(p["bytes"] for p in parts),
        "uncompressedBytes": sum(p["uncompressedBytes"] for p in parts),
        "parts": len(parts),
    }
    assert sum(p["items"] for p in parts) == 120 and totals["bytes"] < totals["uncompressedBytes"]
    assert {k: v for k, v in manifest.items() if k not in ("parts", "toolVersion")} == {
        "format": "ddb-backup",
        "formatVersion": 1,
        "table": "mystack-GranulesTable",
        "backupId": plan["backupId"],
        "startedAt": plan["startedAt"],
        "finishedAt": (started + dt.timedelta(seconds=90.5012)).isoformat(),
        "segments": 3,
        "itemFormat": "DYNAMODB_JSON",
        "compression": "GZIP",
        "description": plan["description"],
        "totals": totals,
    }
    assert summary == {
        "table": "mystack-GranulesTable",
        "backupId": plan["backupId"],
        "done": True,
        "manifest": directory + layout.MANIFEST,
        **totals,
        "orphansDeleted": 0,
        "seconds": 90.501,  # to the millisecond
    }


def test_a_part_a_checkpoint_lists_but_s3_lacks_fails_the_backup_naming_it(world):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    s3.delete_object(Bucket=BUCKET, Key=directory + layout.part_key(0, 0))
    with pytest.raises(
        BackupIncomplete, match=r"mystack-RulesTable: parts listed by checkpoints are missing: \['data/"
    ):
        finalize_table(s3, BUCKET, directory)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + layout.MANIFEST)


def test_parts_missing_from_s3_are_named_five_at_most_in_key_order(world):
    _, s3 = world
    directory = _finished(world, "mystack-GranulesTable", 2, page_limit=7, part_bytes=4000)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + "data/")["Contents"])
    assert len(keys) > 5
    for key in keys:
        s3.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(BackupIncomplete) as info:
        finalize_table(s3, BUCKET, directory)
    first = [k.removeprefix(directory) for k in keys[:5]]
    assert str(info.value) == f"table mystack-GranulesTable: parts listed by checkpoints are missing: {first}"


def test_more_orphans_than_one_delete_request_takes_are_all_deleted(world, monkeypatch):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    backend = s3_backends["123456789012"]["aws"]  # straight into the emulator: 1,001 PutObjects took seconds
    for n in range(1, 1002):
        backend.put_object(BUCKET, directory + layout.part_key(0, n), b"")
    sizes, delete = [], s3.delete_objects
    monkeypatch.setattr(s3, "delete_objects", lambda **kw: sizes.append(len(kw["Delete"]["Objects"])) or delete(**kw))
    assert finalize_table(s3, BUCKET, directory)["orphansDeleted"] == 1001
    assert sizes == [1000, 1]  # S3 refuses more than 1,000 keys a request (moto takes them)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + "data/")["Contents"]]
    assert keys == [directory + layout.part_key(0, 0)]


def _exact_plan(s3, directory: str, started: dt.datetime) -> None:
    """Make a finished plain backup an exact one: its plan.json records a stream position (one shard, s1)."""
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=directory + layout.PLAN)["Body"].read())
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mystack-RulesTable/stream/2026-12-01T00:00:00.000"
    plan["stream"] = {"arn": arn, "shards": ["s1"], "startedAt": started.isoformat()}
    s3.put_object(Bucket=BUCKET, Key=directory + layout.PLAN, Body=json.dumps(plan).encode())


def test_an_exact_backup_s_manifest_holds_the_changes_from_its_scan_to_consistent_at(world):
    from ddb_backup.changes import consistent
    from tests.changes.fakes import T0, FakeStreams, record

    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    _exact_plan(s3, directory, T0 + dt.timedelta(minutes=1))
    shard = [record(1, 0.5, "a", "before the scan"), record(2, 2, "a", "during"), record(3, 3, "b", None)]
    waits: list[float] = []
    before = dt.datetime.now(dt.UTC)
    summary = finalize_table(
        s3, BUCKET, directory, streams=FakeStreams({"s1": (None, shard, False)}), sleep=waits.append
    )
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=directory + layout.MANIFEST)["Body"].read())
    assert waits == [2.0]  # the last changes get two seconds to show in the stream
    assert before <= dt.datetime.fromisoformat(manifest["consistentAt"]) <= dt.datetime.now(dt.UTC)
    assert manifest["changesFrom"] == (T0 + dt.timedelta(minutes=1, seconds=-1)).isoformat()
    assert [{k: e[k] for k in ("key", "records")} for e in manifest["changes"]] == [
        {"key": "changes/000000.jsonl.gz", "records": 2}
    ]
    assert [c["seq"] for c in consistent.backup_changes(s3, BUCKET, directory, manifest)] == ["2", "3"]
    assert (summary["items"], summary["consistentAt"], summary["changes"]) == (5, manifest["consistentAt"], 2)


def test_an_exact_backup_finalized_with_a_settle_waits_that_long_for_the_last_changes(world):
    from tests.changes.fakes import T0, FakeStreams, record

    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    _exact_plan(s3, directory, T0 + dt.timedelta(minutes=1))
    waits: list[float] = []
    streams = FakeStreams({"s1": (None, [record(1, 2, "a", "during")], False)})
    finalize_table(s3, BUCKET, directory, streams=streams, settle=0.25, sleep=waits.append)
    assert waits == [0.25]  # the CLI's --settle


def test_an_exact_backup_whose_stream_shard_was_trimmed_names_the_table_and_writes_no_manifest(world):
    from tests.changes.fakes import T0, FakeStreams, record

    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    _exact_plan(s3, directory, T0 + dt.timedelta(minutes=1))
    streams = FakeStreams({"s2": (None, [record(5, 2, "a", "after the trim")], False)})  # s1, the scan's, is gone
    with pytest.raises(BackupIncomplete, match=r"^table mystack-RulesTable: stream shards \['s1'\] were trimmed"):
        finalize_table(s3, BUCKET, directory, streams=streams, sleep=lambda _: None)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + layout.MANIFEST)


def test_an_exact_backup_finalized_without_a_streams_client_is_refused_and_writes_no_manifest(world):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    _exact_plan(s3, directory, dt.datetime.now(dt.UTC))
    with pytest.raises(
        BackupIncomplete,
        match=r"^table mystack-RulesTable: an exact backup's finalize needs a DynamoDB Streams client$",
    ):
        finalize_table(s3, BUCKET, directory)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + layout.MANIFEST)


@pytest.mark.parametrize(("segments", "more"), [(11, ""), (12, "; and 1 more segments of table mystack-RulesTable")])
def test_finalize_names_the_first_ten_unfinished_segments_and_counts_the_rest(world, segments, more):
    ddb, s3 = world
    run = plan_run(ddb, s3, Settings(bucket=BUCKET), tables=["mystack-RulesTable"], segments=segments)
    (first, *_) = json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read())
    task = scan_segment(ddb, s3, ScanSettings(bucket=BUCKET), first, time_left=lambda: 1)
    assert task["done"]  # segment 0 finished; the others never ran
    named = "; ".join(
        f"table mystack-RulesTable segment {s} of {segments} did not finish (no checkpoint 0)" for s in range(1, 11)
    )
    with pytest.raises(BackupIncomplete) as info:
        finalize_table(s3, BUCKET, _first_dir(s3, run))
    assert str(info.value) == named + more


def _refusing_deletes(s3, monkeypatch, times: int) -> list[float]:
    """S3 answers the first ``times`` DeleteObjects with every key in Errors (AccessDenied); the pauses taken."""
    delete, calls, pauses = s3.delete_objects, [], []

    def refusing(**kw):
        calls.append(kw)
        if len(calls) <= times:
            return {"Errors": [{"Key": o["Key"], "Code": "AccessDenied"} for o in kw["Delete"]["Objects"]]}
        return delete(**kw)

    monkeypatch.setattr(s3, "delete_objects", refusing)
    return pauses


def test_an_orphan_s3_refuses_to_delete_once_is_tried_again_and_deleted(world, monkeypatch):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    s3.put_object(Bucket=BUCKET, Key=directory + layout.part_key(0, 7), Body=b"")
    pauses = _refusing_deletes(s3, monkeypatch, times=1)
    assert finalize_table(s3, BUCKET, directory, sleep=pauses.append)["orphansDeleted"] == 1
    assert len(pauses) == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + "data/")["Contents"]]
    assert keys == [directory + layout.part_key(0, 0)]


def test_an_orphan_s3_will_not_delete_fails_the_table_naming_it_and_writes_no_manifest(world, monkeypatch):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    stray = layout.part_key(0, 7)
    s3.put_object(Bucket=BUCKET, Key=directory + stray, Body=b"")
    pauses = _refusing_deletes(s3, monkeypatch, times=5)
    with pytest.raises(BackupIncomplete) as info:
        finalize_table(s3, BUCKET, directory, sleep=pauses.append)
    assert str(info.value) == (
        f"1 part(s) no checkpoint lists could not be deleted from s3://{BUCKET}/{directory} (AccessDenied): "
        f"['{stray}']; no manifest was written: delete them (or allow s3:DeleteObject) and run the backup again"
    )
    assert len(pauses) == 4  # five tries
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + layout.MANIFEST)


def test_an_orphan_s3_keeps_refusing_is_retried_after_pauses_doubling_from_half_a_second(world, monkeypatch):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    s3.put_object(Bucket=BUCKET, Key=directory + layout.part_key(0, 7), Body=b"")
    pauses = _refusing_deletes(s3, monkeypatch, times=5)
    monkeypatch.setattr("ddb_backup.aws.retry.random.uniform", lambda _low, high: high)  # each wait its whole step
    with pytest.raises(BackupIncomplete):
        finalize_table(s3, BUCKET, directory, sleep=pauses.append)
    assert pauses == [0.5, 1.0, 2.0, 4.0]  # about 7.5 s at most for S3 to stop refusing, then the table fails


def test_orphans_s3_will_not_delete_are_named_five_at_most_in_key_order_with_every_error_code(world, monkeypatch):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    strays = [layout.part_key(0, n) for n in range(1, 8)]
    for stray in strays:
        s3.put_object(Bucket=BUCKET, Key=directory + stray, Body=b"")

    def refusing(**kw):  # S3 lists its errors in no promised order; two codes
        keys = [o["Key"] for o in kw["Delete"]["Objects"]][::-1]
        return {"Errors": [{"Key": k, "Code": ("InternalError", "AccessDenied")[n % 2]} for n, k in enumerate(keys)]}

    monkeypatch.setattr(s3, "delete_objects", refusing)
    with pytest.raises(BackupIncomplete) as info:
        finalize_table(s3, BUCKET, directory, sleep=lambda _: None)
    assert str(info.value) == (
        f"7 part(s) no checkpoint lists could not be deleted from s3://{BUCKET}/{directory} "
        f"(AccessDenied, InternalError): {strays[:5]}; no manifest was written: "
        "delete them (or allow s3:DeleteObject) and run the backup again"
    )


def test_an_orphan_refused_in_the_first_of_two_delete_requests_fails_the_table(world, monkeypatch):
    _, s3 = world
    directory = _finished(world, "mystack-RulesTable", 1)
    backend = s3_backends["123456789012"]["aws"]  # straight into the emulator: 1,001 PutObjects took seconds
    for n in range(1, 1002):
        backend.put_object(BUCKET, directory + layout.part_key(0, n), b"")
    stuck, delete = directory + layout.part_key(0, 1), s3.delete_objects

    def refusing_one(**kw):  # the first request (1,000 keys) deletes all but one; the second (1 key) deletes it
        kept = [o for o in kw["Delete"]["Objects"] if o["Key"] != stuck]
        answer = delete(Bucket=kw["Bucket"], Delete={**kw["Delete"], "Objects": kept}) if kept else {}
        refused = [{"Key": stuck, "Code": "AccessDenied"}] if len(kept) < len(kw["Delete"]["Objects"]) else []
        return {**answer, "Errors": answer.get("Errors", []) + refused}

    monkeypatch.setattr(s3, "delete_objects", refusing_one)
    with pytest.raises(BackupIncomplete, match=r"^1 part\(s\) no checkpoint lists could not be deleted .*\['data/"):
        finalize_table(s3, BUCKET, directory, sleep=lambda _: None)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=directory + layout.MANIFEST)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=stuck)["KeyCount"] == 1
