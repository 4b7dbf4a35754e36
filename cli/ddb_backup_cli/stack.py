"""``ddb-backup start-backup | start-restore | list``: the deployed stack's state machines and bucket."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from functools import partial
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.errors import DdbBackupError
from ddb_backup.names import utc_time
from ddb_backup_cli import estimate
from ddb_backup_cli.common import (
    UsageError,
    add_command,
    add_table_selectors,
    mapping,
    one_target,
    print_json,
    say,
    table_name,
    tables_arg,
)
from ddb_backup_cli.files import cancel
from ddb_backup_cli.files.select import add_selectors, selection

DEFAULT_PREFIX = "backups/"


# ------------------------------------------------------------------ the deployed stack
def _stack_outputs(stack_name: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        stacks = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise DdbBackupError(
            f"stack {stack_name!r}: {exc.response['Error']['Message']} "
            "(check --stack-name, and the region: AWS_REGION or --region)"
        ) from None
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def _machine(args: argparse.Namespace, output: str) -> str:
    if args.state_machine_arn:
        return str(args.state_machine_arn)
    if not args.stack_name:
        raise UsageError("give --stack-name (the deployed ddb-backup stack) or --state-machine-arn")
    outputs = _stack_outputs(args.stack_name)
    if output not in outputs:
        raise DdbBackupError(f"stack {args.stack_name!r} has no output {output}: is it a ddb-backup stack?")
    return outputs[output]


def _start(args: argparse.Namespace, arn: str, payload: dict[str, Any], prefix: str) -> int:
    sfn = client("stepfunctions")
    name = f"{prefix}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.urandom(3).hex()}"
    execution = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))["executionArn"]
    say(args, f"started {execution}")
    if not args.wait:
        if args.json:
            print_json({"executionArn": execution})
        return 0
    return _follow(args, execution)


def _follow(args: argparse.Namespace, execution: str) -> int:
    sfn = client("stepfunctions")
    started = time.monotonic()
    tty = sys.stderr.isatty() and not args.quiet and not args.json
    try:
        while True:
            desc = sfn.describe_execution(executionArn=execution)
            if desc["status"] != "RUNNING":
                break
            if tty:
                counts = _map_counts(sfn, execution)
                sys.stderr.write(f"\r{desc['status'].lower()} {time.monotonic() - started:,.0f} s{counts}\033[K")
                sys.stderr.flush()
            time.sleep(args.poll)
    except KeyboardInterrupt:
        raise cancel.Interrupted(
            f"stopped following; the execution goes on in Step Functions: {execution} "
            f"(stop it with: aws stepfunctions stop-execution --execution-arn {execution})"
        ) from None
    if tty:
        sys.stderr.write("\n")
    output = json.loads(desc["output"]) if desc.get("output") else None
    if args.json:
        print_json(
            {
                "executionArn": execution,
                "status": desc["status"],
                "output": output,
                "error": desc.get("error"),
                "cause": desc.get("cause"),
            }
        )
    if desc["status"] != "SUCCEEDED":
        print(f"ddb-backup: {execution_failure(desc, execution)}", file=sys.stderr)
        return 1
    say(args, f"succeeded in {time.monotonic() - started:,.1f} s")
    if output and not args.json:
        # A backup's output is its totals and the key of its report (one row a table); a restore's, its report.
        say(args, "  " + json.dumps(output, default=str))
        if isinstance(output, dict) and output.get("report") and output.get("bucket"):
            say(args, f"  report: s3://{output['bucket']}/{output['report']}")
    return 0


def execution_failure(desc: dict[str, Any], execution: str) -> str:
    """What a failed execution says: its status, the error type and message (a Lambda's cause is a JSON document
    with a stack trace: only its ``errorMessage``), the request's fields named as this command's flags, and where
    the full cause is."""
    error, cause = desc.get("error") or "", desc.get("cause") or ""
    try:
        doc = json.loads(cause)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "errorMessage" in doc:
        error, cause = str(doc.get("errorType") or error), str(doc["errorMessage"])
    message = ": ".join(part for part in (error, as_flags(cause.strip())) if part) or "no error recorded"
    return (
        f"execution {desc.get('status', 'FAILED')}: {message}\n"
        f"  the full cause: aws stepfunctions describe-execution --execution-arn {execution}"
    )


#: The restore request's fields (``events.RestoreRequest``) as the flags of ``start-restore``.
FLAGS = {
    "table": "--table",
    "tables": "--tables",
    "map": "--map",
    "backupId": "--backup-id",
    "allowPartial": "--allow-partial",
    "allowSource": "--allow-source",
    "writeRate": "--write-rate",
    "writePercent": "--write-percent",
    "loadBilling": "--load-billing",
    "within": "--within",
    "readRate": "--read-rate",
    "readPercent": "--read-percent",
    "segments": "--segments",
}


def as_flags(text: str) -> str:
    """``text`` with the request's words in the command line's: ``mode 'overwrite'`` -> ``--mode overwrite``,
    ``'backupId'`` -> ``--backup-id``; ``allowSource / --allow-source`` -> ``--allow-source``."""
    text = re.sub(r"\b(mode|method) '([a-z-]+)'", r"--\1 \2", text)
    text = re.sub(r"\b(\w+) / (--[a-z-]+)", lambda m: m[2] if FLAGS.get(m[1]) == m[2] else m[0], text)
    return re.sub(r"'(\w+)'|\((\w+)\)", _flag, text)


def _flag(match: re.Match[str]) -> str:
    word = match[1] or match[2]
    if word not in FLAGS:
        return match[0]
    return FLAGS[word] if match[1] else f"({FLAGS[word]})"


def _map_counts(sfn: Any, execution: str) -> str:
    """Progress of every Distributed Map run of the execution (a backup has two: scan, then finalize)."""
    try:
        runs = sfn.list_map_runs(executionArn=execution).get("mapRuns", [])
        said = []
        for run in sorted(runs, key=lambda r: r["startDate"]):
            counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"])["itemCounts"]
            label = run["mapRunArn"].rsplit("/", 1)[-1].split(":")[0]
            said.append(f", {label}: {counts['succeeded']}/{counts['total']} done, {counts['failed']} failed")
        return "".join(said)
    except Exception:  # progress is best effort
        return ""


# ------------------------------------------------------------------ commands
def cmd_start_backup(args: argparse.Namespace) -> int:
    tables, prefix = tables_arg(args)
    payload: dict[str, Any] = {"tables": tables} if tables else {"tablePrefix": prefix}
    if args.segments:
        payload["segments"] = args.segments
    limit = estimate.limit_of(args, "read")
    if limit.rate is not None:
        payload["readRate"] = limit.rate
    if limit.percent is not None:
        payload["readPercent"] = limit.percent
    if args.dry_run:
        estimate.print_estimates(args, estimate.table_estimates(args))
        say(args, "dry run: nothing started")
        return 0
    return _start(args, _machine(args, "BackupStateMachineArn"), payload, "backup")


def cmd_start_restore(args: argparse.Namespace) -> int:
    one_target(args)
    payload: dict[str, Any] = {"source": args.backup, "mode": args.mode, "allowSource": args.allow_source}
    payload.update({"method": args.method} if args.method != "write" else {})  # a stack before issue 13 takes none
    if args.table:
        payload["table"] = args.table
    else:
        payload["map"] = [{"from": a, "to": b} for a, b in mapping(args)]
        payload.update({"backupId": args.backup_id} if args.backup_id else {})
        payload.update({"tables": args.tables.split(",")} if args.tables else {})
        payload.update({"allowPartial": True} if args.allow_partial else {})
    payload.update(estimate.load_request(args))
    payload.update(_select_request(args))
    if args.dry_run and "select" in payload:  # the plan reads every part to find the items: that is the cost
        say(args, _select_cost(args))
        say(args, "dry run: nothing started")
        return 0
    if args.dry_run:
        estimate.print_estimates(args, [_restore_estimate(args)])
        say(args, "dry run: nothing started")
        return 0
    return _start(args, _machine(args, "RestoreStateMachineArn"), payload, "restore")


def _select_request(args: argparse.Namespace) -> dict[str, Any]:
    """``toTime`` and ``select`` (keys, keyPrefixes, keysFile) of the request, from --to-time and the selectors."""
    out: dict[str, Any] = {"toTime": args.to_time} if args.to_time else {}
    select = selection(args)
    if select is not None:
        if args.keys_file and not args.keys_file.startswith("s3://"):
            raise UsageError(
                f"--keys-file {args.keys_file}: the state machine reads the keys from S3: copy the file there "
                f"(aws s3 cp {args.keys_file} s3://BUCKET/KEY) and give its s3:// URL"
            )
        out["select"] = select.request()
    return out


def _select_cost(args: argparse.Namespace) -> str:
    """What the restore machine's plan reads to find the selected items (every part of the backup), as a line."""
    from ddb_backup.format.sources import open_source
    from ddb_backup.selection import cost

    if args.to_time:
        return "with --to-time the plan reads the newest exact backup before it whole: see restore --to-time --preview"
    src = open_source(args.backup, client("s3"))
    return cost.describe({"read": cost.read_cost(src.parts)}) + "; then one write per item it matches"


