"""``make demo``: the whole job on the embedded emulator.

Stands the application up from template.yaml on moto (in this process),
creates the eight Cumulus tables with realistic records, runs the backup
state machine for the set, restores it with the restore state machine under
another prefix, verifies every table item by item, and prints a report.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.compare import Diff, diff_items
from ddb_backup.format.sources import open_source
from devkit import sample
from devkit.emulator import LocalStack

SOURCE_PREFIX = "mystack-"
TARGET_PREFIX = "restore-"


def cumulus_counts(items: int) -> dict[str, int]:
    """Table sizes of a small Cumulus deployment, scaled from the Granules count."""
    return {
        "Users": max(3, items // 40),
        "Collections": max(3, items // 20),
        "Providers": max(2, items // 60),
        "Rules": max(3, items // 20),
        "Executions": items,
        "Granules": items,
        "Pdrs": max(2, items // 5),
        "Files": items * 2,
    }


def run_demo(items: int = 600, *, quiet: bool = False, as_json: bool = False, out: Any = sys.stdout) -> int:
    """Back up the eight Cumulus tables and restore them on a local stack; 0 when every table verifies.

    ``as_json``: no chatter, and the report as one JSON document.
    """

    def say(text: str) -> None:
        if not quiet and not as_json:
            print(text, file=out, flush=True)

    started = time.monotonic()
    # The functions log to stdout, as on Lambda: warnings only, and with --json, stdout holds the report alone.
    env = {"PART_BYTES": str(256 * 1024), "POWERTOOLS_LOG_LEVEL": "ERROR" if as_json else "WARNING"}
    with LocalStack(env=env) as stack:
        say(
            f"local stack from template.yaml: {len(stack.functions)} functions, "
            f"bucket {stack.outputs['BackupBucketName']}"
        )
        ddb, s3 = client("dynamodb"), client("s3")
        bucket = stack.outputs["BackupBucketName"]
        t = time.monotonic()
        made = sample.create_cumulus_tables(ddb, SOURCE_PREFIX, cumulus_counts(items))
        say(f"created {len(made)} Cumulus tables, {sum(made.values()):,} items ({time.monotonic() - t:.1f} s)")

        backup, backup_seconds = _run(stack, "BackupStateMachine", {"tablePrefix": SOURCE_PREFIX, "segments": 4})
        if backup["status"] != "SUCCEEDED":
            return _failed("backup", backup)
        # The execution's output is small (totals, the report's key); the report has a row a table.
        report = json.loads(s3.get_object(Bucket=bucket, Key=backup["output"]["report"])["Body"].read())
        summaries = {s["table"]: s for s in report["tables"]}
        backup_id = backup["output"]["backupId"]
        say(f"backup state machine: SUCCEEDED in {backup_seconds:.1f} s, backup id {backup_id}")

        restore, restore_seconds = _run(
            stack,
            "RestoreStateMachine",
            {
                "source": f"s3://{bucket}/backups/",
                "backupId": backup_id,
                "map": [{"from": SOURCE_PREFIX, "to": TARGET_PREFIX}],
            },
        )
        if restore["status"] != "SUCCEEDED":
            return _failed("restore", restore)
        say(f"restore state machine: SUCCEEDED in {restore_seconds:.1f} s, into {TARGET_PREFIX}*")
        rows = _verify(ddb, s3, bucket, summaries, restore["output"])

    if as_json:
        _report_json(rows, backup_seconds, restore_seconds, time.monotonic() - started, out)
    elif not quiet:
        _report(rows, backup_seconds, restore_seconds, time.monotonic() - started, out)
    failed = [r for r in rows if not r[6]]
    for _table, target, *_, report in failed:
        print(
            f"NOT VERIFIED {target}: {report.missing} missing, {report.extra} extra, {report.changed} changed",
            file=sys.stderr,
        )
    return 1 if failed or len(rows) != 8 else 0


def _run(stack: LocalStack, logical_id: str, payload: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Run a state machine to its end; its description and the seconds it took."""
    t = time.monotonic()
    desc = stack.run(logical_id, payload, timeout=1800)
    return desc, time.monotonic() - t


def _failed(what: str, desc: dict[str, Any]) -> int:
    print(f"{what} {desc['status']}: {desc.get('error')}: {desc.get('cause')}", file=sys.stderr)
    return 1


def _verify(
    ddb: Any, s3: Any, bucket: str, summaries: dict[str, dict[str, Any]], restore_output: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """One row a table: source, target, backed-up items, parts, seconds, restored items, verified, report."""
    report = json.loads(s3.get_object(Bucket=bucket, Key=restore_output["report"])["Body"].read())
    restored = {t["target"]: t["itemsRestored"] for t in report["tables"]}
    rows = []
    for table, summary in sorted(summaries.items()):
        target = TARGET_PREFIX + table[len(SOURCE_PREFIX) :]
        directory = summary["manifest"].rsplit("/", 1)[0] + "/"
        report = _diff(ddb, s3, target, f"s3://{bucket}/{directory}")
        source_items = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT"))
        identical = not (report.missing or report.extra or report.changed or report.duplicates)
        ok = identical and source_items == report.table_items == summary["items"] == restored[target]
        rows.append(
            (table, target, summary["items"], summary["parts"], summary["seconds"], restored[target], ok, report)
        )
    return rows


def _diff(ddb: Any, s3: Any, table: str, url: str) -> Diff:
    """The items of the backup at ``url`` against a Scan of ``table`` (the layer's diff, as verify makes it)."""
    backup = open_source(url, s3)
    names = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    scanned = (item for page in ddb.get_paginator("scan").paginate(TableName=table) for item in page["Items"])
    return diff_items(backup.items(), scanned, names, estimate=backup.expected_items or 0)


def _report(rows: list[tuple[Any, ...]], backup_seconds: float, restore_seconds: float, total: float, out: Any) -> None:
    print(file=out)
    print(
        f"{'table':26} {'backed up':>9} {'parts':>5} {'backup s':>8}  {'restored as':26} {'restored':>8}  verified",
        file=out,
    )
    for table, target, n, parts, secs, back, ok, _ in rows:
        print(f"{table:26} {n:>9,} {parts:>5} {secs:>8.2f}  {target:26} {back:>8,}  {'yes' if ok else 'NO'}", file=out)
    items = sum(r[2] for r in rows)
    print(
        f"\n{len(rows)} tables, {items:,} items: backup {backup_seconds:.1f} s, restore {restore_seconds:.1f} s, "
        f"all in {total:.1f} s",
        file=out,
    )


def _report_json(
    rows: list[tuple[Any, ...]], backup_seconds: float, restore_seconds: float, total: float, out: Any
) -> None:
    keys = ("table", "restoredAs", "backedUp", "parts", "backupSeconds", "restored", "verified")
    doc = {
        "tables": [dict(zip(keys, row[:7], strict=True)) for row in rows],
        "backupSeconds": round(backup_seconds, 3),
        "restoreSeconds": round(restore_seconds, 3),
        "seconds": round(total, 3),
    }
    print(json.dumps(doc, indent=2), file=out)
