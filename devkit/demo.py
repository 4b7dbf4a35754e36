"""``make demo``: the whole job on the embedded emulator.

Stands the application up from template.yaml on moto (in this process),
creates the eight Cumulus tables with realistic records, runs the backup
state machine for the set, restores it with the restore state machine under
another prefix, verifies every table item by item, and prints a report.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup_cli.verify import verify_table
from devkit import sample
from devkit.emulator import LocalStack

SOURCE_PREFIX = "mystack-"
TARGET_PREFIX = "restore-"


def _counts(items: int) -> dict[str, int]:
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


def run_demo(items: int = 600, *, quiet: bool = False, out: Any = sys.stdout) -> int:
    def say(text: str) -> None:
        if not quiet:
            print(text, file=out, flush=True)

    started = time.monotonic()
    with LocalStack(env={"PART_BYTES": str(256 * 1024)}) as stack:
        say(
            f"local stack from template.yaml: {len(stack.functions)} functions, "
            f"bucket {stack.outputs['BackupBucketName']}"
        )
        ddb, s3 = client("dynamodb"), client("s3")
        bucket = stack.outputs["BackupBucketName"]
        t = time.monotonic()
        made = sample.create_cumulus_tables(ddb, SOURCE_PREFIX, _counts(items))
        say(f"created {len(made)} Cumulus tables, {sum(made.values()):,} items ({time.monotonic() - t:.1f} s)")

        t = time.monotonic()
        backup = stack.run("BackupStateMachine", {"tablePrefix": SOURCE_PREFIX, "segments": 4}, timeout=1800)
        backup_seconds = time.monotonic() - t
        if backup["status"] != "SUCCEEDED":
            print(f"backup {backup['status']}: {backup.get('error')}: {backup.get('cause')}", file=sys.stderr)
            return 1
        summaries = {s["table"]: s for s in backup["output"]}
        backup_id = next(iter(summaries.values()))["backupId"]
        say(f"backup state machine: SUCCEEDED in {backup_seconds:.1f} s, backup id {backup_id}")

        t = time.monotonic()
        restore = stack.run(
            "RestoreStateMachine",
            {
                "source": f"s3://{bucket}/backups/",
                "backupId": backup_id,
                "map": [{"from": SOURCE_PREFIX, "to": TARGET_PREFIX}],
            },
            timeout=1800,
        )
        restore_seconds = time.monotonic() - t
        if restore["status"] != "SUCCEEDED":
            print(f"restore {restore['status']}: {restore.get('error')}: {restore.get('cause')}", file=sys.stderr)
            return 1
        say(f"restore state machine: SUCCEEDED in {restore_seconds:.1f} s, into {TARGET_PREFIX}*")

        restored = {t["target"]: t["itemsRestored"] for t in restore["output"]["tables"]}
        rows = []
        for table, summary in sorted(summaries.items()):
            target = TARGET_PREFIX + table[len(SOURCE_PREFIX) :]
            directory = summary["manifest"].rsplit("/", 1)[0] + "/"
            report = verify_table(ddb, s3, target, f"s3://{bucket}/{directory}")
            source_items = sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT"))
            ok = report["identical"] and source_items == report["tableItems"] == summary["items"] == restored[target]
            rows.append(
                (table, target, summary["items"], summary["parts"], summary["seconds"], restored[target], ok, report)
            )

    if not quiet:
        print(file=out)
        print(
            f"{'table':26} {'backed up':>9} {'parts':>5} {'backup s':>8}  {'restored as':26} {'restored':>8}  verified",
            file=out,
        )
        for table, target, n, parts, secs, back, ok, _ in rows:
            print(
                f"{table:26} {n:>9,} {parts:>5} {secs:>8.2f}  {target:26} {back:>8,}  {'yes' if ok else 'NO'}", file=out
            )
        total = sum(r[2] for r in rows)
        print(
            f"\n{len(rows)} tables, {total:,} items: backup {backup_seconds:.1f} s, restore {restore_seconds:.1f} s, "
            f"all in {time.monotonic() - started:.1f} s",
            file=out,
        )
    failed = [r for r in rows if not r[6]]
    for _table, target, *_, report in failed:
        print(
            f"NOT VERIFIED {target}: {report['missing']} missing, {report['extra']} extra, {report['changed']} changed",
            file=sys.stderr,
        )
    return 1 if failed or len(rows) != 8 else 0
