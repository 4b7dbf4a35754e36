"""``ddb-backup backup | restore | verify | demo``: the work done from this process."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.clients import client
from ddb_backup.errors import BadInput, DdbBackupError, TableNotFound
from ddb_backup.names import new_backup_id
from ddb_backup_cli import estimate
from ddb_backup_cli.common import (
    UsageError,
    add_command,
    add_table_selectors,
    mapping,
    mb,
    one_target,
    plural,
    print_json,
    progress,
    say,
    summary_table,
    table_name,
    tables_arg,
)
from ddb_backup_cli.endpoint import describe_failure
from ddb_backup_cli.files.cancel import Interrupted
from ddb_backup_cli.files.preview import show_rows
from ddb_backup_cli.files.select import add_selectors, selection

if TYPE_CHECKING:
    from collections.abc import Callable

    from ddb_backup_cli.progress import Progress

DEMO_HELP = (
    "run the whole job on the embedded emulator: 8 Cumulus tables, backup, restore, verify "
    "(needs a source checkout: make venv)"
)
LOCAL_STACK_HELP = (
    "serve template.yaml deployed on an emulator (moto) at 127.0.0.1, to try the stack commands "
    "(needs a source checkout: make venv)"
)
DEVKIT_MISSING = (
    "'ddb-backup {command}' runs template.yaml and functions/ on an emulator, with the development kit "
    "(devkit/), which the ddb-backup package does not ship ({missing} is not installed): in a clone of "
    "the repository, 'make venv' installs it; then run '.venv/bin/ddb-backup-dev {command}' (or 'make demo')"
)


# ------------------------------------------------------------------ backup
def cmd_backup(args: argparse.Namespace) -> int:  # noqa: C901 (one step per option of the command)
    tables, prefix = tables_arg(args)
    ddb = client("dynamodb")
    if args.to:
        return _backup_to_s3(args, ddb, tables, prefix)
    if args.consistent:
        raise UsageError(
            "--consistent writes an exact backup to S3 (--to s3://BUCKET/PREFIX/): a local file holds items only, "
            "not the stream's changes that make it exact; back up --to S3, then copy the backup's directory"
        )
    if prefix:
        from ddb_backup.backup.plan import resolve_tables

        tables = resolve_tables(ddb, None, prefix)
    assert tables
    if args.out and len(tables) > 1:
        raise UsageError("--out names one file: use it with a single --table, or --dir for several")
    check_tables_exist(ddb, tables)
    paths = {table: Path(args.out) if args.out else Path(args.dir) / f"{table}.json" for table in tables}
    taken = [str(p) for p in paths.values() if p.exists()]
    if taken and not args.force:
        raise BadInput(
            f"{', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}: a backup never replaces another "
            "unless asked: give --force to replace it, or --out/--dir to write elsewhere"
        )
    results: list[dict[str, Any]] = []
    run = (new_backup_id(), list(tables))  # one id for every file of this run: a set restore checks it
    for table, path in paths.items():
        with progress(args, table) as shown:
            try:
                summary = _backup_file(args, ddb, table, path, shown, run)
            except Interrupted as exc:
                finished = [r["file"] for r in results if "error" not in r]
                raise Interrupted(
                    f"{exc}; complete and kept: {', '.join(finished)}" if finished else str(exc)
                ) from None
            except Exception as exc:
                if len(tables) == 1 or describe_failure(exc) is None:
                    raise
                summary = {"table": table, "file": str(path), "error": describe_failure(exc)}
        summary["seconds"] = round(shown.seconds, 3)
        results.append(summary)
        if "error" not in summary:
            say(
                args,
                f"{table}: {plural(summary['items'], 'item')} -> {path} ({mb(summary['bytes'])}, {shown.seconds:,.1f} s)",
            )
    if args.json:
        print_json(results)
    if len(tables) > 1:
        summary_table(args, results)
    return 1 if any("error" in r for r in results) else 0


def _backup_file(
    args: argparse.Namespace, ddb: Any, table: str, path: Path, shown: Progress, run: tuple[str, list[str]]
) -> dict[str, Any]:
    """One table of ``backup`` (to a file), with the command's options."""
    from ddb_backup_cli.files import backup as local

    return local.backup_to_file(
        ddb,
        table,
        path,
        segments=args.segments,
        workers=args.workers,
        progress=shown,
        replace=args.force,
        run_of=run,
        limit=estimate.limit_of(args, "read"),
    )


