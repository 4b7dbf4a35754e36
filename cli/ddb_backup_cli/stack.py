"""``ddb-backup start-backup | start-restore | list``: the deployed stack's state machines and bucket."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.errors import DdbBackupError
from ddb_backup_cli.common import (
    UsageError,
    add_command,
    add_table_selectors,
    mapping,
    print_json,
    say,
    tables_arg,
)


# ------------------------------------------------------------------ the deployed stack
def _stack_outputs(stack_name: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        stacks = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise DdbBackupError(f"stack {stack_name!r}: {exc.response['Error']['Message']}") from None
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
    while True:
        desc = sfn.describe_execution(executionArn=execution)
        if desc["status"] != "RUNNING":
            break
        if tty:
            counts = _map_counts(sfn, execution)
            sys.stderr.write(f"\r{desc['status'].lower()} {time.monotonic() - started:,.0f} s{counts}\033[K")
            sys.stderr.flush()
        time.sleep(args.poll)
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
        print(
            f"ddb-backup: execution {desc['status']}: {desc.get('error', '')}: {desc.get('cause', '')}", file=sys.stderr
        )
        return 1
    say(args, f"succeeded in {time.monotonic() - started:,.1f} s")
    if output and not args.json:
        # A backup's output is its totals and the key of its report (one row a table); a restore's, its report.
        say(args, "  " + json.dumps(output, default=str))
        if isinstance(output, dict) and output.get("report") and output.get("bucket"):
            say(args, f"  report: s3://{output['bucket']}/{output['report']}")
    return 0


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
    return _start(args, _machine(args, "BackupStateMachineArn"), payload, "backup")


def cmd_start_restore(args: argparse.Namespace) -> int:
    if bool(args.table) == bool(args.map):
        raise UsageError("give --table NAME (one table) or --map OLD=NEW (a set), not both")
    payload: dict[str, Any] = {"source": args.backup, "mode": args.mode, "allowSource": args.allow_source}
    if args.table:
        payload["table"] = args.table
    else:
        payload["map"] = [{"from": a, "to": b} for a, b in mapping(args)]
    return _start(args, _machine(args, "RestoreStateMachineArn"), payload, "restore")


def cmd_list(args: argparse.Namespace) -> int:
    from ddb_backup.aws.s3io import split_s3_url
    from ddb_backup.format.catalog import list_backups

    if args.bucket:
        bucket, prefix = split_s3_url(args.bucket) if args.bucket.startswith("s3://") else (args.bucket, args.prefix)
    elif args.stack_name:
        bucket, prefix = _stack_outputs(args.stack_name)["BackupBucketName"], args.prefix
    else:
        raise UsageError("give --bucket (or s3://bucket/prefix) or --stack-name")
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
            "  ddb-backup start-backup --state-machine-arn arn:aws:states:...:stateMachine:ddb-backup-Backup --tables A,B"
            if name == "start-backup"
            else "  ddb-backup start-restore --stack-name ddb-backup --backup s3://bucket/backups/T/ID/ --table U --wait\n"
            "  ddb-backup start-restore --stack-name ddb-backup --backup s3://bucket/backups/ --map mystack-=restore- --wait"
        )
        p = add(name, help_, func, example)
        p.add_argument("--stack-name", help="the deployed ddb-backup stack (its outputs name the state machines)")
        p.add_argument("--state-machine-arn", help="use this state machine instead of the stack's")
        p.add_argument("--wait", action="store_true", help="follow the execution; exit 1 if it fails")
        p.add_argument("--poll", type=float, default=5.0, help=argparse.SUPPRESS)
        if name == "start-backup":
            add_table_selectors(p)
        else:
            p.add_argument("--backup", required=True, help="s3:// URL of the backup (directory or manifest)")
            p.add_argument("--table", help="target table")
            p.add_argument("--map", action="append", metavar="OLD=NEW")
            p.add_argument("--mode", choices=["new", "overwrite"], default="new")
            p.add_argument("--allow-source", action="store_true")

    p = add(
        "list",
        "list backups in the bucket: table, id, items, size, complete or not",
        cmd_list,
        "  ddb-backup list --stack-name ddb-backup\n  ddb-backup list --bucket s3://my-bucket/backups/ --table mystack-GranulesTable",
    )
    p.add_argument("--bucket", help="bucket name or s3://bucket/prefix")
    p.add_argument("--stack-name")
    p.add_argument("--prefix", default="backups/", help="key prefix of backups (default backups/)")
    p.add_argument("--table", help="only this table")
