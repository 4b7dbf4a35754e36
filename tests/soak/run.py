"""Nights on the local stack, on a simulated clock: every schedule of template.yaml as it comes due.

Each simulated day: S3's lifecycle at midnight (devkit.strict.lifecycle, the bucket's own rules), the
hourly PITR check, the weekly on-demand backups, the nightly backup run (started as its rule's target,
with the rule's input), and at noon the writers' puts, updates and deletes for the next night (a table
created and one deleted partway). Some nights get a fault. Every metric the functions emit is kept
(EMF), with what AWS itself would publish (Step Functions' ExecutionsFailed, Lambda's Errors).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from ddb_backup.aws.clients import client
from ddb_backup.format import parts
from devkit.emulator import LocalStack
from devkit.soak.alarms import Datapoint, EmfCapture
from devkit.soak.schedule import due_times
from devkit.soak.world import Snapshot, World
from devkit.strict.clock import WallClock
from devkit.strict.lifecycle import StrictLifecycle
from tests.faults.injector import Faults

PREFIX = "soak-"
KILLED, THROTTLED, FAILED = "killed-segment", "throttled-table", "failed-run"


@dataclass
class SoakConfig:
    nights: int = 30
    retention_days: int = 10  # the stack's RetentionDays: the bucket's lifecycle expires backups after it
    on_demand_retention_days: int = 10  # OnDemandBackupRetentionDays (not whole weeks: no backup exactly that old)
    start: dt.datetime = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # a Sunday
    tables: dict[str, int] = field(default_factory=lambda: {"Granules": 240, "Files": 160, "Rules": 40})
    changes: int = 30  # writes per table per day
    created: tuple[str, int] = ("Pdrs", 9)  # this table appears before this night
    deleted: tuple[str, int] = ("Rules", 18)  # and this one is deleted before this night
    faults: dict[int, str] = field(default_factory=lambda: {4: KILLED, 7: THROTTLED, 12: FAILED, 13: FAILED})
    failing_table: str = "Files"  # the table a failed-run night cannot back up
    throttled_table: str = "Granules"


def ci_config() -> SoakConfig:
    """Four nights, retention two days: every mechanism once, in well under a minute."""
    return SoakConfig(
        nights=4,
        retention_days=2,
        on_demand_retention_days=1,
        tables={"Granules": 60, "Files": 40, "Rules": 20},
        changes=10,
        created=("Pdrs", 1),
        deleted=("Rules", 2),
        faults={0: KILLED, 1: FAILED, 2: FAILED, 3: THROTTLED},
    )


@dataclass
class Night:
    index: int
    when: dt.datetime
    fault: str | None
    execution: str = ""
    status: str = ""
    backup_id: str = ""
    ended: float = 0.0  # simulated epoch seconds
    seconds: float = 0.0  # real seconds the run took
    snapshot: Snapshot = field(default_factory=dict)
    complete: list[str] = field(default_factory=list)  # tables the report names complete
    report: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, int] = field(default_factory=dict)  # the night's objects at its end: key -> size
    rewritten: list[tuple[str, str]] = field(default_factory=list)  # versions it overwrote: (key, version id)


@dataclass
class SoakRecord:
    config: SoakConfig
    stack: LocalStack
    world: World
    clock: WallClock
    nights: list[Night] = field(default_factory=list)
    points: list[Datapoint] = field(default_factory=list)  # what AWS publishes itself
    lifecycle: dict[str, int] = field(default_factory=dict)
    pitr_runs: int = 0
    weekly: list[tuple[float, list[str]]] = field(default_factory=list)  # on-demand runs: when, tables existing
    table_times: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # created, deleted (sim)
    capture: EmfCapture | None = None

    def datapoints(self) -> list[Datapoint]:
        return [*(self.capture.datapoints() if self.capture else []), *self.points]


def parameters(config: SoakConfig) -> dict[str, str]:
    tables = ",".join(sorted({*config.tables, config.created[0]}))
    return {
        "TablePrefix": PREFIX,
        "RetentionDays": str(config.retention_days),
        "ManagedCumulusPrefix": PREFIX,
        "ManagedCumulusTables": tables,
        "OnDemandBackupRetentionDays": str(config.on_demand_retention_days),
        "LogLevel": "ERROR",
    }


@contextlib.contextmanager
def soak_stack(config: SoakConfig) -> Iterator[SoakRecord]:
    """The local stack on a simulated clock set to ``config.start``, its metrics captured."""
    clock = WallClock(config.start)
    patches = clock.patches()
    for patch in patches:
        patch.start()
    capture = EmfCapture(sys.stdout)
    try:
        with (
            contextlib.redirect_stdout(capture),
            LocalStack(
                parameters=parameters(config),
                env={"POWERTOOLS_METRICS_DISABLED": "false", "PART_BYTES": str(16 * 1024)},
                retry_time_scale=0.02,
            ) as stack,
        ):
            for name in ("ddb-backup", "moto"):  # a failed night's errors, logged by the functions and moto's ASL
                logging.getLogger(name).setLevel(logging.CRITICAL)
            record = SoakRecord(config, stack, World(client("dynamodb"), PREFIX), clock, capture=capture)
            yield record
    finally:
        for patch in reversed(patches):
            patch.stop()


def timeline(record: SoakRecord) -> list[tuple[dt.datetime, int, str, Any]]:
    """Every event of the soak in order: (when, order at the same time, kind, argument)."""
    config, stack = record.config, record.stack
    start = config.start
    nightly = list(due_times(stack.schedules[("BackupStateMachine", "Nightly")]["Schedule"], start,
                             start + dt.timedelta(days=config.nights + 7), created=start))[: config.nights]  # fmt: skip
    end = nightly[-1] + dt.timedelta(minutes=1)
    events: list[tuple[dt.datetime, int, str, Any]] = [(start + dt.timedelta(minutes=30), 1, "create", None)]
    events += [(when, 5, "night", i) for i, when in enumerate(nightly)]
    for (logical, name), kind in ((("EnsurePitrFunction", "Hourly"), "pitr"), (("OnDemandBackupsFunction", "Weekly"), "weekly")):  # fmt: skip
        events += [(w, 3, kind, (logical, name)) for w in due_times(stack.schedules[(logical, name)]["Schedule"], start, end, created=start)]  # fmt: skip
    for day in range(1, config.nights):
        midnight = start + dt.timedelta(days=day)
        events.append((midnight, 0, "lifecycle", None))
        events.append((midnight - dt.timedelta(hours=12), 2, "write", day))  # noon before night ``day``
    return sorted((e for e in events if e[0] < end), key=lambda e: (e[0], e[1]))


def run_nights(record: SoakRecord, progress: bool = False) -> None:
    """Carry out the timeline; each event at its simulated time."""
    config, world, clock = record.config, record.world, record.clock
    s3, bucket = client("s3"), record.stack.outputs["BackupBucketName"]
    for when, _, kind, arg in timeline(record):
        clock.set(when)
        if kind == "create":
            for short, count in config.tables.items():
                record.table_times[world.create(short, count)] = (clock.time(), None)
        elif kind == "write":
            if arg == config.created[1]:
                made = world.create(config.created[0], min(config.tables.values()))
                record.table_times[made] = (clock.time(), None)
            if arg == config.deleted[1]:
                table = world.delete(config.deleted[0])
                record.table_times[table] = (record.table_times[table][0], clock.time())
            world.churn(config.changes)
        elif kind == "lifecycle":  # at midnight itself: what expires then becomes noncurrent then
            clock.freeze(when)
            for action, n in StrictLifecycle(s3, bucket).apply(when).counts().items():
                record.lifecycle[action] = record.lifecycle.get(action, 0) + n
        elif kind in ("pitr", "weekly"):
            _fire_function(record, *arg)
        else:
            night = _night(record, arg, when)
            if progress:
                print(f"night {arg + 1:2d} {when:%Y-%m-%d}: {night.status:9s} {night.seconds:5.1f} s  {night.fault or ''}", file=sys.__stdout__)  # fmt: skip


def _fire_function(record: SoakRecord, logical: str, event: str) -> None:
    """A scheduled function, with the Errors datapoint Lambda would publish."""
    name = record.stack.physical[logical]
    try:
        record.stack.fire(logical, event)
        errors = 0.0
    except Exception:
        errors = 1.0
    record.points.append(Datapoint("AWS/Lambda", "Errors", (("FunctionName", name),), record.clock.time(), errors))
    if logical == "EnsurePitrFunction":
        record.pitr_runs += 1
    else:
        record.weekly.append((record.clock.time(), sorted(record.world.model)))


def _night(record: SoakRecord, index: int, when: dt.datetime) -> Night:
    config = record.config
    night = Night(index, when, config.faults.get(index), snapshot=record.world.snapshot())
    started = time.monotonic()
    with _fault(record, night.fault):
        night.execution = record.stack.fire("BackupStateMachine", "Nightly")
        desc = record.stack.wait(night.execution, timeout=600)
    night.seconds, night.ended, night.status = time.monotonic() - started, record.clock.time(), desc["status"]
    machine = record.stack.physical["BackupStateMachine"]
    failed = float(desc["status"] == "FAILED")  # what Step Functions publishes when an execution ends
    record.points.append(
        Datapoint("AWS/States", "ExecutionsFailed", (("StateMachineArn", machine),), night.ended, failed)
    )
    s3, bucket = client("s3"), record.stack.outputs["BackupBucketName"]
    reports = [k for k in _keys(s3, bucket, "backups/@ddb-backup/runs/") if k.endswith("/report.json")]
    night.backup_id = max(k.split("/")[3] for k in reports)
    if not night.backup_id.startswith(f"{when:%Y%m%d}"):  # a run that failed before its report
        raise AssertionError(f"night {index + 1} ({when:%Y-%m-%d}) left no report; the newest is {night.backup_id}")
    night.report = json.loads(s3.get_object(Bucket=bucket, Key=f"backups/@ddb-backup/runs/{night.backup_id}/report.json")["Body"].read())  # fmt: skip
    night.complete = sorted(r["table"] for r in night.report["tables"] if r["complete"])
    mine = (night.backup_id, f"/map-results/{night.execution.rsplit(':', 1)[-1]}/")
    for version in versions(s3, bucket):
        if any(marker in version["Key"] for marker in mine):
            if version["IsLatest"]:
                night.objects[version["Key"]] = version["Size"]
            else:
                night.rewritten.append((version["Key"], version["VersionId"]))
    record.nights.append(night)
    return night


def versions(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every version and delete marker in the bucket (markers with ``Marker`` set)."""
    out: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out += [{**v, "Marker": False} for v in page.get("Versions", [])]
        out += [{**v, "Marker": True, "Size": 0} for v in page.get("DeleteMarkers", [])]
    return out


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]