def check_tables_exist(ddb: Any, tables: list[str]) -> None:
    """Every table exists, or nothing is done: one error naming each missing table."""
    from ddb_backup.aws.tables import describe_table

    missing = [t for t in tables if describe_table(ddb, t) is None]
    if missing:
        names = ", ".join(repr(t) for t in missing)
        are = "table {} does not exist" if len(missing) == 1 else "tables {} do not exist"
        raise TableNotFound(f"{are.format(names)}; nothing was backed up (see 'aws dynamodb list-tables')")


def _backup_to_s3(args: argparse.Namespace, ddb: Any, tables: list[str] | None, prefix: str | None) -> int:
    from ddb_backup.names import split_s3_url
    from ddb_backup_cli.files import backup as local

    bucket, key_prefix = split_s3_url(args.to)
    if key_prefix and not key_prefix.endswith("/"):
        key_prefix += "/"
    shown = progress(args, "backup")

    exact = None
    if args.consistent:  # exact to a moment: the scan, made exact from each table's stream (issue 14)
        from ddb_backup.backup.exact import noter

        exact = noter(ddb, client("dynamodbstreams"), True, args.workers)
    with shown:
        summaries = local.backup_to_s3(
            ddb,
            client("s3"),
            bucket,
            key_prefix,
            tables=tables,
            table_prefix=prefix,
            segments=args.segments,
            workers=args.workers,
            progress=shown,
            limit=estimate.limit_of(args, "read"),
            exact=exact,
            streams=client("dynamodbstreams") if exact else None,
            settle=args.settle,
        )
    return _report(
        args,
        summaries,
        lambda s: (
            f"{s['table']}: {plural(s['items'], 'item')} in {plural(s['parts'], 'part')} -> s3://{bucket}/{s['manifest']}"
        ),
    )


def _report(args: argparse.Namespace, rows: list[dict[str, Any]], line: Callable[[dict[str, Any]], str]) -> int:
    """Print ``rows`` as JSON under --json, then one chatter ``line`` each; exit code 0."""
    if args.json:
        print_json(rows)
    for row in rows:
        say(args, line(row))
    if len(rows) > 1:
        summary_table(args, rows)
    return 0


# ------------------------------------------------------------------ restore / verify
def cmd_restore(args: argparse.Namespace) -> int:
    from ddb_backup_cli.files.restore import restore_sources

    select = selection(args)
    if args.to_time:  # recovery to a second, from exact backups and the change archive (issue 14)
        from ddb_backup_cli.changes_cmd import restore_to_time

        options = {"mode": args.mode, "limit": estimate.limit_of(args, "write"), "dry_run": args.dry_run}
        options["confirm"] = partial(_confirm_delete, args.yes)
        return restore_to_time(args, {**options, **_load_options(args), "select": select})
    one_target(args)
    if args.expect_items is not None and (args.map or args.expect_items < 0):
        raise UsageError("--expect-items N is a count of items, for a single --table restore")
    keys = args.keys.split(",") if args.keys else None
    results = restore_sources(
        client("dynamodb"),
        client("s3"),
        args.source,
        table=args.table,
        mapping=mapping(args),
        backup_id=args.backup_id,
        tables=args.tables.split(",") if args.tables else None,
        allow_partial=args.allow_partial,
        mode=args.mode,
        allow_source=args.allow_source,
        key_names=keys,
        workers=args.workers,
        progress_factory=lambda label: progress(args, label),
        warn=lambda text: print(f"ddb-backup: warning: {text}", file=sys.stderr),
        expect_items=args.expect_items,
        limit=estimate.limit_of(args, "write"),
        read=estimate.limit_of(args, "read"),
        **_load_options(args),
        dry_run=args.dry_run,
        method=args.method,
        note=lambda text: say(args, text, stream=sys.stderr),
        confirm=partial(_confirm_delete, args.yes),
        select=select,
    )
    if select is not None and select.preview:
        return show_rows(args, results)
    if args.dry_run:
        from ddb_backup_cli.files.mirror import dry_run_lines

        if args.json:
            print_json(results)
        for row in results:
            for text in dry_run_lines(row):
                say(args, text)
        say(args, "dry run: nothing created, written or deleted")
        return 0
    return _report(args, results, _restored_line)


