"""Record-level restore (issue 28): ``--key``, ``--key-prefix`` and ``--keys-file`` choose the items a restore
writes.

The reading of selectors, the narrowing of a source and the overlay of changes are the layer's
(:mod:`ddb_backup.selection`), shared with the restore machine; here a malformed selector becomes a usage error
(exit 2), and the options become a :class:`Selection`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ddb_backup.aws.clients import client
from ddb_backup.format.sources import Source
from ddb_backup.selection import narrow as narrowing
from ddb_backup.selection import selectors as core
from ddb_backup.selection.narrow import overlay
from ddb_backup.selection.selectors import FILE, KEY, PREFIX, NothingSelected
from ddb_backup_cli.common import UsageError

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
    if not given:
        if args.preview or args.csv:
            raise UsageError("--preview shows the items a selection matches: give --key, --key-prefix or --keys-file")
        return None
    if args.csv and not args.preview:
        raise UsageError("--csv is a form of --preview: give --preview --csv")
    chosen = Selection(given, preview=args.preview)
    chosen.check()
    return chosen