#: Lambda's error type for a timed-out invocation (the machine's Retry names it).
SandboxTimedout = type("Sandbox.Timedout", (Exception,), {})


@contextlib.contextmanager
def _fault(record: SoakRecord, fault: str | None) -> Iterator[None]:
    config, world = record.config, record.world
    real = parts.upload_part
    if fault == KILLED:  # the first scan invocation dies once its first part is stored; its retry resumes
        died: list[str] = []

        def dying(s3: Any, bucket: str, backup_dir: str, key: str, *args: Any, **kwargs: Any) -> Any:
            result = real(s3, bucket, backup_dir, key, *args, **kwargs)
            if not died:
                died.append(backup_dir + key)
                raise SandboxTimedout("Task timed out after 900.00 seconds (injected)")
            return result

        with mock.patch("ddb_backup.backup.scan.upload_part", dying):
            yield
        assert died, "the killed-segment fault never fired"
    elif fault == FAILED:  # every scan of one table fails: the run fails naming it, the others complete
        failing = world.name(config.failing_table)

        def broken(s3: Any, bucket: str, backup_dir: str, *args: Any, **kwargs: Any) -> Any:
            if f"/{failing}/" in backup_dir:
                raise RuntimeError("disk on fire (injected)")
            return real(s3, bucket, backup_dir, *args, **kwargs)

        with mock.patch("ddb_backup.backup.scan.upload_part", broken):
            yield
    elif fault == THROTTLED:
        faults = TableThrottle(world.name(config.throttled_table), times=3)
        ddb = client("dynamodb")
        faults.install(ddb, client("s3"))
        try:
            with (
                mock.patch("ddb_backup.aws.retry.backoff_delay", lambda *a, **k: 0.001),
                mock.patch("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0.005),
            ):
                yield
        finally:
            ddb.meta.events.unregister("before-send.dynamodb", faults._dynamodb)
            ddb.meta.events.unregister("after-call.dynamodb.BatchWriteItem", faults._report_unprocessed)
            client("s3").meta.events.unregister("before-send.s3", faults._s3)
        assert faults.counts["Scan throttled"], "the throttled-table fault never fired"
    else:
        yield


class TableThrottle(Faults):
    """The injector's throttling, on one table's requests only: its first ``times`` Scans are throttled."""

    def __init__(self, table: str, *, times: int) -> None:
        super().__init__(throttle=1.0)
        self.table = table
        self.times = times

    def _roll(self, p: float, kind: str) -> bool:
        with self.lock:
            self.calls[kind] += 1
            return kind == "Scan" and self.calls[kind] <= self.times

    def _dynamodb(self, request: Any, **kwargs: Any) -> Any:
        body = json.loads(request.body or b"{}") if request.body else {}
        if body.get("TableName") != self.table:
            self.held.items = None
            return None
        return super()._dynamodb(request, **kwargs)
