"""``ddb-backup pitr ...`` and ``ddb-backup snapshots ...``: AWS-native backups from the command line.

Thin: the logic is in :mod:`ddb_backup.native` (pitr, restores, snapshots),
which the Lambda functions run too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.aws.retry import Retry
from ddb_backup.errors import BadInput
from ddb_backup.events import DEFAULT_CUMULUS_TABLES, TableSelection
from ddb_backup.names import parse_time
from ddb_backup.native.pitr import check, ensure_pitr, pitr_status, summarize
from ddb_backup.native.restores import restore_to_point_in_time
from ddb_backup.native.snapshots import (
    backup_rows,
    create_backups,
    create_one,
    list_backups,
    prune_backups,
    restore_from_backup,
    stack_marker,
)
from ddb_backup.native.snapshots import check as check_snapshots
from ddb_backup_cli.common import common_options, flag, print_json, say, stack_name_from_env, table_names

DEFAULT_STACK = "ddb-backup"

PITR_EPILOG = """\
examples:
  ddb-backup pitr status --cumulus-prefix mystack-
  ddb-backup pitr enable --table mystack-GranulesTable --days 35
  ddb-backup pitr enable --cumulus-prefix mystack-          # the eight Cumulus tables
  ddb-backup pitr restore --table mystack-GranulesTable --to restore-GranulesTable --time 2026-11-22T03:00:00Z
  ddb-backup pitr restore --table mystack-GranulesTable --to restore-GranulesTable --latest

A restore creates a new table, waits for it to be ACTIVE, then re-applies what AWS
drops on restores (TTL, stream, tags, PITR) from the source table.
"""

SNAPSHOTS_EPILOG = """\
examples:
  ddb-backup snapshots list --cumulus-prefix mystack-
  ddb-backup snapshots create --table mystack-GranulesTable              # named like the stack's own
  ddb-backup snapshots create --table mystack-GranulesTable --name before-migration
  ddb-backup snapshots restore arn:aws:dynamodb:...:table/T/backup/01763780000000-a1b2c3d4 --to restore-T
  ddb-backup snapshots prune --cumulus-prefix mystack- --retention-days 90 --dry-run

The stack's backups are named <table>-ddbb-<marker>-<UTC time>; the marker comes from
--stack-name (default: DDB_BACKUP_STACK_NAME or "ddb-backup"). prune deletes only those,
never a backup it did not make, and always keeps each table's newest one.
"""


# ------------------------------------------------------------------ helpers
def _emit(args: argparse.Namespace, doc: Any, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if flag(args, "json"):
        print_json(doc)
        return
    if not rows:
        print("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    headers = [re.sub(r"(?<=[a-z])(?=[A-Z])", " ", c).lower() for c in columns]  # recoveryPeriodInDays -> words
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    """A table cell: yes/no for booleans, empty for None."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _selection(args: argparse.Namespace, *, required: bool) -> list[str] | None:
    tables = [name for given in args.table or [] for name in given.split(",") if name]
    if tables and args.cumulus_prefix:
        raise BadInput("give --table or --cumulus-prefix, not both")
    if not tables and not args.cumulus_prefix:
        if required:
            raise BadInput("give --table (repeatable) or --cumulus-prefix")
        return None
    try:
        selection = TableSelection.model_validate(
            {"tables": tables, "cumulusPrefix": args.cumulus_prefix or "", "cumulusTables": args.cumulus_tables}
        )
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise BadInput(str(exc).splitlines()[-1].strip()) from None
    return selection.names()


def _marker(args: argparse.Namespace) -> str:
    return stack_marker(args.stack_name or stack_name_from_env() or DEFAULT_STACK)


def _retry(args: argparse.Namespace) -> Retry:
    return Retry.within(args.timeout, base=2.0, cap=30.0)


def _all_tables(ddb: Any) -> list[str]:
    return [n for page in ddb.get_paginator("list_tables").paginate() for n in page["TableNames"]]


# ------------------------------------------------------------------ pitr
def cmd_pitr_status(args: argparse.Namespace) -> int:
    ddb = client("dynamodb")
    tables = _selection(args, required=False) or _all_tables(ddb)
    rows = pitr_status(ddb, tables)
    _emit(args, rows, rows, ["table", "tableStatus", "pitr", "recoveryPeriodInDays", "earliest", "latest"])
    return 0


