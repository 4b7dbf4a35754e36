"""``restore --preview``: the items a selection matches, shown and not written (issue 28).

A table on a terminal, plain lines otherwise, JSON lines under ``--json``, CSV under ``--csv``: the key
attributes first, then the others by name; values plain (a number as written, binary in base64, sets and
lists as JSON arrays). How many items, and the moment they are from, go with them (on stderr for JSON and
CSV, so the data stays data).
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ddb_backup.selection.cost import describe

if TYPE_CHECKING:
    from ddb_backup.format.ddbjson import Item


def plain(av: Any) -> Any:
    """One attribute value (client form) as plain JSON: numbers as text keep every digit."""
    ((kind, value),) = av.items()
    if kind in ("S", "N", "BOOL"):
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return base64.b64encode(bytes(value)).decode()
    if kind == "BS":
        return sorted(base64.b64encode(bytes(v)).decode() for v in value)
    if kind in ("SS", "NS"):
        return sorted(value)
    if kind == "L":
        return [plain(v) for v in value]
    return {k: plain(v) for k, v in value.items()}


def columns(items: list[Item], key_names: list[str]) -> list[str]:
    """The key attributes first, then every other attribute name of ``items``, sorted."""
    others = sorted({name for item in items for name in item} - set(key_names))
    return [*key_names, *others]


def cell(av: Any) -> str:
    """A value as one cell of text: a scalar as it is, anything else as compact JSON; empty when absent."""
    if av is None:
        return ""
    value = plain(av)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def summary(row: dict[str, Any]) -> str:
    """How many items are shown, from where and which moment; that nothing was written."""
    n = len(row["items"])
    moment = row.get("moment") or "an unrecorded time (the source carries none)"
    said = (
        f"{n:,} item{'s' if n != 1 else ''} of {row['source']} selected for {row['table']}, as of {moment}; "
        "preview: nothing created or written"
    )
    return said + (f"\n{describe(row['cost'])} (to restore them)" if row.get("cost") else "")


def show(row: dict[str, Any], form: str, out: TextIO, err: TextIO) -> None:
    """Print one preview ``row`` (``items``, ``keyNames``, ``source``, ``table``, ``moment``) in ``form``:
    ``json``, ``csv``, ``table`` (rich; for a terminal) or ``lines``."""
    items: list[Item] = row["items"]
    names = columns(items, row["keyNames"])
    if form == "json":
        for item in items:
            out.write(json.dumps({n: plain(item[n]) for n in names if n in item}, ensure_ascii=False) + "\n")
        err.write(summary(row) + "\n")
    elif form == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([cell(item.get(n)) for n in names] for item in items)
        err.write(summary(row) + "\n")
    elif form == "table":
        table = Table(*names, title=Text(summary(row)), title_justify="left")  # Text: values are not markup
        for item in items:
            table.add_row(*(Text(cell(item.get(n))) for n in names))
        Console(file=out).print(table)
    else:
        out.write(summary(row) + "\n")
        for item in items:
            out.write("  " + "  ".join(f"{n}={cell(item[n])}" for n in names if n in item) + "\n")


def show_rows(args: argparse.Namespace, rows: list[dict[str, Any]]) -> int:
    """``restore --preview``: each row shown in the form its options ask (nothing was written); exit code 0."""
    form = "csv" if args.csv else "json" if args.json else "table" if sys.stdout.isatty() else "lines"
    for row in rows:
        show(row, form, sys.stdout, sys.stderr)
    return 0
