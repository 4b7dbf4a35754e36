"""Selectors: ``--key``, ``--key-prefix`` and ``--keys-file`` (the restore machine's ``select``), read against a
table's key schema, and the test of whether an item or a change is selected.

Selectors are given as text and read against the table's key schema (its names and S/N/B types) once the
source is open: ``pk=VALUE[,sk=VALUE]`` (a key, or with the partition key alone every item of that
partition), ``pk=PREFIX[,sk=PREFIX]`` (string keys), a file of keys as JSON lines, typed
(``{"pk": {"S": "a"}}``) or plain (``{"pk": "a"}``), on this machine or in S3. A comma belongs to a value
unless what follows it holds an ``=`` (a value holding both: use a keys file).

The CLI and the restore machine share this one reading; they differ only in how a selector is named in a
message (``--key 'pk=a'`` or ``select.keys 'pk=a'``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ddb_backup.errors import BadInput
from ddb_backup.format.ddbjson import item_from_wire
from ddb_backup.format.keys import key_value
from ddb_backup.names import split_s3_url

if TYPE_CHECKING:
    from collections.abc import Callable

#: The kinds of selector, as the CLI's options name them.
KEY, PREFIX, FILE = "--key", "--key-prefix", "--keys-file"
#: How the restore machine's request names them (``select``: ``keys``, ``keyPrefixes``, ``keysFile``).
MACHINE_NAMES = {KEY: "select.keys", PREFIX: "select.keyPrefixes", FILE: "select.keysFile"}


class SelectorError(BadInput):
    """A selector is malformed or does not fit the table's keys (the CLI shows it as a usage error)."""


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
            raise SelectorError(f"{option} {text!r}: expected NAME=VALUE (the key attribute's name, '=', its value)")
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

    @property
    def whole_partitions(self) -> bool:
        """An exact selector naming one attribute (the partition key, :func:`names_checked` ensures): a partition."""
        return not self.prefix and len(self.values) == 1


@dataclass
class Selection:
    """The selectors of one restore (``given``: kind and text, in order); ``preview``: show the selected items
    and write nothing. ``also``: changes that may bring selected keys too (a restore to a time's), counted as
    matches. ``names``: how a message names each kind (the CLI's options by default). ``s3``: the client a
    keys file in S3 is read with."""

    given: list[tuple[str, str]]
    preview: bool = False
    also: list[dict[str, Any]] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    key_names: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    file_text: str | None = None
    sizes: list[int] = field(default_factory=list)  # the DynamoDB size of each item selected (for its cost)
    cost: dict[str, Any] = field(default_factory=dict)  # what finding and writing them costs (selection.cost)
    names: dict[str, str] = field(default_factory=lambda: {KEY: KEY, PREFIX: PREFIX, FILE: FILE})
    s3: Any = None

    def check(self) -> None:
        """The syntax of every key and key prefix (before anything is opened): a ``SelectorError`` naming one."""
        for kind, text in self.given:
            if kind != FILE:
                pairs(self.names[kind], text)

    def bind(self, key_schema: list[dict[str, str]], table: str) -> None:
        """Read the selectors against ``key_schema`` (with AttributeType); a ``SelectorError`` names a wrong one."""
        self.key_names = [k["AttributeName"] for k in key_schema]
        types = {k["AttributeName"]: k.get("AttributeType", "S") for k in key_schema}
        self.types, self.selectors = types, []
        for kind, text in self.given:
            option = self.names[kind]
            if kind == FILE:
                self.file_text = read_keys_file(option, text, self.s3)
                self.selectors += file_selectors(option, text, self.file_text, types, table)
                continue
            label = f"{option} {text!r}"
            named = names_checked(label, dict(pairs(option, text)), types, table)
            if kind == PREFIX:
                wrong = [n for n in named if types[n] != "S"]
                if wrong:
                    raise SelectorError(
                        f"{label}: {wrong[0]} is of type {types[wrong[0]]}; a prefix is for string keys"
                    )
                self.selectors.append(Selector(label, named, prefix=True))
            else:
                self.selectors.append(Selector(label, {n: typed(label, n, types[n], v) for n, v in named.items()}))

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

    def unmatched(self) -> list[str]:
        """The labels of the selectors that matched nothing."""
        return [s.label for s in self.selectors if not s.matched]

    def partitions(self) -> list[dict[str, Any]] | None:
        """When every selector names whole partitions (the partition key alone, no prefix): their key values in
        client form (``{"S": "a"}``), to Query by; else None."""
        if not self.selectors or not all(s.whole_partitions for s in self.selectors):
            return None
        return [dict([next(iter(s.values.values()))]) for s in self.selectors]

    def request(self) -> dict[str, Any]:
        """The restore machine's ``select`` for these selectors (``keys``, ``keyPrefixes``, ``keysFile``)."""
        doc: dict[str, Any] = {}
        for kind, text in self.given:
            if kind == FILE:
                doc["keysFile"] = text
            else:
                doc.setdefault("keys" if kind == KEY else "keyPrefixes", []).append(text)
        return doc


