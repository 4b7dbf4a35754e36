"""``ddb-backup backup | restore | verify | demo``: the work done from this process."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup_cli.common import (
    UsageError,
    add_command,
    add_table_selectors,
    mapping,
    print_json,
    progress,
    say,
    tables_arg,
)

DEMO_HELP = "run the whole job on the embedded emulator: 8 Cumulus tables, backup, restore, verify"


# ------------------------------------------------------------------ backup
def cmd_backup(args: argparse.Namespace) -> int:
    from ddb_backup_cli import backup_local as local

    tables, prefix = tables_arg(args)
    ddb = client("dynamodb")
    if args.to:
        return _backup_to_s3(args, ddb, tables, prefix)
    if prefix:
        from ddb_backup.backup.plan import resolve_tables

        tables = resolve_tables(ddb, None, prefix)
    assert tables
    if args.out and len(tables) > 1:
        raise UsageError("--out names one file: use it with a single --table, or --dir for several")
    results = []
    for table in tables:
        path = Path(args.out) if args.out else Path(args.dir) / f"{table}.json"
        shown = progress(args, table)
        summary = local.backup_to_file(ddb, table, path, segments=args.segments, workers=args.workers, progress=shown)
        shown.close()
        summary["seconds"] = round(shown.seconds, 3)
        results.append(summary)
        say(
            args,
            f"{table}: {summary['items']:,} items -> {path} ({summary['bytes'] / 1e6:,.1f} MB, {shown.seconds:,.1f} s)",
        )
    if args.json:
        print_json(results)
    return 0


def _backup_to_s3(args: argparse.Namespace, ddb: Any, tables: list[str] | None, prefix: str | None) -> int:
    from ddb_backup.aws.s3io import split_s3_url
    from ddb_backup_cli import backup_local as local

    bucket, key_prefix = split_s3_url(args.to)
    if key_prefix and not key_prefix.endswith("/"):
        key_prefix += "/"
    shown = progress(args, "backup")

    def scan() -> list[dict[str, Any]]:
        return local.backup_to_s3(
            ddb,
            client("s3"),
            bucket,
            key_prefix,
            tables=tables,
            table_prefix=prefix,
            segments=args.segments,
            workers=args.workers,
            progress=shown,
        )

    if args.consistent:  # exact to a moment: the scan, made exact from each table's stream (issue 14)
        from ddb_backup.backup.plan import resolve_tables
        from ddb_backup_cli.changes_cmd import consistent_backups

        summaries = consistent_backups(args, bucket, tables or resolve_tables(ddb, None, prefix), scan)
    else:
        summaries = scan()
    shown.close()
    return _report(
        args,
        summaries,
        lambda s: f"{s['table']}: {s['items']:,} items in {s['parts']} parts -> s3://{bucket}/{s['manifest']}",
    )


def _report(args: argparse.Namespace, rows: list[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> int:
    """Print ``rows`` as JSON under --json, then one chatter ``line`` each; exit code 0."""
    if args.json:
        print_json(rows)
    for row in rows:
        say(args, line(row))
    return 0


# ------------------------------------------------------------------ restore / verify
def cmd_restore(args: argparse.Namespace) -> int:
    from ddb_backup_cli.restore_local import restore_sources

    if args.to_time:  # recovery to a second, from exact backups and the change archive (issue 14)
        from ddb_backup_cli.changes_cmd import restore_to_time

        return restore_to_time(args)
    if bool(args.table) == bool(args.map):
        raise UsageError("give --table NAME (one table) or --map OLD=NEW (a set), not both")
    keys = args.keys.split(",") if args.keys else None
    results = restore_sources(
        client("dynamodb"),
        client("s3"),
        args.source,
        table=args.table,
        mapping=mapping(args),
        backup_id=args.backup_id,
        mode=args.mode,
        allow_source=args.allow_source,
        key_names=keys,
        workers=args.workers,
        progress_factory=lambda label: progress(args, label),
        warn=lambda text: print(f"ddb-backup: warning: {text}", file=sys.stderr),
    )
    return _report(
        args, results, lambda r: f"{r['source']} -> {r['table']}: {r['items']:,} items restored ({r['seconds']:,.1f} s)"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from ddb_backup_cli.verify import verify_table

    report = verify_table(client("dynamodb"), client("s3"), args.table, args.backup, limit=args.show)
    if args.json:
        print_json(report)
    else:
        status = "identical" if report["identical"] else "DIFFERENT"
        print(
            f"{args.table}: {status}: backup {report['backupItems']:,} items, table {report['tableItems']:,} items, "
            f"{report['missing']:,} missing, {report['extra']:,} extra, {report['changed']:,} changed"
        )
        for diff in report["examples"]:
            print(f"  {diff['kind']}: {json.dumps(diff['key'])}")
    return 0 if report["identical"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from devkit.demo import run_demo

    return run_demo(items=args.items, quiet=args.quiet)


# ------------------------------------------------------------------ parser
def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``backup``, ``restore`` and ``verify`` to the main parser's subcommands."""
    add = partial(add_command, sub, parents)
    p = add(
        "backup",
        "back up tables to a local file (default) or to S3",
        cmd_backup,
        "  ddb-backup backup --table mystack-GranulesTable            # backups/mystack-GranulesTable.json\n"
        "  ddb-backup backup --table T --out /tmp/T.json.gz            # gzip when the name ends in .gz\n"
        "  ddb-backup backup --prefix mystack- --dir backups/           # one file per table\n"
        "  ddb-backup backup --tables A,B --to s3://bucket/backups/     # backup format v1 with manifest",
    )
    add_table_selectors(p)
    p.add_argument("--out", help="output file for a single table (default: backups/<table>.json)")
    p.add_argument("--dir", default="backups", help="directory for per-table files (default: backups)")
    p.add_argument("--to", metavar="S3_URL", help="write backup format v1 under s3://bucket/prefix instead")
    p.add_argument("--workers", type=int, default=8, help="segments scanned at once (default 8)")
    p.add_argument(
        "--consistent", action="store_true", help="with --to: exact to a moment (needs a stream of new images)"
    )
    p.add_argument("--settle", type=float, default=2.0, help=argparse.SUPPRESS)  # seconds for the stream to catch up

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
    p.add_argument(
        "--to-time",
        metavar="TIME",
        help="s3://B/P/<table>/: the table as it was at TIME (exact backups + change archive)",
    )

    p = add(
        "verify",
        "compare a table with a backup, item by item",
        cmd_verify,
        "  ddb-backup verify --table restore-GranulesTable --backup backups/mystack-GranulesTable.json",
    )
    p.add_argument("--table", required=True)
    p.add_argument("--backup", required=True, help="the backup to compare with (any SOURCE restore reads)")
    p.add_argument("--show", type=int, default=10, help="differences to print (default 10)")


def register_demo(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the main parser's subcommands."""
    p = add_command(sub, parents, "demo", DEMO_HELP, cmd_demo, "  ddb-backup demo\n  ddb-backup demo --items 500")
    p.add_argument("--items", type=int, default=600, help="items in the Granules table (others scale from it)")
