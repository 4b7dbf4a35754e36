"""Nothing lost, nothing doubled: backups and restores on the local stack under injected faults.

Each case ends with every item present exactly once (backup parts equal to the
source, or a target identical to it) and counts equal to the manifest, or
with a failed run whose cause names what failed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.format import parts
from devkit import sample
from devkit.emulator import LocalStack
from tests.conftest import backup_items, backup_summaries, canonical, table_items
from tests.faults.injector import Faults

COUNTS = {"Granules": 300, "Files": 200, "Rules": 20}


@pytest.fixture
def stack():
    """The local stack, with Step Functions' Retry waits 20 times shorter."""
    with LocalStack(env={"PART_BYTES": str(64 * 1024)}, retry_time_scale=0.05) as local:
        yield local


@pytest.fixture
def backoffs(monkeypatch) -> Counter:
    """Backoff stays in the code path, shortened (the faults are many, the test is not long); counted by caller.

    Patched in ``ddb_backup.aws.retry``, which every caller reaches through the module (restore's writer
    as ``retry.backoff_delay``): a caller holding its own reference would wait the real backoff and
    be missing from the count.
    """
    import ddb_backup.restore.write  # noqa: F401  (loaded before the patch, as in a warm Lambda)

    calls: Counter = Counter()

    def short(*args: Any, **kwargs: Any) -> float:
        calls[Path(sys._getframe(1).f_code.co_filename).name] += 1
        return 0.001

    monkeypatch.setattr("ddb_backup.aws.retry.backoff_delay", short)
    return calls


@pytest.fixture
def world(stack, monkeypatch, backoffs):
    # Small pages and a zero time budget: many invocations, checkpoints and parts per segment.
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "25")
    monkeypatch.setenv("SCAN_TIME_BUDGET_SECONDS", "0")
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0.005)
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", COUNTS)
    return stack


def _assert_backup_exact(summaries: list[dict[str, Any]], bucket: str) -> None:
    ddb, s3 = client("dynamodb"), client("s3")
    for summary in summaries:
        saved = Counter(canonical(i) for i in backup_items(s3, bucket, summary["manifest"]))
        source = Counter(canonical(i) for i in table_items(ddb, summary["table"]))
        assert saved == source, f"{summary['table']}: backup differs"
        assert max(saved.values()) == 1
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=summary["manifest"])["Body"].read())
        assert manifest["totals"]["items"] == sum(source.values()) == summary["items"]


def _assert_restored_exact(mapping: tuple[str, str]) -> None:
    ddb = client("dynamodb")
    for short in COUNTS:
        source = sample.table_name(mapping[0], short)
        target = sample.table_name(mapping[1], short)
        got = Counter(canonical(i) for i in table_items(ddb, target))
        assert got == Counter(canonical(i) for i in table_items(ddb, source)), f"{target} differs"


def _round_trip(stack: Any) -> None:
    backup = stack.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": 3}, timeout=900)
    assert backup["status"] == "SUCCEEDED", backup.get("cause")
    bucket = stack.outputs["BackupBucketName"]
    _assert_backup_exact(backup_summaries(backup), bucket)
    restore = stack.run(
        "RestoreStateMachine",
        {"source": f"s3://{bucket}/backups/", "backupId": backup["output"]["backupId"],
         "map": [{"from": "mystack-", "to": "restore-"}]},
        timeout=900,
    )  # fmt: skip
    assert restore["status"] == "SUCCEEDED", restore.get("cause")
    _assert_restored_exact(("mystack-", "restore-"))


def test_throttling_on_30_percent_of_scans_and_writes(world):
    faults = Faults(throttle=0.30)
    faults.install(client("dynamodb"), client("s3"))
    _round_trip(world)
    print("injected:", dict(faults.counts))
    assert faults.counts["Scan throttled"] > 10 and faults.counts["BatchWriteItem throttled"] >= 3, faults.counts


def test_unprocessed_items_on_10_percent_of_batches(world, backoffs):
    faults = Faults(unprocessed=0.10)
    faults.install(client("dynamodb"), client("s3"))
    _round_trip(world)
    print("injected:", dict(faults.counts), "backoffs:", dict(backoffs))
    held_back = faults.counts["BatchWriteItem batches partly unprocessed"]
    assert held_back >= 2, faults.counts
    # restore's writer waited the (shortened) backoff before resending each batch held back
    assert backoffs["write.py"] >= held_back, backoffs


def test_s3_500s_and_slowdowns_on_puts_and_gets(world):
    faults = Faults(s3_errors=0.10)
    faults.install(client("dynamodb"), client("s3"))
    _round_trip(world)
    print("injected:", dict(faults.counts))
    assert sum(n for k, n in faults.counts.items() if k.startswith("S3 PUT")) >= 3, faults.counts
    assert sum(n for k, n in faults.counts.items() if k.startswith("S3 GET")) >= 3, faults.counts