def _restore_estimate(args: argparse.Namespace) -> dict[str, Any]:
    """The estimate of restoring the one backup --backup names, from its manifest."""
    from ddb_backup.estimate import Plan
    from ddb_backup.estimate import estimate as estimate_of
    from ddb_backup.format.sources import open_source

    if not args.table:
        raise UsageError("--dry-run estimates one backup: give --backup URL --table NAME")
    src = open_source(args.backup, client("s3"))
    saved = (src.description or {}).get("Table", {})
    size = int(saved.get("TableSizeBytes") or sum(p.bytes or 0 for p in src.parts))
    items = src.expected_items if src.expected_items is not None else int(saved.get("ItemCount", 0))
    plan = Plan(write_rate=args.write_rate)
    return estimate_of(items, size, plan, table=args.table, import_bytes=src.uncompressed_bytes)


def cmd_list(args: argparse.Namespace) -> int:
    from ddb_backup.format.catalog import list_backups
    from ddb_backup.names import is_s3_url, split_s3_url

    if sum(map(bool, (args.bucket, args.stack_name, args.dir))) > 1:
        raise UsageError("give one of --bucket, --stack-name and --dir")
    if args.dir:
        from ddb_backup_cli.describe import list_directory

        return list_directory(args, args.dir)
    if args.bucket:
        bucket, in_url = split_s3_url(args.bucket) if is_s3_url(args.bucket) else (args.bucket, "")
        if in_url and args.prefix is not None and in_url.rstrip("/") != args.prefix.rstrip("/"):
            raise UsageError(f"the prefix is {in_url!r} in --bucket and {args.prefix!r} in --prefix: give one")
        prefix = in_url or (DEFAULT_PREFIX if args.prefix is None else args.prefix)
    elif args.stack_name:
        bucket = _stack_outputs(args.stack_name)["BackupBucketName"]
        prefix = DEFAULT_PREFIX if args.prefix is None else args.prefix
    else:
        raise UsageError("give --bucket (or s3://bucket/prefix), --stack-name or --dir (local backup files)")
    rows = list_backups(client("s3"), bucket, prefix, table=args.table)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'table':40} {'backup id':27} {'items':>10} {'MB':>9}  state")
    for r in rows:
        size = f"{r['bytes'] / 1e6:,.1f}" if r["bytes"] is not None else "-"
        items = f"{r['items']:,}" if r["items"] is not None else "-"
        print(
            f"{r['table']:40} {r['backupId']:27} {items:>10} {size:>9}  {'complete' if r['complete'] else 'INCOMPLETE'}"
        )
    return 0


