"""``ddb-backup backtrack``: some items of a live table put back, in place, to their state at a time (issue 28
point 2), and ``--undo RUN`` to put them back as they were before. The logic is :mod:`ddb_backup.changes.backtrack`;
here are the options, the diff shown, the confirmation and the report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.changes import backtrack as core
from ddb_backup.names import parse_time, split_s3_url
from ddb_backup.selection.cost import describe
from ddb_backup_cli.common import UsageError, add_command, plural, print_json, say, table_name
from ddb_backup_cli.files.select import FILE, KEY, PREFIX, NothingSelected, Selection

EXAMPLES = (
    "  ddb-backup backtrack --table prod-T --from s3://B/P/ --to-time 2026-12-01T10:01:59Z --key pk=a --dry-run\n"
    "  ddb-backup backtrack --table prod-T --from s3://B/P/ --to-time 2026-12-01T10:01:59Z --key-prefix pk=job- --yes\n"
    "  ddb-backup backtrack --table prod-T --from s3://B/P/ --undo 20261201T101500Z-1a2b3c4d --yes"
)


def cmd_backtrack(args: argparse.Namespace) -> int:
    bucket, prefix = split_s3_url(args.from_)
    if not bucket:
        raise UsageError(f"--from {args.from_!r}: give the backups' prefix in S3, s3://BUCKET/PREFIX/")
    table_dir = f"{prefix if not prefix or prefix.endswith('/') else prefix + '/'}{args.table}/"
    given = [(KEY, t) for t in args.key or []] + [(PREFIX, t) for t in args.key_prefix or []]
    given += [(FILE, args.keys_file)] if args.keys_file else []
    if args.undo:
        if given or args.to_time:
            raise UsageError("--undo puts back every item its run wrote: leave out --to-time and the selectors")
        _check_confirmable(args)
        return _undo(args, bucket, table_dir)
    if not args.to_time:
        raise UsageError("say when to go back to: --to-time TIME (or --undo RUN to undo a backtrack)")
    if not given:
        raise UsageError("a backtrack writes to a live table: choose its items with --key, --key-prefix or --keys-file")
    select = Selection(given)
    select.check()
    _check_confirmable(args)
    return _backtrack(args, bucket, table_dir, select)


def _check_confirmable(args: argparse.Namespace) -> None:
    """Refuse, before anything is read, a run that would have to ask with no terminal to ask on."""
    if not args.yes and not args.dry_run and not sys.stdin.isatty():
        raise UsageError(
            f"backtrack writes to {args.table} and asks first, but stdin is not a terminal: "
            "give --yes to go ahead, or --dry-run to see what it would write"
        )


def _backtrack(args: argparse.Namespace, bucket: str, table_dir: str, select: Selection) -> int:
    ddb, s3 = client("dynamodb"), client("s3")
    when = parse_time(args.to_time, "--to-time")
    select.bind(core.key_schema(ddb, args.table), args.table)
    streams = client("dynamodbstreams")
    plan = core.plan(ddb, s3, streams, args.table, (bucket, table_dir), when, select.match, select.partitions())
    unmatched = [s.label for s in select.selectors if not s.matched]
    if unmatched:
        raise NothingSelected(
            f"{', '.join(unmatched[:10])}: matched no item of {args.table}, now or at {when.isoformat()} "
            f"(in {plan.source}); nothing was written: check the value and its type"
        )
    row = {
        "table": args.table,
        "toTime": when.isoformat(),
        "source": plan.source,
        "consistentAt": plan.consistent_at,
        "selected": plan.selected,
        "steps": [_step_row(s) for s in plan.steps],
        "cost": plan.cost,
    }
    heading = (
        f"{args.table}: {plural(len(plan.steps), 'item')} of the {plural(plan.selected, 'selected key')} differ "
        f"from {when.isoformat()} (from {plan.source} and the change archive)\n{describe(plan.cost)}"
    )
    return _carry_out(args, row, heading, plan.steps, plan.key_names, lambda: _saved(args, s3, bucket, table_dir, when, plan.steps))  # fmt: skip


def _saved(args: argparse.Namespace, s3: Any, bucket: str, table_dir: str, when: Any, steps: list[core.Step]) -> str:
    run_id = core.save(s3, bucket, table_dir, args.table, when, steps)
    print(
        f"ddb-backup: backtrack {run_id}: the items as they were before are saved at "
        f"s3://{bucket}/{core.run_key(table_dir, run_id)}; undo with: ddb-backup backtrack --table {args.table} "
        f"--from {args.from_} --undo {run_id}",
        file=sys.stderr,
    )
    return run_id


def _undo(args: argparse.Namespace, bucket: str, table_dir: str) -> int:
    ddb, s3 = client("dynamodb"), client("s3")
    head, done = core.load(s3, bucket, table_dir, args.table, args.undo)
    key_names = [k["AttributeName"] for k in core.key_schema(ddb, args.table)]
    steps, left = core.undo_steps(ddb, args.table, done)
    row = {"table": args.table, "undo": args.undo, "toTime": head.get("toTime"), "steps": [_step_row(s) for s in steps]}
    heading = f"{args.table}: undo backtrack {args.undo}: {plural(len(steps), 'item')} to put back as before"
    return _carry_out(args, row, heading, steps, key_names, lambda: args.undo, left=left)


def _carry_out(
    args: argparse.Namespace,
    row: dict[str, Any],
    heading: str,
    steps: list[core.Step],
    key_names: list[str],
    save: Any,
    left: list[tuple[core.Step, str]] | None = None,
) -> int:
    """Show the diff; unless a dry run (or refused), save the images (``save`` returns the run id), write."""
    say(args, heading)
    for step in steps:
        say(args, f"  {step.action:9} {step.label()}  ({', '.join(step.attributes())})")
    skipped = list(left or [])
    if args.dry_run or not steps:
        row["written"] = 0
        return _report(args, row, skipped, "dry run: nothing written" if args.dry_run else "nothing to write")
    if not args.yes and not _asked(f"write {plural(len(steps), 'item')} of {args.table}? [y/N] "):
        return _report(args, row, skipped, "not confirmed: nothing written", code=1)
    row["runId"] = save()
    skipped += core.write_all(client("dynamodb"), args.table, steps, key_names)
    row["written"] = len(steps) - (len(skipped) - len(left or []))
    return _report(args, row, skipped, f"{plural(row['written'], 'item')} written")


def _asked(question: str) -> bool:
    answer = input(f"ddb-backup: backtrack: {question}")
    return answer.strip().lower() in ("y", "yes")


def _report(
    args: argparse.Namespace, row: dict[str, Any], skipped: list[tuple[core.Step, str]], text: str, code: int = 0
) -> int:
    row["skipped"] = [{"key": s.label(), "reason": why} for s, why in skipped]
    if args.json:
        print_json(row)
    say(args, text)
    for step, why in skipped:
        print(f"ddb-backup: skipped {step.label()}: {why}", file=sys.stderr)
    if skipped:
        print(
            f"ddb-backup: error: {plural(len(skipped), 'item')} left as they are (changed while the run read and "
            f"wrote them): {', '.join(s.label() for s, _ in skipped[:20])}; look at them, then run again if need be",
            file=sys.stderr,
        )
        return 1
    return code


def _step_row(step: core.Step) -> dict[str, Any]:
    return {"key": step.label(), "action": step.action, "attributes": step.attributes()}


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``backtrack`` to the main parser's subcommands."""
    p = add_command(
        sub,
        parents,
        "backtrack",
        "put some items of a live table back, in place, to their state at a time (from its exact backups "
        "and change archive); each write conditional on the item not changing meanwhile",
        cmd_backtrack,
        EXAMPLES,
    )
    p.add_argument("--table", type=table_name, required=True, help="the live table whose items to put back")
    p.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="S3_URL",
        help="the backups' prefix: the table's exact backups and change archive are under <prefix><table>/",
    )
    p.add_argument("--to-time", metavar="TIME", help="the moment to put the items back to (ISO, naive means UTC)")
    p.add_argument("--undo", metavar="RUN", help="put back the items a backtrack run (its printed id) wrote")
    p.add_argument(
        "--key",
        action="append",
        metavar="PK=V[,SK=V]",
        help="backtrack the item with this key (the partition key alone: its whole partition) (repeatable)",
    )
    p.add_argument(
        "--key-prefix",
        action="append",
        metavar="PK=PREFIX[,SK=PREFIX]",
        help="backtrack the items whose string partition key (and sort key, if given) starts so (repeatable)",
    )
    p.add_argument(
        "--keys-file",
        metavar="FILE",
        help='backtrack the items keyed as the JSON lines of FILE, typed {"pk": {"S": "a"}} or plain {"pk": "a"}',
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show the keys and attributes that would change; write nothing"
    )
    p.add_argument("--yes", action="store_true", help="write without asking (needed when stdin is not a terminal)")