def from_request(select: dict[str, Any] | None, s3: Any = None) -> Selection | None:
    """The Selection of a restore request's ``select`` (None when it has none), named as the machine names it."""
    if not select:
        return None
    given = [(KEY, t) for t in select.get("keys") or []] + [(PREFIX, t) for t in select.get("keyPrefixes") or []]
    given += [(FILE, select["keysFile"])] if select.get("keysFile") else []
    chosen = Selection(given, names=dict(MACHINE_NAMES), s3=s3)
    chosen.check()
    return chosen


def names_checked(label: str, named: dict[str, Any], types: dict[str, str], table: str) -> dict[str, Any]:
    """``named`` if every name is a key attribute and the partition key is among them; else a ``SelectorError``."""
    keys = list(types)
    for name in named:
        if name not in types:
            raise SelectorError(f"{label}: {name!r} is not a key attribute of {table} (its keys: {', '.join(keys)})")
    if keys[0] not in named:
        raise SelectorError(f"{label}: give the partition key {keys[0]} (its keys: {', '.join(keys)})")
    return named


def typed(label: str, name: str, kind: str, value: Any) -> Any:
    """A value given as text (or plain JSON) as the key_value of its key type: N a number, B base64."""
    if kind == "N":
        try:
            Decimal(str(value))
        except InvalidOperation:
            raise SelectorError(f"{label}: {name} is a number key; {value!r} is not a number") from None
        return key_value({"N": str(value)})
    if kind == "B":
        try:
            return key_value({"B": base64.b64decode(str(value), validate=True)})
        except (binascii.Error, ValueError):
            raise SelectorError(f"{label}: {name} is a binary key; give its value in base64, not {value!r}") from None
    if not isinstance(value, str):
        raise SelectorError(f"{label}: {name} is a string key; {value!r} is not a string")
    return key_value({"S": value})


def read_keys_file(option: str, path: str, s3: Any = None) -> str:
    """A keys file's text, from this machine or (``s3://B/K``, with ``s3``) from S3; a clear error otherwise."""
    try:
        if path.startswith("s3://"):
            if s3 is None:
                raise BadInput(f"{option} {path}: a keys file in S3 needs an S3 client")
            bucket, key = split_s3_url(path)
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body.decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ClientError) as exc:
        raise BadInput(f"{option} {path}: cannot be read ({exc}); give a file of JSON lines, one key each") from None


def file_selectors(option: str, path: str, text: str, types: dict[str, str], table: str) -> list[Selector]:
    """One selector a line of the keys file, typed (``{"pk": {"S": "a"}}``) or plain (``{"pk": "a"}``)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label = f"{option} {path} line {number}"
        try:
            doc = json.loads(line, parse_float=Decimal)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not doc:
            raise SelectorError(
                f'{label}: not a JSON object of key attributes ({{"pk": "a"}} or {{"pk": {{"S": "a"}}}})'
            )
        named = names_checked(label, doc, types, table)
        out.append(Selector(label, {n: file_value(label, n, types[n], v) for n, v in named.items()}))
    if not out:
        raise SelectorError(f"{option} {path}: holds no keys (one JSON object a line)")
    return out


def file_value(label: str, name: str, kind: str, value: Any) -> Any:
    """A keys file's value: typed (``{"S": "a"}``, checked against the key's type) or plain."""
    if isinstance(value, dict):
        if set(value) != {kind}:
            raise SelectorError(f"{label}: {name} is of type {kind}; got {json.dumps(value, default=str)}")
        try:
            return key_value(item_from_wire({name: value}, label)[name])
        except BadInput as exc:
            raise SelectorError(str(exc)) from None
    if isinstance(value, bool) or value is None:
        raise SelectorError(f"{label}: {name}: {value!r} is not a key value")
    return typed(label, name, kind, value)


def plan_note(select: Selection, table: str, keys_copy: str | None = None) -> dict[str, Any]:
    """What a restore plan records of a bound selection, so that a later step can read it again
    (:func:`changes_filter`): the request's ``select`` (its keys file: ``keys_copy``, the copy the plan made),
    and the key schema it was read against."""
    schema = [{"AttributeName": n, "AttributeType": t} for n, t in select.types.items()]
    request = {**select.request(), **({"keysFile": keys_copy} if keys_copy else {})}
    return {"request": request, "keySchema": schema, "table": table}


def changes_filter(note: dict[str, Any] | None, s3: Any = None) -> Callable[[dict[str, Any]], bool] | None:
    """Whether a change is of a selected key, for the selection a plan recorded (:func:`plan_note`); None when
    the plan selected nothing (every change applies)."""
    if not note:
        return None
    chosen = from_request(note["request"], s3)
    assert chosen is not None
    chosen.bind(note["keySchema"], note["table"])
    return chosen.keeps
