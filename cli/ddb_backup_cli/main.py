"""``ddb-backup``: the command line.

Keeps the Cumulus habits (``backup --table T`` writes ``backups/T.json``;
``restore backups/T.json --table U``), talks to DynamoDB and S3 directly on the
same core the Lambdas run, and drives the deployed state machines.

Exit codes: 0 success, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ddb_backup import __version__
from ddb_backup.aws.clients import client
from ddb_backup.errors import BadInput, DdbBackupError
from ddb_backup_cli.progress import Progress

EPILOG_MAIN = """\
examples:
  ddb-backup backup --table mystack-GranulesTable          # writes backups/mystack-GranulesTable.json
  ddb-backup restore backups/mystack-GranulesTable.json --table restore-GranulesTable
  ddb-backup backup --prefix mystack- --to s3://my-bucket/backups/
  ddb-backup restore s3://my-bucket/backups/mystack-GranulesTable/20261122T030000Z-1a2b3c4d/ --table restore-GranulesTable
  ddb-backup start-backup --stack-name ddb-backup --prefix mystack- --wait
  ddb-backup list --stack-name ddb-backup
  ddb-backup demo                                          # everything, on the embedded emulator

Endpoints: --endpoint-url or AWS_ENDPOINT_URL (e.g. dynalite or moto server) and the usual
AWS_REGION / AWS_PROFILE. Exit codes: 0 success, 1 failure, 2 usage.
"""


class UsageError(Exception):
    """Wrong arguments: printed with the usage hint, exit 2."""


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str))


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet and not args.json:
        print(text)


def _progress(args: argparse.Namespace, label: str) -> Progress:
    return Progress(label, enabled=False if (args.quiet or args.json) else None)


def _tables_arg(args: argparse.Namespace) -> tuple[list[str] | None, str | None]:
    names = [t for t in (args.tables or "").split(",") if t] + ([args.table] if args.table else [])
    if bool(names) == bool(args.prefix):
        raise UsageError("give --table/--tables or --prefix (one of them)")
    return (names or None), args.prefix


# ------------------------------------------------------------------ backup
def cmd_backup(args: argparse.Namespace) -> int:
    from ddb_backup_cli import backup_local as local

    tables, prefix = _tables_arg(args)
    ddb = client("dynamodb")
    if args.to:
        from ddb_backup.aws.s3io import split_s3_url

        bucket, key_prefix = split_s3_url(args.to)
        if key_prefix and not key_prefix.endswith("/"):
            key_prefix += "/"
        progress = _progress(args, "backup")
        summaries = local.backup_to_s3(
            ddb,
            client("s3"),
            bucket,
            key_prefix,
            tables=tables,
            table_prefix=prefix,
            segments=args.segments,
            workers=args.workers,
            progress=progress,
        )
        progress.close()
        if args.json:
            _print_json(summaries)
        for s in summaries:
            _say(args, f"{s['table']}: {s['items']:,} items in {s['parts']} parts -> s3://{bucket}/{s['manifest']}")
        return 0
    if prefix:
        from ddb_backup.backup.plan import resolve_tables

        tables = resolve_tables(ddb, None, prefix)
    assert tables
    if args.out and len(tables) > 1:
        raise UsageError("--out names one file: use it with a single --table, or --dir for several")
    results = []
    for table in tables:
        path = Path(args.out) if args.out else Path(args.dir) / f"{table}.json"
        progress = _progress(args, table)
        summary = local.backup_to_file(
            ddb, table, path, segments=args.segments, workers=args.workers, progress=progress
        )
        progress.close()
        summary["seconds"] = round(progress.seconds, 3)
        results.append(summary)
        _say(
            args,
            f"{table}: {summary['items']:,} items -> {path} ({summary['bytes'] / 1e6:,.1f} MB, {progress.seconds:,.1f} s)",
        )
    if args.json:
        _print_json(results)
    return 0


# ------------------------------------------------------------------ restore / verify
def _mapping(args: argparse.Namespace) -> list[tuple[str, str]]:
    pairs = []
    for spec in args.map or []:
        old, sep, new = spec.partition("=")
        if not sep or not old:
            raise UsageError(f"--map {spec!r}: expected OLD_PREFIX=NEW_PREFIX, e.g. prod-=restore-")
        pairs.append((old, new))
    return pairs


def cmd_restore(args: argparse.Namespace) -> int:
    from ddb_backup_cli.restore_local import restore_sources

    if bool(args.table) == bool(args.map):
        raise UsageError("give --table NAME (one table) or --map OLD=NEW (a set), not both")
    keys = args.keys.split(",") if args.keys else None
    results = restore_sources(
        client("dynamodb"),
        client("s3"),
        args.source,
        table=args.table,
        mapping=_mapping(args),
        backup_id=args.backup_id,
        mode=args.mode,
        allow_source=args.allow_source,
        key_names=keys,
        workers=args.workers,
        progress_factory=lambda label: _progress(args, label),
        warn=lambda text: print(f"ddb-backup: warning: {text}", file=sys.stderr),
    )
    if args.json:
        _print_json(results)
    for r in results:
        _say(args, f"{r['source']} -> {r['table']}: {r['items']:,} items restored ({r['seconds']:,.1f} s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ddb_backup_cli.verify import verify_table

    report = verify_table(client("dynamodb"), client("s3"), args.table, args.backup, limit=args.show)
    if args.json:
        _print_json(report)
    else:
        status = "identical" if report["identical"] else "DIFFERENT"
        print(
            f"{args.table}: {status}: backup {report['backupItems']:,} items, table {report['tableItems']:,} items, "
            f"{report['missing']:,} missing, {report['extra']:,} extra, {report['changed']:,} changed"
        )
        for diff in report["examples"]:
            print(f"  {diff['kind']}: {json.dumps(diff['key'])}")
    return 0 if report["identical"] else 1


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
    _say(args, f"started {execution}")
    if not args.wait:
        if args.json:
            _print_json({"executionArn": execution})
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
        _print_json(
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
    _say(args, f"succeeded in {time.monotonic() - started:,.1f} s")
    if output and not args.json:
        for row in output if isinstance(output, list) else [output]:
            _say(args, "  " + json.dumps(row, default=str))
    return 0


def _map_counts(sfn: Any, execution: str) -> str:
    try:
        runs = sfn.list_map_runs(executionArn=execution).get("mapRuns", [])
        if not runs:
            return ""
        counts = sfn.describe_map_run(mapRunArn=runs[-1]["mapRunArn"])["itemCounts"]
        return f", {counts['succeeded']}/{counts['total']} done, {counts['failed']} failed"
    except Exception:  # progress is best effort
        return ""


def cmd_start_backup(args: argparse.Namespace) -> int:
    tables, prefix = _tables_arg(args)
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
        payload["map"] = [{"from": a, "to": b} for a, b in _mapping(args)]
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
        _print_json(rows)
        return 0
    print(f"{'table':40} {'backup id':27} {'items':>10} {'MB':>9}  state")
    for r in rows:
        size = f"{r['bytes'] / 1e6:,.1f}" if r["bytes"] is not None else "-"
        items = f"{r['items']:,}" if r["items"] is not None else "-"
        print(
            f"{r['table']:40} {r['backupId']:27} {items:>10} {size:>9}  {'complete' if r['complete'] else 'INCOMPLETE'}"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from devkit.demo import run_demo

    return run_demo(items=args.items, quiet=args.quiet)


# ------------------------------------------------------------------ parser
def _common_options(*, top: bool) -> argparse.ArgumentParser:
    """Connection and output options, accepted before or after the command.

    On subcommands the defaults are suppressed, so ``ddb-backup --json list``
    and ``ddb-backup list --json`` mean the same.
    """
    common = argparse.ArgumentParser(add_help=False)
    g = common
    kw: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    g.add_argument("--region", help="AWS region (default: AWS_REGION / profile)", **kw)
    g.add_argument("--profile", help="AWS named profile", **kw)
    g.add_argument("--endpoint-url", help="endpoint for every service (default: AWS_ENDPOINT_URL)", **kw)
    g.add_argument("--json", action="store_true", help="print machine-readable JSON", **kw)
    g.add_argument("--quiet", "-q", action="store_true", help="no progress, no chatter", **kw)
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(top=False)

    parser = argparse.ArgumentParser(
        prog="ddb-backup",
        description="Back up and restore Amazon DynamoDB tables (locally, to S3, or through the deployed stack).",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"ddb-backup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int], epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog="examples:\n" + epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        p.set_defaults(func=func, parser=p)
        return p

    def table_selectors(p: argparse.ArgumentParser) -> None:
        p.add_argument("--table", help="one table")
        p.add_argument("--tables", help="several tables, comma separated")
        p.add_argument("--prefix", help="every table whose name starts with this (e.g. mystack-)")
        p.add_argument("--segments", type=int, help="parallel scan segments per table (default: from table size)")

    p = add(
        "backup",
        "back up tables to a local file (default) or to S3",
        cmd_backup,
        "  ddb-backup backup --table mystack-GranulesTable            # backups/mystack-GranulesTable.json\n"
        "  ddb-backup backup --table T --out /tmp/T.json.gz            # gzip when the name ends in .gz\n"
        "  ddb-backup backup --prefix mystack- --dir backups/           # one file per table\n"
        "  ddb-backup backup --tables A,B --to s3://bucket/backups/     # backup format v1 with manifest",
    )
    table_selectors(p)
    p.add_argument("--out", help="output file for a single table (default: backups/<table>.json)")
    p.add_argument("--dir", default="backups", help="directory for per-table files (default: backups)")
    p.add_argument("--to", metavar="S3_URL", help="write backup format v1 under s3://bucket/prefix instead")
    p.add_argument("--workers", type=int, default=8, help="segments scanned at once (default 8)")

    p = add(
        "restore",
        "restore a backup (local file, S3 backup, native export, cumulus-api file)",
        cmd_restore,
        "  ddb-backup restore backups/mystack-GranulesTable.json --table restore-GranulesTable\n"
        "  ddb-backup restore s3://bucket/backups/mystack-GranulesTable/20261122T030000Z-1a2b3c4d/ --table U\n"
        "  ddb-backup restore s3://bucket/exports/AWSDynamoDB/01763780000000-a1b2c3d4/ --table U --keys granuleId\n"
        "  ddb-backup restore s3://bucket/backups/ --backup-id 20261122T030000Z-1a2b3c4d --map mystack-=restore-\n"
        "  ddb-backup restore cumulus-backups/mystack-RulesTable.json --table U --mode overwrite",
    )
    p.add_argument("source", help="local file, s3:// backup directory or manifest, native export directory")
    p.add_argument("--table", help="target table")
    p.add_argument("--map", action="append", metavar="OLD=NEW", help="restore a set, renaming by prefix (repeatable)")
    p.add_argument("--backup-id", help="with --map and an s3:// prefix: which backup run (default: the latest)")
    p.add_argument(
        "--mode",
        choices=["new", "overwrite"],
        default="new",
        help="new: create the target or require it empty (default); overwrite: upsert into a non-empty table",
    )
    p.add_argument("--allow-source", action="store_true", help="allow restoring into the backup's own source table")
    p.add_argument(
        "--keys", help="key attribute names (HASH[,RANGE]) when the source has no schema and the target does not exist"
    )
    p.add_argument("--workers", type=int, default=4, help="parts restored at once (default 4)")

    p = add(
        "verify",
        "compare a table with a backup, item by item",
        cmd_verify,
        "  ddb-backup verify --table restore-GranulesTable --backup backups/mystack-GranulesTable.json",
    )
    p.add_argument("--table", required=True)
    p.add_argument("--backup", required=True, help="the backup to compare with (any SOURCE restore reads)")
    p.add_argument("--show", type=int, default=10, help="differences to print (default 10)")

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
            table_selectors(p)
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

    p = add(
        "demo",
        "run the whole job on the embedded emulator: 8 Cumulus tables, backup, restore, verify",
        cmd_demo,
        "  ddb-backup demo\n  ddb-backup demo --items 500",
    )
    p.add_argument("--items", type=int, default=600, help="items in the Granules table (others scale from it)")

    try:
        from ddb_backup_cli.aws_backups import register
    except ImportError:  # pragma: no cover - optional until that module lands
        pass
    else:
        register(sub)
    return parser


def _apply_connection(args: argparse.Namespace) -> None:
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = args.region
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    client.cache_clear()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    _apply_connection(args)
    if not args.json and not args.quiet:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    try:
        return int(args.func(args))
    except UsageError as exc:
        getattr(args, "parser", parser).print_usage(sys.stderr)
        print(f"ddb-backup: error: {exc}", file=sys.stderr)
        return 2
    except (DdbBackupError, BadInput) as exc:
        print(f"ddb-backup: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ddb-backup: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # AWS and OS failures: one line, no traceback
        message = _describe_failure(exc)
        if message is None:
            raise
        print(f"ddb-backup: error: {message}", file=sys.stderr)
        return 1


def _describe_failure(exc: Exception) -> str | None:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{exc.operation_name}: {err.get('Code')}: {err.get('Message')}"
    if isinstance(exc, BotoCoreError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