def test_all_faults_at_once(world):
    faults = Faults(throttle=0.30, unprocessed=0.10, s3_errors=0.05, seed=11)
    faults.install(client("dynamodb"), client("s3"))
    _round_trip(world)
    print("injected:", dict(faults.counts))
    assert faults.counts["Scan throttled"] > 10 and faults.counts["BatchWriteItem throttled"] >= 3, faults.counts
    assert faults.counts["BatchWriteItem batches partly unprocessed"] >= 2, faults.counts
    assert sum(n for k, n in faults.counts.items() if k.startswith("S3 ")) >= 3, faults.counts


# A Lambda that dies (timeout, out of memory) surfaces in Step Functions as Sandbox.Timedout.
SandboxTimedout = type("Sandbox.Timedout", (Exception,), {})


def test_a_lambda_that_dies_mid_segment_resumes_from_its_checkpoint(world, monkeypatch):
    """An invocation 'dies' after storing its second part, before its checkpoint; the retry
    (same input, from the last checkpoint) rewrites those parts instead of adding to them."""
    real = parts.upload_part
    died: set[str] = set()

    def dying_upload(s3: Any, bucket: str, backup_dir: str, key: str, *args: Any, **kwargs: Any) -> Any:
        result = real(s3, bucket, backup_dir, key, *args, **kwargs)
        part_number = int(key.rsplit("-", 1)[1].split(".", maxsplit=1)[0])
        if part_number % 3 == 1 and backup_dir + key not in died:
            died.add(backup_dir + key)
            raise SandboxTimedout("Task timed out after 900.00 seconds (injected)")
        return result

    monkeypatch.setattr("ddb_backup.backup.scan.upload_part", dying_upload)
    monkeypatch.setenv("SCAN_PAGE_LIMIT", "10")
    monkeypatch.setenv("SCAN_TIME_BUDGET_SECONDS", "600")
    monkeypatch.setenv("PART_BYTES", "4000")  # several parts per invocation
    backup = world.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": 2}, timeout=900)
    assert backup["status"] == "SUCCEEDED", backup.get("cause")
    assert len(died) >= 3
    _assert_backup_exact(backup_summaries(backup), world.outputs["BackupBucketName"])


def test_a_segment_that_keeps_failing_fails_the_run_naming_it(world, monkeypatch):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire (injected)")

    monkeypatch.setattr("ddb_backup.backup.scan.upload_part", broken)
    backup = world.run("BackupStateMachine", {"tables": ["mystack-RulesTable"]}, timeout=600)
    assert backup["status"] == "FAILED"
    assert "mystack-RulesTable segment 0" in backup["cause"] and "disk on fire" in backup["cause"]
    bucket = world.outputs["BackupBucketName"]
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket, Prefix="backups/").get("Contents", [])]
    assert not [k for k in keys if k.endswith("manifest.json") and "/@ddb-backup/" not in k], (
        "a failed backup must not look complete"
    )

    # The fault is fixed; running the same request again gives a complete, exact backup.
    monkeypatch.undo()
    again = world.run("BackupStateMachine", {"tables": ["mystack-RulesTable"]}, timeout=600)
    assert again["status"] == "SUCCEEDED", again.get("cause")
    _assert_backup_exact(backup_summaries(again), bucket)


def test_one_failed_segment_fails_the_run_but_every_finished_table_gets_its_manifest(world, monkeypatch):
    """Segment 1 of the Files table keeps failing: the other tables are backed up whole, the run fails naming it."""
    real = parts.upload_part

    def broken_for_one_segment(s3: Any, bucket: str, backup_dir: str, key: str, segment: int, *rest: Any) -> Any:
        if "mystack-FilesTable/" in backup_dir and segment == 1:
            raise RuntimeError("disk on fire (injected)")
        return real(s3, bucket, backup_dir, key, segment, *rest)

    monkeypatch.setattr("ddb_backup.backup.scan.upload_part", broken_for_one_segment)
    backup = world.run("BackupStateMachine", {"tablePrefix": "mystack-", "segments": 3}, timeout=900)
    assert backup["status"] == "FAILED"
    assert "1 of 3 tables have no manifest (mystack-FilesTable)" in backup["cause"], backup["cause"]
    assert "table mystack-FilesTable segment 1 of 3 did not finish" in backup["cause"]
    assert "disk on fire" in backup["cause"]
    s3, bucket = client("s3"), world.outputs["BackupBucketName"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="backups/").get("Contents", [])]
    manifests = [k for k in keys if k.endswith("manifest.json") and "/@ddb-backup/" not in k]
    assert sorted(k.split("/")[1] for k in manifests) == ["mystack-GranulesTable", "mystack-RulesTable"]
    (report_key,) = [k for k in keys if k.endswith("/report.json")]
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert report["status"] == "FAILED" and report["incomplete"] == ["mystack-FilesTable"]
    assert "mystack-FilesTable segment 1 of 3" in report["problems"][0]
    finished = [row for row in report["tables"] if row["complete"]]
    _assert_backup_exact(finished, bucket)


