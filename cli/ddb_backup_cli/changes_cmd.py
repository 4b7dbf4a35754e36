"""``ddb-backup changes follow``, ``restore --to-time`` and ``backup --consistent``: exactness from the stream."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.clients import client
from ddb_backup.names import parse_time, split_s3_url
from ddb_backup_cli.common import UsageError, add_command, print_json, say, table_name
from ddb_backup_cli.files import backtrack
from ddb_backup_cli.files.preview import show_rows
from ddb_backup_cli.files.select import Selection, overlay

if TYPE_CHECKING:
    from ddb_backup.changes.stream import Change


def _dir(url: str) -> tuple[str, str]:
    bucket, prefix = split_s3_url(url)
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def restore_to_time(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """``restore s3://B/P/T/ --table U --to-time TIME``: newest exact backup before TIME, then the archive's changes.

    ``options``: the restore's other options as :func:`restore_sources` takes them (mode, write rate, load
    billing, dry run): a restore to a time honours each. The target stays marked until the changes are applied.
    """
    from ddb_backup.changes.totime import changes_to, check_reach, newest_exact
    from ddb_backup.restore.partitioned.files import to_time_files
    from ddb_backup_cli.files.mirror import dry_run_lines
    from ddb_backup_cli.files.restore import restore_sources

    if not args.table or args.map:
        raise UsageError("--to-time restores one table: give --table NAME")
    if args.expect_items is not None:
        raise UsageError(
            "--expect-items counts a file's items; a restore to a time ends with the items of that moment, "
            "which no file counts: leave it out (the changes are proved complete by the archive instead)"
        )
    when = parse_time(args.to_time, "--to-time")
    bucket, table_dir = _dir(args.source)
    s3, ddb = client("s3"), client("dynamodb")
    directory, manifest = newest_exact(s3, bucket, table_dir, when)
    check_reach(client("dynamodbstreams"), s3, bucket, table_dir, manifest, when)
    files = to_time_files(s3, bucket, table_dir, manifest, when)
    moment = {"toTime": when.isoformat(), "consistentAt": manifest["consistentAt"]}
    select: Selection | None = options.get("select")
    changes: list[Change] = []
    if select is not None:  # a key that only the changes bring is selected too (a selection reads them all)
        changes = select.also = changes_to(s3, bucket, table_dir, manifest, when)
    rate = options["limit"].rate if options.get("limit") else None

    def apply(target: str, dry_run: bool = False) -> dict[str, Any]:
        keep = select.keeps if select is not None else None
        return _applied(ddb, s3, files, when, target, keep, rate, dry_run)

    [row] = restore_sources(
        ddb,
        s3,
        f"s3://{bucket}/{directory}",
        table=args.table,
        allow_source=args.allow_source,
        workers=args.workers,
        warn=lambda text: print(f"ddb-backup: warning: {text}", file=sys.stderr),
        after_parts=lambda target: {**moment, **apply(target)},
        **options,
    )
    if select is not None and select.preview:
        row.update(moment=when.isoformat(), items=overlay(row["items"], _kept(changes, select), when, select.key_names))
        return show_rows(args, [row])
    if options.get("dry_run"):
        row.update(moment, changesToApply=apply(args.table, dry_run=True)["changes"])
        lines = [*dry_run_lines(row), f"then {row['changesToApply']:,} changes up to {row['toTime']}"]
        return _said(args, row, [*lines, "dry run: nothing created, written or deleted"])
    text = (
        f"{row['source']} -> {args.table}: {row['items']:,} items, then {row['changes']:,} changes to {row['toTime']}"
    )
    return _said(args, row, [text])


def _applied(
    ddb: Any,
    s3: Any,
    files: list[Any],
    when: Any,
    target: str,
    keep: Any,
    rate: float | None,
    dry_run: bool,
) -> dict[str, Any]:
    """The changes up to ``when`` partitioned by key on this machine, folded and written one partition at a time
    (the machine's code, in a loop: memory holds one partition); the counts."""
    from ddb_backup.restore.partitioned.local import apply_changes

    done = apply_changes(ddb, s3, files, when, target, keep=keep, write_rate=rate or 0.0, dry_run=dry_run)
    return {k: done[k] for k in ("changes", "puts", "deletes")} if not dry_run else {"changes": done["changes"]}


def _kept(changes: list[Change], select: Selection | None) -> list[Change]:
    """The changes of the selected keys (all without a selection): a selection is restored to the time alone."""
    return changes if select is None else [c for c in changes if select.keeps(c)]


def _said(args: argparse.Namespace, row: dict[str, Any], lines: list[str]) -> int:
    if args.json:
        print_json([row])
    for text in lines:
        say(args, text)
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    from ddb_backup.changes.follow import follow

    bucket, prefix = _dir(args.to)
    totals = follow(
        client("dynamodb"),
        client("dynamodbstreams"),
        client("s3"),
        bucket,
        prefix,
        args.table,
        until_idle=args.until_idle,
        lag=args.lag,
    )
    if args.json:
        print_json(totals)
    say(args, f"{args.table}: {totals['changes']:,} changes in {totals['files']} files, {totals['gaps']} gaps recorded")
    return 0 if not totals["gaps"] else 1


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``changes follow`` and ``backtrack`` (which reads the change archive) to the main parser's subcommands."""
    backtrack.register(sub, parents)
    changes = sub.add_parser(
        "changes",
        help="the continuous change archive (from the table's stream)",
        description="The continuous change archive: a table's stream kept in S3 beside its exact backups, "
        "so restore --to-time can rebuild the table as it was at any second.",
    )
    inner = changes.add_subparsers(dest="changes_command", metavar="COMMAND", required=True)
    p = add_command(
        inner,
        parents,
        "follow",
        "append the table's stream to s3://B/P/<table>/changes/, recording gaps",
        cmd_follow,
        "  ddb-backup changes follow --table mystack-GranulesTable --to s3://bucket/backups/ --until-idle 30",
    )
    p.add_argument("--table", type=table_name, required=True, help="the table whose stream (new images) to archive")
    p.add_argument(
        "--to", required=True, metavar="S3_URL", help="the backups' prefix: changes go under <prefix><table>/changes/"
    )
    p.add_argument("--until-idle", type=float, metavar="SECONDS", help="stop after this long without a change")
    p.add_argument("--lag", type=float, default=2.0, help="seconds a change may take to appear in the stream")
