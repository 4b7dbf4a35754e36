"""Record-level restore (issue 28): ``--key``, ``--key-prefix`` and ``--keys-file`` choose the items a restore
writes.

Selectors are given as text and read against the table's key schema (its names and S/N/B types) once the
source is open: ``pk=VALUE[,sk=VALUE]`` (a key, or with the partition key alone every item of that
partition), ``pk=PREFIX[,sk=PREFIX]`` (string keys), a file of keys as JSON lines, typed
(``{"pk": {"S": "a"}}``) or plain (``{"pk": "a"}``). A comma belongs to a value unless what follows it holds an
``=`` (a value holding both: use --keys-file).

The source is read whole (every check a restore makes: checksums, counts) and the matching items written to a
local file that stands in for the source's parts; a selector that matched nothing fails the run before any
table is created or written. Changes (an exact backup's own, a restore to a time's) are kept for the selected
keys only (:meth:`Selection.keeps`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddb_backup.changes.replay import fold
from ddb_backup.errors import BadInput
from ddb_backup.format.ddbjson import Item, item_from_wire, item_to_wire, line_from_client_item
from ddb_backup.format.keys import key_value
from ddb_backup.format.lines import PartRef
from ddb_backup.restore import fastwrite
from ddb_backup_cli.common import UsageError

if TYPE_CHECKING:
    from ddb_backup.format.sources import Source

#: The forms a selector is given in, as the options name them.
KEY, PREFIX, FILE = "--key", "--key-prefix", "--keys-file"


class NothingSelected(BadInput):
    """A selector matched no item of the source: nothing was created or written (exit 1)."""


def pairs(option: str, text: str) -> list[tuple[str, str]]:
    """``name=value[,name=value]`` as pairs; a comma not followed by ``name=`` stays in the value."""
    out: list[tuple[str, str]] = []
    for token in text.split(","):
        if "=" in token:
            name, _, value = token.partition("=")
            out.append((name.strip(), value))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + "," + token)
        else:
            raise UsageError(f"{option} {text!r}: expected NAME=VALUE (the key attribute's name, '=', its value)")
    return out


@dataclass
class Selector:
    """One selector, bound to a key schema: ``label`` names it as given; ``values``: name -> key_value pair
    (a prefix: name -> text); ``matched``: the items (and changes) it matched."""

    label: str
    values: dict[str, Any]
    prefix: bool = False
    matched: int = 0

    def matches(self, key: dict[str, Any]) -> bool:
        if self.prefix:
            return all(
                key.get(n, ("", None))[0] == "S" and str(key[n][1]).startswith(v) for n, v in self.values.items()
            )
        return all(key.get(n) == v for n, v in self.values.items())


@dataclass
class Selection:
    """The selectors of one restore (``given``: option and text, in order); ``preview``: show the selected items
    and write nothing. ``also``: changes that may bring selected keys too (a restore to a time's), counted as
    matches."""

    given: list[tuple[str, str]]
    preview: bool = False
    also: list[dict[str, Any]] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    key_names: list[str] = field(default_factory=list)

    def check(self) -> None:
        """The syntax of every --key and --key-prefix (before anything is opened): a usage error naming one."""
        for option, text in self.given:
            if option != FILE:
                pairs(option, text)

    def bind(self, key_schema: list[dict[str, str]], table: str) -> None:
        """Read the selectors against ``key_schema`` (with AttributeType); a usage error names a wrong one."""
        self.key_names = [k["AttributeName"] for k in key_schema]
        types = {k["AttributeName"]: k.get("AttributeType", "S") for k in key_schema}
        self.selectors = []
        for option, text in self.given:
            if option == FILE:
                self.selectors += _file_selectors(text, types, table)
                continue
            label = f"{option} {text!r}"
            named = _names_checked(label, dict(pairs(option, text)), types, table)
            if option == PREFIX:
                wrong = [n for n in named if types[n] != "S"]
                if wrong:
                    raise UsageError(f"{label}: {wrong[0]} is of type {types[wrong[0]]}; a prefix is for string keys")
                self.selectors.append(Selector(label, named, prefix=True))
            else:
                self.selectors.append(Selector(label, {n: _typed(label, n, types[n], v) for n, v in named.items()}))

    def match(self, item: Any, *, count: bool = True) -> bool:
        """Whether ``item`` (client form, or a RawItem) is selected; each selector it meets counts it."""
        key = {n: key_value(item[n]) for n in self.key_names if n in item}
        hits = [s for s in self.selectors if s.matches(key)]
        if count:
            for s in hits:
                s.matched += 1
        return bool(hits)

    def keeps(self, change: dict[str, Any]) -> bool:
        """A change (its ``Keys`` in DynamoDB JSON) of a selected key."""
        return self.match(item_from_wire(change["Keys"]), count=False)

    def narrow(self, src: Source, directory: Path, name: str) -> Source:
        """``src`` with only the selected items: read whole (its checks made), the matches written to a local
        file in ``directory``; ``NothingSelected`` names every selector that matched nothing."""
        path = directory / f"{name}.selected.json"
        count = 0
        with path.open("wb") as out:
            for item in fastwrite.source_items(src):
                if self.match(item):
                    out.write(item.line + b"\n" if isinstance(item, fastwrite.RawItem) else line_from_client_item(item))
                    count += 1
        for change in self.also:
            self.match(item_from_wire(change["Keys"]))
        unmatched = [s.label for s in self.selectors if not s.matched]
        if unmatched:
            raise NothingSelected(
                f"{', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''}: matched no item of "
                f"{src.location} ({count:,} other items matched); nothing was created or written: "
                "check the value and its type (--preview shows what a selection matches)"
            )
        part = PartRef(id=path.name, url=str(path), dialect="item", items=count, bytes=path.stat().st_size)
        return replace(src, parts=[part])


def _names_checked(label: str, named: dict[str, str], types: dict[str, str], table: str) -> dict[str, str]:
    """``named`` if every name is a key attribute and the partition key is among them; else a usage error."""
    keys = list(types)
    for name in named:
        if name not in types:
            raise UsageError(f"{label}: {name!r} is not a key attribute of {table} (its keys: {', '.join(keys)})")
    if keys[0] not in named:
        raise UsageError(f"{label}: give the partition key {keys[0]} (its keys: {', '.join(keys)})")
    return named


def _typed(label: str, name: str, kind: str, value: Any) -> Any:
    """A value given as text (or plain JSON) as the key_value of its key type: N a number, B base64."""
    if kind == "N":
        try:
            Decimal(str(value))
        except InvalidOperation:
            raise UsageError(f"{label}: {name} is a number key; {value!r} is not a number") from None
        return key_value({"N": str(value)})
    if kind == "B":
        try:
            return key_value({"B": base64.b64decode(str(value), validate=True)})
        except (binascii.Error, ValueError):
            raise UsageError(f"{label}: {name} is a binary key; give its value in base64, not {value!r}") from None
    if not isinstance(value, str):
        raise UsageError(f"{label}: {name} is a string key; {value!r} is not a string")
    return key_value({"S": value})


def _file_selectors(path: str, types: dict[str, str], table: str) -> list[Selector]:
    """One selector a line of the keys file, typed (``{"pk": {"S": "a"}}``) or plain (``{"pk": "a"}``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{FILE} {path}: cannot be read ({exc}); give a file of JSON lines, one key each") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label = f"{FILE} {path} line {number}"
        try:
            doc = json.loads(line, parse_float=Decimal)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not doc:
            raise UsageError(f'{label}: not a JSON object of key attributes ({{"pk": "a"}} or {{"pk": {{"S": "a"}}}})')
        named = _names_checked(label, doc, types, table)
        out.append(Selector(label, {n: _file_value(label, n, types[n], v) for n, v in named.items()}))
    if not out:
        raise UsageError(f"{FILE} {path}: holds no keys (one JSON object a line)")
    return out


def _file_value(label: str, name: str, kind: str, value: Any) -> Any:
    """A keys file's value: typed (``{"S": "a"}``, checked against the key's type) or plain."""
    if isinstance(value, dict):
        if set(value) != {kind}:
            raise UsageError(f"{label}: {name} is of type {kind}; got {json.dumps(value, default=str)}")
        try:
            return key_value(item_from_wire({name: value}, label)[name])
        except BadInput as exc:
            raise UsageError(str(exc)) from None
    if isinstance(value, bool) or value is None:
        raise UsageError(f"{label}: {name}: {value!r} is not a key value")
    return _typed(label, name, kind, value)


def overlay(items: list[Item], changes: Iterable[dict[str, Any]], until: Any, key_names: list[str]) -> list[Item]:
    """``items`` as the ``changes`` up to ``until`` leave them (the last change of each key: put or removed)."""
    by_key = {_key_text(item_to_wire({n: i[n] for n in key_names})): i for i in items}
    for change in fold(changes, until).values():
        key = _key_text(change["Keys"])
        if change["event"] == "REMOVE":
            by_key.pop(key, None)
        else:
            by_key[key] = item_from_wire(change["NewImage"])
    return list(by_key.values())


def _key_text(wire_key: dict[str, Any]) -> str:
    """A key in DynamoDB JSON as comparable text (a number normalised)."""
    return json.dumps({n: key_value(v) for n, v in wire_key.items()}, sort_keys=True, default=str)


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
