"""What every ``ddb-backup`` command shares: connection and output options, usage errors, output helpers."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any, TextIO

from ddb_backup.aws.clients import client
from ddb_backup_cli.progress import Progress

Command = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Wrong arguments: printed with the usage hint, exit 2."""


# ------------------------------------------------------------------ output
def flag(args: argparse.Namespace, name: str) -> bool:
    """An on/off option, false when the parser did not define it."""
    return bool(getattr(args, name, False))


def say(args: argparse.Namespace, text: str, *, stream: TextIO | None = None) -> None:
    """Print chatter to ``stream`` (default stdout) unless --quiet or --json."""
    if not flag(args, "quiet") and not flag(args, "json"):
        print(text, file=stream)


def print_json(doc: Any) -> None:
    """Print ``doc`` as indented JSON (anything unknown as its str)."""
    print(json.dumps(doc, indent=2, default=str))


def progress(args: argparse.Namespace, label: str) -> Progress:
    """A progress line for ``label``, off under --quiet or --json."""
    return Progress(label, enabled=False if (args.quiet or args.json) else None)


# ------------------------------------------------------------------ arguments
def tables_arg(args: argparse.Namespace) -> tuple[list[str] | None, str | None]:
    """The tables named by --table/--tables, or the --prefix: exactly one of the two."""
    names = [t for t in (args.tables or "").split(",") if t] + ([args.table] if args.table else [])
    if bool(names) == bool(args.prefix):
        raise UsageError("give --table/--tables or --prefix (one of them)")
    return (names or None), args.prefix


def mapping(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The --map OLD=NEW prefix pairs."""
    pairs = []
    for spec in args.map or []:
        old, sep, new = spec.partition("=")
        if not sep or not old:
            raise UsageError(f"--map {spec!r}: expected OLD_PREFIX=NEW_PREFIX, e.g. prod-=restore-")
        pairs.append((old, new))
    return pairs


def apply_connection(args: argparse.Namespace) -> None:
    """Put --region, --profile and --endpoint-url into the environment the AWS clients read."""
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = args.region
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    client.cache_clear()


# ------------------------------------------------------------------ parser
def common_options(*, top: bool) -> argparse.ArgumentParser:
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


def add_command(
    sub: Any, parents: list[argparse.ArgumentParser], name: str, help_: str, func: Command, epilog: str
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` running ``func``, with its examples and the common options."""
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_,
        description=help_,
        epilog="examples:\n" + epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
    )
    p.set_defaults(func=func, parser=p)
    return p


def add_table_selectors(p: argparse.ArgumentParser) -> None:
    """--table, --tables, --prefix and --segments: which tables a backup takes."""
    p.add_argument("--table", help="one table")
    p.add_argument("--tables", help="several tables, comma separated")
    p.add_argument("--prefix", help="every table whose name starts with this (e.g. mystack-)")
    p.add_argument("--segments", type=int, help="parallel scan segments per table (default: from table size)")
