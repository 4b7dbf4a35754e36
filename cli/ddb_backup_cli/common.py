"""What every ``ddb-backup`` command shares: connection and output options, usage errors, output helpers."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
from collections.abc import Callable
from typing import Any, NoReturn, TextIO

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


def plural(count: int, noun: str) -> str:
    """``1 item``, ``2 items``, ``1,000 items``."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def mb(nbytes: int | None) -> str:
    """A size in MB (decimal), or ``-`` when unknown."""
    return "-" if nbytes is None else f"{nbytes / 1e6:,.1f} MB"


def summary_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The closing table of a multi-table run: table, items, size, time, result (chatter, on stdout)."""
    say(args, f"\n{'table':40} {'items':>12} {'size':>12} {'time':>9}  result")
    for r in rows:
        items = "-" if r.get("items") is None else f"{r['items']:,}"
        secs = "-" if r.get("seconds") is None else f"{r['seconds']:,.1f} s"
        say(args, f"{r['table']:40} {items:>12} {mb(r.get('bytes')):>12} {secs:>9}  {r.get('error') or 'ok'}")


def progress(args: argparse.Namespace, label: str) -> Progress:
    """A progress display for ``label`` on stderr: off under --quiet or --json, and when stderr is no terminal."""
    return Progress(label, enabled=False if (args.quiet or args.json) else None)


# ------------------------------------------------------------------ arguments
def table_name(text: str) -> str:
    """An argparse type: a DynamoDB table name, or a usage error that states the rule."""
    from ddb_backup.names import check_table_name

    try:
        return check_table_name(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a DynamoDB table name: {TABLE_NAME_RULE}") from None


def table_names(text: str) -> str:
    """An argparse type: comma separated DynamoDB table names, each checked as :func:`table_name`."""
    for name in text.split(","):
        if name:
            table_name(name)
    return text


TABLE_NAME_RULE = "3 to 255 characters, only letters, digits, '_', '-' and '.'"


def tables_arg(args: argparse.Namespace) -> tuple[list[str] | None, str | None]:
    """The tables named by --table/--tables, or the --prefix: exactly one of the two."""
    names = [t for t in (args.tables or "").split(",") if t] + ([args.table] if args.table else [])
    if bool(names) == bool(args.prefix):
        raise UsageError("give --table/--tables or --prefix (one of them)")
    return (names or None), args.prefix


def one_target(args: argparse.Namespace) -> None:
    """Exactly one of --table and --map, with a message for each way to get it wrong."""
    if args.table and args.map:
        raise UsageError("give --table NAME (one table) or --map OLD=NEW (a set), not both")
    if not args.table and not args.map:
        raise UsageError("say where to restore: --table NAME (one table) or --map OLD=NEW (a set, renamed by prefix)")


def mapping(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The --map OLD=NEW prefix pairs."""
    pairs = []
    for spec in args.map or []:
        old, sep, new = spec.partition("=")
        if not sep or not old:
            raise UsageError(f"--map {spec!r}: expected OLD_PREFIX=NEW_PREFIX, e.g. prod-=restore-")
        pairs.append((old, new))
    return pairs


# The CLI's environment is read and set here only (the layer's, by ddb_backup.config).


def stack_name_from_env() -> str | None:
    """The stack ``DDB_BACKUP_STACK_NAME`` names, if set."""
    return os.environ.get("DDB_BACKUP_STACK_NAME") or None


def quiet_core_logs(args: argparse.Namespace) -> None:
    """The core's Powertools logs at WARNING unless asked otherwise (they would interleave with the progress)."""
    if not args.json and not args.quiet:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def apply_connection(args: argparse.Namespace) -> None:
    """Put --region, --profile and --endpoint-url into the environment the AWS clients read.

    The region is --region, else ``AWS_REGION`` (what the README and Lambda say), else ``AWS_DEFAULT_REGION``:
    botocore reads only the last, so ``AWS_REGION`` alone left the CLI with no region (issue 24 point 10).
    """
    region = args.region or os.environ.get("AWS_REGION")
    if region:
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"] = region
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = args.endpoint_url
    client.cache_clear()


# ------------------------------------------------------------------ parser
class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that takes no abbreviation of a long option, and the same for its subparsers.

    With abbreviations ``restore ... --key pk=a00005`` was read as ``--keys pk=a00005`` and restored the
    whole table (issue 28). ``add_subparsers`` makes its parsers of this class, so every command inherits it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """argparse's usage error; a mistyped command gets the closest commands ("did you mean restore?")."""
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            close = difflib.get_close_matches(found[1], re.findall(r"'([^']*)'", found[2]), n=3)
            message += f" (did you mean {' or '.join(close)}?)" if close else ""
        super().error(message)


def common_options(*, top: bool, endpoint_timeout: bool = True) -> argparse.ArgumentParser:
    """Connection and output options, accepted before or after the command.

    On subcommands the defaults are suppressed, so ``ddb-backup --json list``
    and ``ddb-backup list --json`` mean the same. ``endpoint_timeout=False`` leaves
    ``--timeout`` to commands that give it another meaning (pitr, snapshots).
    """
    common = Parser(add_help=False)
    g = common
    kw: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    g.add_argument("--region", help="AWS region (default: AWS_REGION / profile)", **kw)
    g.add_argument("--profile", help="AWS named profile", **kw)
    g.add_argument("--endpoint-url", help="endpoint for every service (default: AWS_ENDPOINT_URL)", **kw)
    g.add_argument("--json", action="store_true", help="print machine-readable JSON", **kw)
    g.add_argument("--quiet", "-q", action="store_true", help="no progress, no chatter", **kw)
    g.add_argument("--verbose", "-v", action="store_true", help="log each table, segment and part step on stderr", **kw)
    g.add_argument("--debug", action="store_true", help="botocore's wire log (requests, responses) on stderr", **kw)
    if endpoint_timeout:
        g.add_argument(
            "--timeout",
            dest="endpoint_timeout",
            type=float,
            metavar="SECONDS",
            help="give up on an endpoint that does not answer a request within this (default 60)",
            **({"default": 60.0} if top else kw),
        )
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
    p.add_argument("--table", type=table_name, help="one table")
    p.add_argument("--tables", type=table_names, help="several tables, comma separated")
    p.add_argument("--prefix", help="every table whose name starts with this (e.g. mystack-)")
    p.add_argument("--segments", type=int, help="parallel scan segments per table (default: from table size)")
