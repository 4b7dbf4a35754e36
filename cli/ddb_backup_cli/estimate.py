"""``ddb-backup estimate``, the rate options (--read-rate/--read-percent, --write-rate/--write-percent), --dry-run.

The estimate is arithmetic on each table's item count and size
(:mod:`ddb_backup.estimate`): DescribeTable's, or a sample's where those may be
stale (:mod:`ddb_backup.backup.sample`); ``--size 1TiB --items N`` estimates a
table that does not exist.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.aws.ratelimit import Limit, table_rate
from ddb_backup.aws.tables import describe_table
from ddb_backup.backup.sample import may_be_stale, sample_size, sampled_note
from ddb_backup.errors import TableNotFound
from ddb_backup.estimate import Plan, capacity_of, describe_estimate, estimate
from ddb_backup_cli.common import UsageError, add_command, add_table_selectors, print_json, tables_arg

_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_UNITS.update({"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4})


def parse_size(text: str) -> int:
    """``1TiB``, ``500GB``, ``1.5 GiB``, ``12345`` -> bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise UsageError(f"--size {text!r}: expected a number and a unit, e.g. 1TiB, 500GB, 2.5GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def add_rate_options(p: argparse.ArgumentParser, direction: str) -> None:
    """--read-rate/--read-percent (or --write-...): the table's capacity this run may use."""
    what = "reads" if direction == "read" else "writes"
    p.add_argument(
        f"--{direction}-rate",
        type=float,
        metavar="UNITS",
        help=f"{direction} units a second for the whole table, shared by all its {what}",
    )
    p.add_argument(
        f"--{direction}-percent",
        type=float,
        metavar="P",
        help=f"percent of the table's provisioned {direction} capacity (on-demand: of its maximum, when set)",
    )


def add_load_options(p: argparse.ArgumentParser) -> None:
    """--write-rate/--write-percent, --load-billing and --within: how a restore's targets take the load."""
    add_rate_options(p, "write")
    p.add_argument(
        "--load-billing",
        choices=["saved", "on-demand"],
        help="on-demand: a provisioned target takes the load on-demand and is switched back to its provisioned "
        "units afterwards (DynamoDB allows 4 switches to on-demand a day); saved (default): as it is",
    )
    p.add_argument(
        "--within",
        metavar="DURATION",
        help="pre-warm an on-demand target the restore creates (WarmThroughput) to load it in e.g. 30m, 2h",
    )


def add_method_option(p: argparse.ArgumentParser) -> None:
    """--method write|import|auto: how a restore loads its targets (BatchWriteItem or ImportTable)."""
    p.add_argument(
        "--method",
        choices=["auto", "import", "write"],
        default="write",
        help="write: BatchWriteItem (default); import: DynamoDB ImportTable into a new table ($0.15/GB, "
        "no write units; refused with the reason where it cannot); auto: import where it can, else write "
        "(each table's choice and why are printed)",
    )


def load_request(args: argparse.Namespace) -> dict[str, Any]:
    """The restore input (``writeRate``, ``writePercent``, ``loadBilling``, ``within``) of --write-*, --load-billing
    and --within, checked."""
    from ddb_backup.errors import BadInput
    from ddb_backup.names import parse_duration

    limit = limit_of(args, "write")
    load = getattr(args, "load_billing", None)
    if limit.percent is not None and load == "on-demand":
        raise UsageError(
            "--write-percent is a share of provisioned capacity, which --load-billing on-demand sets aside: "
            "give --write-rate UNITS instead"
        )
    within = getattr(args, "within", None)
    if within is not None:
        try:
            parse_duration(within)
        except BadInput as exc:
            raise UsageError(f"--within: {exc}") from None
    doc = {"writeRate": limit.rate, "writePercent": limit.percent, "loadBilling": load, "within": within}
    return {k: v for k, v in doc.items() if v is not None}


def limit_of(args: argparse.Namespace, direction: str) -> Limit:
    """The --<direction>-rate / --<direction>-percent of ``args`` (not both)."""
    rate, percent = getattr(args, f"{direction}_rate", None), getattr(args, f"{direction}_percent", None)
    if rate is not None and percent is not None:
        raise UsageError(f"give --{direction}-rate or --{direction}-percent, not both")
    if rate is not None and rate <= 0:
        raise UsageError(f"--{direction}-rate must be a positive number of units a second, got {rate:g}")
    if percent is not None and not 0 < percent <= 100:
        raise UsageError(f"--{direction}-percent must be above 0 and at most 100, got {percent:g}")
    return Limit(rate, percent)


def table_estimates(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One estimate per table of --table/--tables/--prefix (from DescribeTable), or of --size/--items."""
    reads, writes = limit_of(args, "read"), limit_of(args, "write")
    segments, concurrency = getattr(args, "segments", None), getattr(args, "concurrency", 100)
    if getattr(args, "size", None):
        if args.items is None:
            raise UsageError("--size needs --items N (how many items the table holds)")
        if reads.percent is not None or writes.percent is not None:
            raise UsageError("a table given by --size has no capacity to take a percent of: give --read-rate")
        plan = Plan(segments, concurrency, reads.rate, writes.rate, figures="given: --size and --items")
        return [estimate(args.items, parse_size(args.size), plan, table=getattr(args, "table", None))]
    from ddb_backup.backup.plan import resolve_tables

    ddb = client("dynamodb")
    names, prefix = tables_arg(args)
    rows = []
    for name in resolve_tables(ddb, names, prefix):
        table = describe_table(ddb, name)
        if table is None:
            raise TableNotFound(f"table {name!r} does not exist (estimate a table that is not there with --size)")
        rate = table_rate(table, "read", rate=reads.rate, percent=reads.percent)
        write_rate = table_rate(table, "write", rate=writes.rate, percent=writes.percent)
        items, size, figures = table_figures(ddb, table)
        plan = Plan(segments, concurrency, rate, write_rate, capacity=capacity_of(table), figures=figures)
        rows.append(estimate(items, size, plan, table=name))
    return rows


def table_figures(ddb: Any, table: dict[str, Any]) -> tuple[int, int, str]:
    """A table's item count and size, and where they came from: DescribeTable's when they hold, else a sample
    (a few scan segments of many, extrapolated: it reads the table, about 2,000 items' worth)."""
    why = may_be_stale(table)
    if why is None:
        return int(table["ItemCount"]), int(table["TableSizeBytes"]), "DescribeTable, refreshed about every 6 hours"
    sampled = sample_size(ddb, table["TableName"])
    return int(sampled["items"]), int(sampled["bytes"]), sampled_note(sampled, why)


def print_estimates(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """The estimates as JSON under --json, else as lines."""
    if getattr(args, "json", False):
        print_json(rows)
        return
    for row in rows:
        print("\n".join(describe_estimate(row)))


def cmd_estimate(args: argparse.Namespace) -> int:
    if args.size is None and args.items is not None:
        raise UsageError("--items goes with --size (a table that is not there); a real table is described")
    if args.size is not None and (args.tables or args.prefix):
        raise UsageError("--size estimates one table: name it with --table, or leave it out")
    print_estimates(args, table_estimates(args))
    return 0


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``estimate`` to the main parser's subcommands."""
    p = add_command(
        sub,
        parents,
        "estimate",
        "estimate a backup's and a restore's read/write units, time and cost (nothing is written; a table whose "
        "DescribeTable figures may be stale is sampled)",
        cmd_estimate,
        "  ddb-backup estimate --table mystack-GranulesTable --read-percent 50\n"
        "  ddb-backup estimate --prefix mystack- --json\n"
        "  ddb-backup estimate --size 1TiB --items 1000000000 --read-rate 20000",
    )
    add_table_selectors(p)  # with --size, --table only names the table shown
    p.add_argument("--size", help="a table that is not there: its size (e.g. 1TiB, 500GB)")
    p.add_argument("--items", type=int, help="with --size: its item count")
    p.add_argument("--concurrency", type=int, default=100, help="segments/parts at once (the stack's MaxConcurrency)")
    add_rate_options(p, "read")
    add_rate_options(p, "write")