def test_a_failed_restore_rerun_with_overwrite_gives_an_identical_table(world, monkeypatch):
    backup = world.run("BackupStateMachine", {"tables": ["mystack-GranulesTable"]}, timeout=600)
    assert backup["status"] == "SUCCEEDED"
    directory = backup_summaries(backup)[0]["manifest"].rsplit("/", 1)[0] + "/"
    source = f"s3://{world.outputs['BackupBucketName']}/{directory}"
    calls = Counter()
    ddb = client("dynamodb")

    def fail_after_some(request: Any, **_: Any) -> Any:
        target = request.headers.get("X-Amz-Target", b"")
        if b"BatchWriteItem" in (target if isinstance(target, bytes) else target.encode()):
            calls["n"] += 1
            if calls["n"] > 3:
                from botocore.awsrequest import AWSResponse
                from moto.core.botocore_stubber import MockRawResponse

                body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "message": "injected"})
                return AWSResponse(request.url, 400, {}, MockRawResponse(body.encode()))
        return None

    ddb.meta.events.register_first("before-send.dynamodb", fail_after_some, unique_id="fail-after-some")
    first = world.run("RestoreStateMachine", {"source": source, "table": "restore-GranulesTable"}, timeout=600)
    assert first["status"] == "FAILED"
    print("cause:", first["cause"])
    assert "AccessDeniedException" in first["cause"] and "restore-GranulesTable" in first["cause"], first["cause"]
    ddb.meta.events.unregister("before-send.dynamodb", unique_id="fail-after-some")
    assert table_items(ddb, "restore-GranulesTable"), "some batches were written before the fault"

    refused = world.run("RestoreStateMachine", {"source": source, "table": "restore-GranulesTable"}, timeout=600)
    assert refused["status"] == "FAILED" and "restore-GranulesTable" in refused["cause"]

    again = world.run(
        "RestoreStateMachine", {"source": source, "table": "restore-GranulesTable", "mode": "overwrite"}, timeout=600
    )
    assert again["status"] == "SUCCEEDED", again.get("cause")
    got = sorted(map(canonical, table_items(ddb, "restore-GranulesTable")))
    assert got == sorted(map(canonical, table_items(ddb, "mystack-GranulesTable")))


def test_a_plan_that_times_out_after_create_table_is_retried_and_finishes_the_table(world, monkeypatch):
    """Issue 11 finding 6: plan-restore dies (Sandbox.Timedout) between CreateTable and TTL/PITR. The
    state machine retries it; the retry finds the table its own run created (the mark names the run)
    and turns TTL and PITR on; the mark goes when every item is restored."""
    from ddb_backup.restore import target
    from ddb_backup.restore.resume import MARK_KEY

    ddb = client("dynamodb")
    ddb.update_time_to_live(
        TableName="mystack-RulesTable", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    ddb.update_continuous_backups(
        TableName="mystack-RulesTable", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    backup = world.run("BackupStateMachine", {"tables": ["mystack-RulesTable"]}, timeout=600)
    assert backup["status"] == "SUCCEEDED", backup.get("cause")
    directory = backup_summaries(backup)[0]["manifest"].rsplit("/", 1)[0] + "/"
    real, died = target._apply_settings, []

    def dies_once(*args: Any, **kwargs: Any) -> Any:
        if not died:
            died.append(args[1])
            raise SandboxTimedout("Task timed out after 900.00 seconds (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, "_apply_settings", dies_once)
    restore = world.run("RestoreStateMachine", {"source": directory, "table": "restore-RulesTable"}, timeout=600)
    assert restore["status"] == "SUCCEEDED", restore.get("cause")
    assert died == ["restore-RulesTable"]
    assert ddb.describe_time_to_live(TableName="restore-RulesTable")["TimeToLiveDescription"]["TimeToLiveStatus"] == (
        "ENABLED"
    )
    pitr = ddb.describe_continuous_backups(TableName="restore-RulesTable")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    arn = ddb.describe_table(TableName="restore-RulesTable")["Table"]["TableArn"]
    assert MARK_KEY not in {t["Key"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    got = sorted(map(canonical, table_items(ddb, "restore-RulesTable")))
    assert got == sorted(map(canonical, table_items(ddb, "mystack-RulesTable")))
