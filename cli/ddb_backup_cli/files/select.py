"""Record-level restore (issue 28): ``--key``, ``--key-prefix`` and ``--keys-file`` choose the items a restore
writes.

The reading of selectors, the narrowing of a source and the overlay of changes are the layer's
(:mod:`ddb_backup.selection`), shared with the restore machine; here a malformed selector becomes a usage error
(exit 2), and the options become a :class:`Selection`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ddb_backup.aws.clients import client
from ddb_backup.selection import narrow as narrowing
from ddb_backup.selection import selectors as core
from ddb_backup.selection.narrow import overlay
from ddb_backup.selection.selectors import FILE, KEY, PREFIX, NothingSelected
from ddb_backup_cli.common import UsageError

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from ddb_backup.format.sources import Source

__all__ = ["FILE", "KEY", "PREFIX", "NothingSelected", "Selection", "overlay", "selection"]


class Selection(core.Selection):
    """:class:`ddb_backup.selection.selectors.Selection` whose malformed selector is a usage error."""

    def check(self) -> None:
        try:
            super().check()
        except core.SelectorError as exc:
            raise UsageError(str(exc)) from None

    def bind(self, key_schema: list[dict[str, str]], table: str) -> None:
        if self.s3 is None and any(kind == FILE and text.startswith("s3://") for kind, text in self.given):
            self.s3 = client("s3")
        try:
            super().bind(key_schema, table)
        except core.SelectorError as exc:
            raise UsageError(str(exc)) from None

    def narrow(self, src: Source, directory: Path, name: str) -> Source:
        """``src`` with only the selected items (:func:`ddb_backup.selection.narrow.narrow`)."""
        return narrowing.narrow(src, self, directory, name)


def selection(args: argparse.Namespace) -> Selection | None:
    """The items --key, --key-prefix and --keys-file select (None: all), checked for syntax."""
    given = [(KEY, text) for text in args.key or []] + [(PREFIX, text) for text in args.key_prefix or []]
    given += [(FILE, args.keys_file)] if args.keys_file else []
    preview, csv = getattr(args, "preview", False), getattr(args, "csv", False)
    if not given:
        if preview or csv:
            raise UsageError("--preview shows the items a selection matches: give --key, --key-prefix or --keys-file")
        return None
    if csv and not preview:
        raise UsageError("--csv is a form of --preview: give --preview --csv")
    chosen = Selection(given, preview=preview)
    chosen.check()
    return chosen


def add_selectors(p: argparse.ArgumentParser, *, preview: bool = True) -> None:
    """--key, --key-prefix, --keys-file (and with ``preview``, --preview and --csv): restore (or show) some items
    only (issue 28)."""
    p.add_argument(
        "--key",
        action="append",
        metavar="PK=V[,SK=V]",
        help="restore only the item with this key, named by the table's key attributes, typed from its schema "
        "(a B key in base64); the partition key alone selects its whole partition (repeatable)",
    )
    p.add_argument(
        "--key-prefix",
        action="append",
        metavar="PK=PREFIX[,SK=PREFIX]",
        help="restore only the items whose string partition key (and sort key, if given) starts so (repeatable)",
    )
    p.add_argument(
        "--keys-file",
        metavar="FILE",
        help='restore only the items keyed as the JSON lines of FILE (local, or s3://), typed {"pk": {"S": "a"}} or plain {"pk": "a"}',
    )
    if not preview:
        return
    p.add_argument(
        "--preview",
        action="store_true",
        help="with a selector: show the matching items, their count and moment, and write nothing "
        "(a table on a terminal, else lines; JSON lines with --json, CSV with --csv)",
    )
    p.add_argument("--csv", action="store_true", help="with --preview: CSV, the key attributes first")
