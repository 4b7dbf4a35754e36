"""What a soak shows at its end: restores, retention, storage and alarms, each as figures and a verdict.

Every check compares the stack against what the soak itself knows independently: the model of each
night's tables, which nights were given which fault, when each table existed, and the lifecycle rules'
days (read from the bucket, as S3 would).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ddb_backup.aws.clients import client
from devkit.cfn import Resolver
from devkit.soak.alarms import ALARM, Alarm, alarm_days, evaluate
from devkit.soak.world import table_snapshot
from devkit.strict.lifecycle import StrictLifecycle, due
from tests.soak.run import FAILED, SoakRecord, versions

ALARMS = (
    "StaleBackupAlarm",
    "BackupExecutionsFailedAlarm",
    "BackupExecutionsTimedOutAlarm",
    "PitrFailingAlarm",
    "OnDemandBackupsFailedAlarm",
)


def last_lifecycle_run(record: SoakRecord) -> dt.datetime:
    return record.config.start + dt.timedelta(days=record.config.nights - 1)


def days_rules(record: SoakRecord) -> tuple[int, int]:
    """The bucket's backup rule: (expiration days, noncurrent days), as stored on the bucket."""
    rules = StrictLifecycle(client("s3"), record.stack.outputs["BackupBucketName"]).rules()
    [rule] = [r for r in rules if "Days" in r.get("Expiration", {})]
    return rule["Expiration"]["Days"], rule["NoncurrentVersionExpiration"]["NoncurrentDays"]


def kept(record: SoakRecord) -> list[int]:
    days, _ = days_rules(record)
    return [n.index for n in record.nights if due(n.when, days) > last_lifecycle_run(record)]


def check_retention(record: SoakRecord) -> dict[str, Any]:
    """Expired nights' objects gone (noncurrent for NoncurrentDays, then removed), kept nights' all there,
    nothing else in the bucket: every version accounted for by a night."""
    days, noncurrent_days = days_rules(record)
    now, keep = last_lifecycle_run(record), set(kept(record))
    s3, bucket = client("s3"), record.stack.outputs["BackupBucketName"]
    present = versions(s3, bucket)
    current = {v["Key"]: v["Size"] for v in present if v["IsLatest"] and not v["Marker"]}
    noncurrent = {(v["Key"], v["VersionId"]) for v in present if not v["IsLatest"] and not v["Marker"]}
    markers = {v["Key"] for v in present if v["Marker"]}
    want_current: dict[str, int] = {}
    want_noncurrent: set[str] = set()  # keys of expired nights still within NoncurrentDays
    rewritten: set[tuple[str, str]] = set()  # versions a run overwrote, still within NoncurrentDays
    for night in record.nights:
        if night.index in keep:
            want_current.update(night.objects)
        elif due(due(night.when, days), noncurrent_days) > now:
            want_noncurrent.update(night.objects)
        rewritten.update(v for v in night.rewritten if due(night.when, noncurrent_days) > now)
    noncurrent_of_expired = {(k, v) for k, v in noncurrent if k in want_noncurrent}
    orphans = (
        set(current) - set(want_current)
        | {k for k, _ in noncurrent - noncurrent_of_expired - rewritten}
        | (markers - want_noncurrent)
    )
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return {
        "kept": sorted(n + 1 for n in keep),
        "expired": sorted(n.index + 1 for n in record.nights if n.index not in keep),
        "expiredStillCurrent": sorted(set(current) - set(want_current)),
        "keptMissing": sorted(k for k in want_current if current.get(k) != want_current[k]),
        "expiredNoncurrentUnremoved": sorted(want_noncurrent - {k for k, _ in noncurrent_of_expired} - markers),
        "currentBytes": sum(current.values()),
        "keptNightsBytes": sum(want_current.values()),
        "noncurrentVersions": len(noncurrent),
        "noncurrentBytes": sum(v["Size"] for v in present if not v["IsLatest"] and not v["Marker"]),
        "deleteMarkers": len(markers),
        "orphans": sorted(orphans),
        "incompleteUploads": len(uploads),
    }