def _confirm_delete(yes: bool, target: str, count: int) -> bool:
    """Whether a mirror deletes ``count`` items of ``target``: --yes, or the person at the terminal says so.

    With no terminal to ask (a script, a pipe) only --yes agrees: nothing is deleted on a guess.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        return False
    answer = input(f"ddb-backup: mirror: delete {count:,} items of {target} that the backup lacks? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _restored_line(r: dict[str, Any]) -> str:
    """One table's restore, as the run's chatter says it."""
    if r.get("mode") == "mirror":
        return (
            f"{r['source']} -> {r['table']}: mirrored: {r['added']:,} added, {r['changed']:,} changed, "
            f"{r['unchanged']:,} unchanged, {r['deleted']:,} deleted ({r['seconds']:,.1f} s)"
        )
    return f"{r['source']} -> {r['table']}: {plural(r['items'], 'item')} restored ({r['seconds']:,.1f} s)"


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    """--load-billing and --within, checked with the write rate options, as restore_sources takes them."""
    request = estimate.load_request(args)
    return {"load_billing": request.get("loadBilling"), "within": request.get("within")}


def cmd_verify(args: argparse.Namespace) -> int:
    from ddb_backup_cli.files.cancel import Interrupted
    from ddb_backup_cli.files.verify import verify_table

    with progress(args, args.table) as shown:
        try:
            ddb, read = client("dynamodb"), estimate.limit_of(args, "read")
            report = verify_table(
                ddb, client("s3"), args.table, args.backup, limit=args.show, progress=shown, read=read
            )
        except KeyboardInterrupt:
            raise Interrupted(
                f"the comparison of {args.table} with {args.backup} stopped before it finished: nothing was "
                "changed and its temporary files were removed; run the same command again to verify"
            ) from None
    if args.json:
        print_json(report)
    else:
        status = "identical" if report["identical"] else "DIFFERENT"
        print(
            f"{args.table}: {status}: backup {report['backupItems']:,} items, table {report['tableItems']:,} items, "
            f"{report['missing']:,} missing, {report['extra']:,} extra, {report['changed']:,} changed"
        )
        for diff in report["examples"]:
            print(f"  {diff['kind']}: {json.dumps(diff['key'])}{_attributes(diff)}")
    return 0 if report["identical"] else 1


def _attributes(diff: dict[str, Any]) -> str:
    """A changed item's attributes that differ, as text (nothing for other kinds)."""
    if "attributes" not in diff:
        return ""
    names = diff["attributes"]
    if names is None:
        return ": the item is no longer in the table or the backup"
    parts = [f"{kind} {', '.join(names[kind])}" for kind in ("changed", "added", "removed") if names[kind]]
    return ": attributes " + "; ".join(parts)


def cmd_dev(args: argparse.Namespace) -> int:
    """``demo`` and ``local-stack``: handed over to the development kit, or a clear error when it is absent."""
    try:
        from devkit import cli as devkit
    except ModuleNotFoundError as exc:
        raise DdbBackupError(DEVKIT_MISSING.format(command=args.command, missing=exc.name)) from None
    return devkit.run(args.command, args)