# ------------------------------------------------------------------ status
#: The stale threshold of a stack deployed before it had the MaxBackupAgeHours output (the template's default).
DEFAULT_MAX_AGE_HOURS = 26.0
#: Executions of each state machine looked at: the last one's status and time, and how many failed.
RUNS_LOOKED_AT = 20


def stack_status(outputs: dict[str, str], prefix: str, max_age: float, now: dt.datetime) -> dict[str, Any]:
    """What the stack's dashboard shows, read from S3 and Step Functions: per table the newest complete backup
    (id, age against ``max_age``, items, bytes, time taken), whether the latest backup completed, the change
    archive's gaps; the backup and restore state machines' last runs."""
    from ddb_backup.aws.tables import describe_table
    from ddb_backup.changes.archive import gaps
    from ddb_backup.format.catalog import age_hours, newest_backups

    s3, bucket = client("s3"), outputs["BackupBucketName"]
    tables = []
    for row in newest_backups(s3, bucket, prefix):
        newest = row["newestComplete"] or {}
        age = age_hours(newest.get("finishedAt"), now)
        took = _seconds(newest.get("startedAt"), newest.get("finishedAt"))
        found = gaps(s3, bucket, f"{prefix}{row['table']}/")
        # A deleted table's backups stay until the lifecycle rule expires them: listed, never stale (as the alarm).
        deleted = describe_table(client("dynamodb"), row["table"]) is None
        fresh = age <= max_age or deleted
        tables.append({**row, "ageHours": age, "stale": not fresh, "deleted": deleted, "seconds": took, "gaps": found})
    runs = {
        kind: _runs(outputs[key], now) if key in outputs else None
        for kind, key in (("backup", "BackupStateMachineArn"), ("restore", "RestoreStateMachineArn"))
    }
    stale = [t["table"] for t in tables if t["stale"]]
    return {
        "bucket": bucket,
        "prefix": prefix,
        "maxBackupAgeHours": max_age,
        "tables": tables,
        "runs": runs,
        "stale": stale,
    }