def cmd_pitr_enable(args: argparse.Namespace) -> int:
    tables = _selection(args, required=True) or []
    say(
        args,
        f"turning PITR on for {len(tables)} table(s), {args.days} days; new tables may take a while",
        stream=sys.stderr,
    )
    results = ensure_pitr(client("dynamodb"), tables, recovery_days=args.days, retry=_retry(args))
    summary = summarize(results)
    _emit(args, summary, summary["tables"], ["table", "status", "recoveryPeriodInDays", "reason"])
    check(results)
    return 0


def cmd_pitr_restore(args: argparse.Namespace) -> int:
    if bool(args.time) == bool(args.latest):
        raise BadInput("give --time ISO8601 or --latest")
    when = parse_time(args.time, "--time") if args.time else None
    result = restore_to_point_in_time(
        client("dynamodb"),
        args.table,
        args.to,
        when=when,
        retry=_retry(args),
        on_wait=lambda text: say(args, text, stream=sys.stderr),
    )
    _emit_restore(args, result)
    return 0


def _emit_restore(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if flag(args, "json"):
        print_json(result)
        return
    origin = result.get("backup") or f"{result['source']} at {result['restoredTo']}"
    print(f"restored {origin} to {result['target']}")
    print(f"re-applied: {', '.join(result['reapplied']) or 'nothing (the source had no TTL, stream, tags or PITR)'}")
    for note in result.get("notes", []):
        print(f"note: {note}")


# ------------------------------------------------------------------ snapshots
def cmd_snapshots_list(args: argparse.Namespace) -> int:
    marker = _marker(args)
    tables = _selection(args, required=False)
    rows = backup_rows(list_backups(client("dynamodb"), tables, "ALL"), marker)
    if args.ours:
        rows = [r for r in rows if r["ours"]]
    _emit(args, rows, rows, ["table", "name", "created", "status", "type", "ours", "arn"])
    return 0


def cmd_snapshots_create(args: argparse.Namespace) -> int:
    tables = _selection(args, required=True) or []
    ddb = client("dynamodb")
    if args.name:
        if len(tables) != 1:
            raise BadInput("--name needs exactly one --table")
        results = [create_one(ddb, tables[0], args.name)]
    else:
        results = create_backups(ddb, tables, _marker(args), retry=_retry(args))
    rows = [r.as_dict() for r in results]
    _emit(args, rows, rows, ["table", "status", "name", "reason"])
    check_snapshots({"created": rows, "pruned": []})
    missing = [r["table"] for r in rows if r["status"] == "missing"]
    if missing:
        raise BadInput(f"no backup made of {', '.join(missing)}: the table does not exist")
    return 0


def cmd_snapshots_restore(args: argparse.Namespace) -> int:
    result = restore_from_backup(client("dynamodb"), args.backup_arn, args.to, retry=_retry(args))
    _emit_restore(args, result)
    return 0


def cmd_snapshots_prune(args: argparse.Namespace) -> int:
    tables = _selection(args, required=True) or []
    results = prune_backups(
        client("dynamodb"),
        tables,
        _marker(args),
        retention_days=args.retention_days,
        keep_latest=args.keep_latest,
        dry_run=args.dry_run,
        retry=_retry(args),
    )
    rows = [r.as_dict() for r in results]
    _emit(args, rows, rows, ["table", "name", "created", "status", "reason"])
    check_snapshots({"created": [], "pruned": rows})
    return 0


# ------------------------------------------------------------------ parser
def _selectors(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--table", action="append", type=table_names, metavar="TABLE", help="a table (repeatable, or comma separated)"
    )
    p.add_argument("--cumulus-prefix", metavar="PREFIX", help="the Cumulus tables <PREFIX><Name>Table, e.g. mystack-")
    p.add_argument(
        "--cumulus-tables",
        default=",".join(DEFAULT_CUMULUS_TABLES),
        metavar="NAMES",
        help="Cumulus short names with --cumulus-prefix (default: %(default)s)",
    )


def _timeout(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument(
        "--timeout",
        type=float,
        default=default,
        metavar="SECONDS",
        help="how long to keep retrying new or busy tables and to wait for restores (default %(default)s)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _days(text: str) -> int:
    value = _positive(text)
    if value > 35:
        raise argparse.ArgumentTypeError(f"PITR keeps 1 to 35 days, got {value}")
    return value


def _group(subparsers: Any, name: str, help_: str, description: str, epilog: str) -> Any:
    """Add command group ``name``; returns its subcommands (dest ``<name>_command``)."""
    top = subparsers.add_parser(
        name,
        help=help_,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return top.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def register(subparsers: Any) -> None:
    """Add ``pitr`` and ``snapshots`` to the main parser's subcommands."""
    parents = [common_options(top=False, endpoint_timeout=False)]

    def add(
        group: Any, name: str, help_: str, func: Callable[[argparse.Namespace], int], epilog: str
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=parents,
        )
        p.set_defaults(func=func, parser=p)
        return p

    pitr_sub = _group(
        subparsers,
        "pitr",
        "point-in-time recovery: status, enable, restore",
        "Point-in-time recovery (PITR) of DynamoDB tables.",
        PITR_EPILOG,
    )
    p = add(
        pitr_sub,
        "status",
        "show PITR status and restorable window of tables (all tables by default)",
        cmd_pitr_status,
        PITR_EPILOG,
    )
    _selectors(p)
    p = add(
        pitr_sub,
        "enable",
        "turn PITR on (waits and retries while a table is new or busy)",
        cmd_pitr_enable,
        PITR_EPILOG,
    )
    _selectors(p)
    p.add_argument("--days", type=_days, default=35, help="RecoveryPeriodInDays, 1-35 (default 35)")
    _timeout(p, 600)
    p = add(pitr_sub, "restore", "restore a table to a point in time into a new table", cmd_pitr_restore, PITR_EPILOG)
    p.add_argument("--table", required=True, help="the source table (PITR must be on)")
    p.add_argument("--to", required=True, metavar="TABLE", help="the new table")
    p.add_argument("--time", metavar="ISO8601", help="e.g. 2026-11-22T03:00:00Z (no zone means UTC)")
    p.add_argument("--latest", action="store_true", help="the latest restorable time instead of --time")
    _timeout(p, 4 * 3600)

    snap_sub = _group(
        subparsers,
        "snapshots",
        "on-demand backups: list, create, restore, prune",
        "On-demand DynamoDB backups (CreateBackup), as the stack makes them.",
        SNAPSHOTS_EPILOG,
    )

    def stack_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--stack-name",
            help=f"the stack whose backups are 'ours' (default: DDB_BACKUP_STACK_NAME or {DEFAULT_STACK!r})",
        )

    p = add(snap_sub, "list", "list on-demand backups (all tables by default)", cmd_snapshots_list, SNAPSHOTS_EPILOG)
    _selectors(p)
    stack_option(p)
    p.add_argument("--ours", action="store_true", help="only backups made by the stack")
    p = add(snap_sub, "create", "make an on-demand backup of tables now", cmd_snapshots_create, SNAPSHOTS_EPILOG)
    _selectors(p)
    stack_option(p)
    p.add_argument("--name", help="a name of your own (one table); the stack never prunes such a backup")
    _timeout(p, 600)
    p = add(
        snap_sub, "restore", "restore an on-demand backup into a new table", cmd_snapshots_restore, SNAPSHOTS_EPILOG
    )
    p.add_argument("backup_arn", metavar="ARN", help="the backup's ARN (see 'snapshots list')")
    p.add_argument("--to", required=True, metavar="TABLE", help="the new table")
    _timeout(p, 4 * 3600)
    p = add(
        snap_sub,
        "prune",
        "delete the stack's own backups older than the retention",
        cmd_snapshots_prune,
        SNAPSHOTS_EPILOG,
    )
    _selectors(p)
    stack_option(p)
    p.add_argument(
        "--retention-days",
        type=_positive,
        required=True,
        metavar="DAYS",
        help="delete the stack's own backups older than this many days (the newest --keep-latest are kept)",
    )
    p.add_argument(
        "--keep-latest", type=_positive, default=1, metavar="N", help="always keep each table's N newest (default 1)"
    )
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    _timeout(p, 600)