def check_restores(record: SoakRecord) -> dict[str, Any]:
    """Every kept night's every complete table, restored by the restore machine, equal to the model."""
    s3_bucket = record.stack.outputs["BackupBucketName"]
    ddb, keep = client("dynamodb"), set(kept(record))
    done, wrong = 0, []
    for night in record.nights:
        if night.index not in keep:
            continue
        for table in night.complete:
            target = f"r{night.index + 1:02d}-{table}"
            source = f"s3://{s3_bucket}/backups/{table}/{night.backup_id}/"
            desc = record.stack.run("RestoreStateMachine", {"source": source, "table": target}, timeout=600)
            if desc["status"] != "SUCCEEDED" or table_snapshot(ddb, target) != night.snapshot[table]:
                wrong.append(f"night {night.index + 1} {table}: {desc['status']} {desc.get('cause', '')[:200]}")
            else:
                done += 1
            ddb.delete_table(TableName=target)
    return {"restored": done, "wrong": wrong}


def expected_complete(record: SoakRecord, when: dt.datetime, fault: str | None) -> list[str]:
    """The tables that existed at ``when``, less the one a failed-run night cannot back up."""
    failing = record.world.name(record.config.failing_table)
    at = when.timestamp()
    return sorted(
        t
        for t, (made, gone) in record.table_times.items()
        if made < at and (gone is None or gone > at) and not (fault == FAILED and t == failing)
    )


def expected_alarm_days(record: SoakRecord, max_age_hours: float) -> dict[str, list[dt.date]]:
    """The days each alarm should fire on: from the faults and the tables' lives, not from the stack."""
    stale, failed, last_complete = [], [], {}
    for night in record.nights:
        existing = expected_complete(record, night.when, None)
        for table in expected_complete(record, night.when, night.fault):
            last_complete[table] = night.when
        ages = [(night.when - last_complete[t]).total_seconds() / 3600 if t in last_complete else float("inf") for t in existing]  # fmt: skip
        if max(ages) > max_age_hours:
            stale.append(night.when.date())
        if night.fault == FAILED:
            failed.append(night.when.date())
    return {"StaleBackupAlarm": stale, "BackupExecutionsFailedAlarm": failed}


def check_alarms(record: SoakRecord) -> dict[str, Any]:
    stack = record.stack
    resolver = Resolver(stack.template, stack.parameters, stack.stack_name, stack.region)
    resolver.refs.update(stack.physical)
    start = record.config.start.timestamp()
    end = (record.config.start + dt.timedelta(days=record.config.nights)).timestamp()
    points = record.datapoints()
    fired, periods = {}, {}
    for name in ALARMS:
        alarm = Alarm.from_properties(name, resolver(stack.template["Resources"][name]["Properties"]))
        fired[name] = alarm_days(alarm, points, start, end)
        periods[name] = sum(state == ALARM for _, state in evaluate(alarm, points, start, end))
    max_age = float(resolver.params["MaxBackupAgeHours"])
    want = {name: [] for name in ALARMS} | expected_alarm_days(record, max_age)
    return {"fired": fired, "expected": want, "alarmPeriods": periods}


def check_on_demand(record: SoakRecord) -> dict[str, Any]:
    """The weekly on-demand backups left, per table, against the function's rule: one per weekly run the table
    existed at, less those older than OnDemandBackupRetentionDays at the last run (never a table's newest)."""
    retention = record.config.on_demand_retention_days * 86400
    want: dict[str, int] = {}
    last = record.weekly[-1][0] if record.weekly else 0.0
    made: dict[str, list[float]] = {}
    for when, tables in record.weekly:
        for table in tables:
            made.setdefault(table, []).append(when)
    for table, times in made.items():
        want[table] = sum(1 for t in times[:-1] if t >= last - retention) + 1
    got: dict[str, int] = {}
    for page in client("dynamodb").get_paginator("list_backups").paginate(BackupType="USER"):
        for summary in page["BackupSummaries"]:
            got[summary["TableName"]] = got.get(summary["TableName"], 0) + 1
    return {"runs": len(record.weekly), "kept": got, "expected": want}