def _seconds(start: Any, end: Any) -> float | None:
    if not start or not end:
        return None
    begin = start if isinstance(start, dt.datetime) else utc_time(start)
    finish = end if isinstance(end, dt.datetime) else utc_time(end)
    return round((finish - begin).total_seconds(), 3)


def _runs(machine: str, now: dt.datetime) -> dict[str, Any]:
    """The last of the machine's executions (status, start, seconds) and the statuses of the last few."""
    listed = client("stepfunctions").list_executions(stateMachineArn=machine, maxResults=RUNS_LOOKED_AT)["executions"]
    listed = sorted(listed, key=lambda e: e["startDate"], reverse=True)
    counts: dict[str, int] = {}
    for e in listed:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    last = listed[0] if listed else None
    return {
        "stateMachineArn": machine,
        "counts": counts,
        "last": None
        if last is None
        else {
            "name": last["name"],
            "status": last["status"],
            "startDate": last["startDate"].isoformat(),
            "seconds": _seconds(last["startDate"], last.get("stopDate") or now),
        },
    }


def cmd_status(args: argparse.Namespace) -> int:
    outputs = _stack_outputs(args.stack_name)
    if "BackupBucketName" not in outputs:
        raise DdbBackupError(f"stack {args.stack_name!r} has no output BackupBucketName: is it a ddb-backup stack?")
    prefix = args.prefix if args.prefix is not None else outputs.get("BackupPrefix", DEFAULT_PREFIX)
    max_age = args.max_age_hours
    if max_age is None:
        max_age = float(outputs.get("MaxBackupAgeHours", DEFAULT_MAX_AGE_HOURS))
    status = {"stack": args.stack_name, **stack_status(outputs, prefix, max_age, dt.datetime.now(dt.UTC))}
    if args.json:
        print_json(status)
    else:
        _print_status(status)
    return 1 if status["stale"] else 0


def _print_status(status: dict[str, Any]) -> None:
    print(
        f"stack {status['stack']}: backups in s3://{status['bucket']}/{status['prefix']}, "
        f"stale after {status['maxBackupAgeHours']:g} h"
    )
    print(
        f"{'table':36} {'newest complete backup':27} {'age':>9} {'items':>12} {'MB':>9} {'took':>9}  latest      gaps"
    )
    for t in status["tables"]:
        newest = t["newestComplete"] or {}
        age = "never" if newest == {} else f"{t['ageHours']:,.1f} h"
        items = "-" if not newest else f"{newest['items']:,}"
        size = "-" if not newest else f"{newest['bytes'] / 1e6:,.1f}"
        took = "-" if t["seconds"] is None else f"{t['seconds']:,.1f} s"
        latest = "complete" if t["latestComplete"] else "INCOMPLETE"
        print(
            f"{t['table']:36} {newest.get('backupId', '-'):27} {age:>9} {items:>12} {size:>9} {took:>9}  "
            f"{latest:10}  {len(t['gaps']) or '-'}{'  STALE' if t['stale'] else ''}{'  (table deleted)' if t['deleted'] else ''}"
        )
    if not status["tables"]:
        print("  (no backups yet)")
    for kind, runs in status["runs"].items():
        last = runs and runs["last"]
        if not last:
            print(f"last {kind} run: none")
            continue
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(runs["counts"].items()))
        print(
            f"last {kind} run: {last['name']} {last['status']}, started {last['startDate']}, "
            f"{last['seconds']:,.1f} s (of the last {sum(runs['counts'].values())}: {counts})"
        )
    if status["stale"]:
        print(f"STALE: {', '.join(status['stale'])} (no complete backup within {status['maxBackupAgeHours']:g} h)")