# ------------------------------------------------------------------ parser
def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``backup``, ``restore`` and ``verify`` to the main parser's subcommands."""
    add = partial(add_command, sub, parents)
    p = add(
        "backup",
        "back up tables to a local file (default) or to S3",
        cmd_backup,
        "  ddb-backup backup --table mystack-GranulesTable            # backups/mystack-GranulesTable.json\n"
        "  ddb-backup backup --table mystack-RulesTable --out /tmp/RulesTable.json.gz   # gzip when the name ends in .gz\n"
        "  ddb-backup backup --prefix mystack- --dir backups/           # one file per table\n"
        "  ddb-backup backup --tables mystack-RulesTable,mystack-UsersTable --to s3://bucket/backups/   # format v1",
    )
    add_table_selectors(p)
    p.add_argument(
        "--out", help="output file for a single table (default: backups/<table>.json; a name ending in .gz is gzipped)"
    )
    p.add_argument(
        "--dir", default="backups", help="directory for per-table files, <table>.json, not gzipped (default: backups)"
    )
    p.add_argument("--to", metavar="S3_URL", help="write backup format v1 under s3://bucket/prefix instead")
    p.add_argument("--workers", type=int, default=8, help="segments scanned at once (default 8)")
    p.add_argument("--force", action="store_true", help="replace an existing backup file (default: refuse, keeping it)")
    estimate.add_rate_options(p, "read")
    p.add_argument(
        "--consistent", action="store_true", help="with --to: exact to a moment (needs a stream of new images)"
    )
    p.add_argument("--settle", type=float, default=2.0, help=argparse.SUPPRESS)  # seconds for the stream to catch up

    p = add(
        "restore",
        "restore a backup (local file, S3 backup, native export, cumulus-api file)",
        cmd_restore,
        "  ddb-backup restore backups/mystack-GranulesTable.json --table restore-GranulesTable\n"
        "  ddb-backup restore s3://bucket/backups/mystack-GranulesTable/20261122T030000Z-1a2b3c4d/ --table restore-GranulesTable\n"
        "  ddb-backup restore s3://bucket/exports/AWSDynamoDB/01763780000000-a1b2c3d4/ --table restore-GranulesTable --keys granuleId\n"
        "  ddb-backup restore s3://bucket/backups/ --backup-id 20261122T030000Z-1a2b3c4d --map mystack-=restore-\n"
        "  ddb-backup restore cumulus-backups/mystack-RulesTable.json --table restore-RulesTable --mode overwrite\n"
        "  ddb-backup restore backups/mystack-RulesTable.json --table restore-RulesTable --mode mirror --dry-run",
    )
    p.add_argument("source", help="local file, s3:// backup directory or manifest, native export directory")
    p.add_argument("--table", type=table_name, help="target table")
    p.add_argument("--map", action="append", metavar="OLD=NEW", help="restore a set, renaming by prefix (repeatable)")
    p.add_argument(
        "--backup-id", help="with --map and an s3:// prefix: which backup run (default: the latest complete one)"
    )
    p.add_argument("--tables", help="with --map: restore only these source tables (A,B) of the set")
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="with --map: restore the tables the run holds complete and name the others (default: refuse)",
    )
    p.add_argument(
        "--mode",
        choices=["new", "overwrite", "mirror"],
        default="new",
        help="new: create the target or require it empty (default); overwrite: upsert into a non-empty table; "
        "mirror: make the target exactly the backup (write what differs, then delete what the backup lacks)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="say what the restore would add, change and delete (counts, first 10 keys), and change nothing",
    )
    p.add_argument("--allow-source", action="store_true", help="allow restoring into the backup's own source table")
    p.add_argument(
        "--yes", action="store_true", help="with --mode mirror: delete without asking (needed when no terminal asks)"
    )
    estimate.add_method_option(p)
    p.add_argument(
        "--keys", help="key attribute names (HASH[,RANGE]) when the source has no schema and the target does not exist"
    )
    p.add_argument("--workers", type=int, default=16, help="BatchWriteItem requests in flight at once (default 16)")
    p.add_argument(
        "--expect-items",
        type=int,
        metavar="N",
        help="the source must hold exactly N items: checked before anything is written, and after (exit 1 if not); "
        'for sources that carry no count (cumulus-api files, bare {"Item"} lines)',
    )
    estimate.add_load_options(p)
    estimate.add_rate_options(p, "read")  # a mirror's and a dry run's scans of the target
    p.add_argument(
        "--to-time",
        metavar="TIME",
        help="s3://B/P/<table>/: the table as it was at TIME (exact backups + change archive)",
    )
    add_selectors(p)

    p = add(
        "verify",
        "compare a table with a backup, item by item",
        cmd_verify,
        "  ddb-backup verify --table restore-GranulesTable --backup backups/mystack-GranulesTable.json",
    )
    p.add_argument("--table", type=table_name, required=True, help="the table to check")
    p.add_argument("--backup", required=True, help="the backup to compare with (any SOURCE restore reads)")
    p.add_argument("--show", type=int, default=10, help="differences to print (default 10)")
    estimate.add_rate_options(p, "read")


def register_demo(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``demo`` to the main parser's subcommands."""
    p = add_command(sub, parents, "demo", DEMO_HELP, cmd_dev, "  ddb-backup demo\n  ddb-backup demo --items 500")
    p.add_argument("--items", type=int, default=600, help="items in the Granules table (others scale from it)")
    p = add_command(
        sub,
        parents,
        "local-stack",
        LOCAL_STACK_HELP,
        cmd_dev,
        "  ddb-backup local-stack --port 5000 --sample mystack-\n"
        "  AWS_ENDPOINT_URL=http://127.0.0.1:5000 ddb-backup start-backup --stack-name ddb-backup-local --prefix mystack- --wait",
    )
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    p.add_argument("--stack-name", default="ddb-backup-local", help="the stack name to register (default %(default)s)")
    p.add_argument("--sample", metavar="PREFIX", help="create the eight Cumulus tables under PREFIX, with sample items")
    p.add_argument("--items", type=int, default=600, help="with --sample: items in the Granules table (default 600)")