# ------------------------------------------------------------------ parser
def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``start-backup``, ``start-restore`` and ``list`` to the main parser's subcommands."""
    add = partial(add_command, sub, parents)
    for name, func, help_ in (
        ("start-backup", cmd_start_backup, "start the deployed backup state machine"),
        ("start-restore", cmd_start_restore, "start the deployed restore state machine"),
    ):
        example = (
            "  ddb-backup start-backup --stack-name ddb-backup --prefix mystack- --wait\n"
            "  ddb-backup start-backup --state-machine-arn arn:aws:states:...:stateMachine:ddb-backup-Backup --tables mystack-RulesTable,mystack-UsersTable"
            if name == "start-backup"
            else "  ddb-backup start-restore --stack-name ddb-backup --backup s3://bucket/backups/mystack-RulesTable/ID/ --table restore-RulesTable --wait\n"
            "  ddb-backup start-restore --stack-name ddb-backup --backup s3://bucket/backups/ --map mystack-=restore- --wait"
        )
        p = add(name, help_, func, example)
        p.add_argument("--stack-name", help="the deployed ddb-backup stack (its outputs name the state machines)")
        p.add_argument("--state-machine-arn", help="use this state machine instead of the stack's")
        p.add_argument("--wait", action="store_true", help="follow the execution; exit 1 if it fails")
        p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
        p.add_argument("--dry-run", action="store_true", help="print the estimate (units, time, cost); start nothing")
        if name == "start-backup":
            add_table_selectors(p)
            estimate.add_rate_options(p, "read")
        else:
            p.add_argument("--backup", required=True, help="s3:// URL of the backup (directory or manifest)")
            p.add_argument("--table", type=table_name, help="target table (one table)")
            p.add_argument(
                "--map", action="append", metavar="OLD=NEW", help="restore a set, renaming by prefix (repeatable)"
            )
            p.add_argument("--backup-id", help="with --map: which backup run (default: the latest complete one)")
            p.add_argument("--tables", help="with --map: only these source tables (A,B) of the set")
            p.add_argument("--allow-partial", action="store_true", help="with --map: restore what the run holds")
            p.add_argument(
                "--mode",
                choices=["new", "overwrite"],
                default="new",
                help="new: create the target or require it empty (default); overwrite: upsert into a non-empty table",
            )
            p.add_argument(
                "--allow-source", action="store_true", help="allow restoring into the backup's own source table"
            )
            estimate.add_load_options(p)
            estimate.add_method_option(p)
            p.add_argument(
                "--to-time", metavar="TIME", help="restore the table as it was then (--backup: its backups' prefix)"
            )
            add_selectors(p, preview=False)

    p = add(
        "list",
        "list backups in the bucket: table, id, items, size, complete or not",
        cmd_list,
        "  ddb-backup list --stack-name ddb-backup\n  ddb-backup list --bucket s3://my-bucket/backups/ --table mystack-GranulesTable\n"
        "  ddb-backup list --dir backups/",
    )
    p.add_argument("--bucket", help="bucket name or s3://bucket/prefix")
    p.add_argument("--stack-name", help="the deployed ddb-backup stack (its output names the bucket)")
    p.add_argument("--dir", help="a local directory of backup files (backup --dir writes them)")
    p.add_argument("--prefix", help="key prefix of backups (default: the s3:// URL's, else backups/)")
    p.add_argument("--table", type=table_name, help="only this table")
    p = add(
        "status",
        "the stack's backups at a glance: each table's newest complete backup and its age, the last runs, "
        "the change archive's gaps (exit 1 when a table's backup is stale)",
        cmd_status,
        "  ddb-backup status --stack-name ddb-backup\n  ddb-backup status --stack-name ddb-backup --json",
    )
    p.add_argument("--stack-name", required=True, help="the deployed ddb-backup stack")
    p.add_argument("--prefix", help="key prefix of backups (default: the stack's BackupPrefix)")
    p.add_argument(
        "--max-age-hours", type=float, help="stale after this many hours (default: the stack's MaxBackupAgeHours)"
    )
    estimate.register(sub, parents)  # here rather than in main.py: the estimate belongs with the stack commands
