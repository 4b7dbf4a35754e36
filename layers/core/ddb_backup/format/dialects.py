"""The line dialects a backup file may hold, parsed into client-form items, item sizes checked.

``item``: ``{"Item": <typed>}`` lines (this tool's parts, a native export's data
files, dead letters); ``local``: the same between a local file's header and
end lines; ``typed``: a bare typed item per line (old ``cumulus-api``);
``plain``: plain JSON per line (newer ``cumulus-api``), converted with boto3's
``TypeSerializer``, numbers as ``Decimal`` so no digit is lost.
"""

from __future__ import annotations

import json
from decimal import Decimal, DecimalException
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from ddb_backup.errors import BadInput, UnknownFormat
from ddb_backup.format.ddbjson import TYPES, Item, item_from_wire

#: Largest item DynamoDB stores.
MAX_ITEM_BYTES = 400 * 1024

PLAIN_JSON_WARNING = (
    "{where}: cumulus-api plain JSON cannot tell sets from lists or binary from strings: "
    "sets are restored as lists (L) and binary values as strings (S); numbers keep every digit"
)


# ------------------------------------------------------------------ item sizes
def _av_size(av: Any) -> int:
    ((kind, value),) = av.items()
    if kind == "S":
        return len(value.encode("utf-8"))
    if kind == "N":
        return len(value.lstrip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in value)
    if kind == "NS":
        return sum(len(v) // 2 + 2 for v in value)
    if kind == "BS":
        return sum(len(v) for v in value)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + _av_size(v) for k, v in value.items())
    return 3 + sum(1 + _av_size(v) for v in value)  # L


def item_size(item: Item) -> int:
    """DynamoDB's size of an item in client form (names + values), close to its own accounting."""
    return sum(len(name.encode("utf-8")) + _av_size(av) for name, av in item.items())


def _check_size(item: Item, line: bytes, where: str) -> Item:
    """``item`` when DynamoDB can store it: not empty (an item holds at least its key), not over 400 KB."""
    if not item:
        raise BadInput(f"{where}: an item with no attributes (a DynamoDB item holds at least its key)")
    # An item's DynamoDB size never exceeds its JSON line, so only long lines need measuring.
    if len(line) > MAX_ITEM_BYTES and item_size(item) > MAX_ITEM_BYTES:
        raise BadInput(f"{where}: item of {item_size(item)} bytes is larger than DynamoDB's 400 KB limit")
    return item


# ------------------------------------------------------------------ dialects
def json_line(line: bytes, where: str, **kwargs: Any) -> Any:
    """One JSON line, parsed; ``BadInput`` naming ``where`` when it is not JSON."""
    try:
        return json.loads(line, **kwargs)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where}: not a JSON line ({exc})") from None


def looks_typed(doc: Any) -> bool:
    """True when every attribute of ``doc`` is a typed DynamoDB value (``{"S": ...}``).

    A plain-JSON item can never look typed: its key attributes are plain strings
    or numbers, never objects.
    """
    return (
        isinstance(doc, dict)
        and bool(doc)
        and all(isinstance(v, dict) and len(v) == 1 and next(iter(v)) in TYPES for v in doc.values())
    )


_SERIALIZER = TypeSerializer()


def plain_to_item(doc: Any, where: str) -> Item:
    """A plain JSON object (numbers already ``Decimal``) as a client-form item, via boto3's TypeSerializer."""
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: an item must be a JSON object, got {type(doc).__name__}")
    try:
        return {name: _SERIALIZER.serialize(value) for name, value in doc.items()}
    except (TypeError, ValueError, DecimalException) as exc:
        raise BadInput(f"{where}: cannot be stored in DynamoDB: {type(exc).__name__} {exc}") from None


def _parse(dialect: str, line: bytes, where: str) -> Item | None:
    """One line in ``dialect`` as a client-form item, or None for a local file's header/end line."""
    if dialect in ("item", "local"):
        doc = json_line(line, where)
        if isinstance(doc, dict) and len(doc) == 1 and "Item" in doc:
            return _check_size(item_from_wire(doc["Item"], where), line, where)
        if dialect == "local" and isinstance(doc, dict) and ("ddbBackupEnd" in doc or "ddbBackupFile" in doc):
            return None
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise BadInput(f'{where}: expected {{"Item": {{...}}}}, got {keys}')
    if dialect == "typed":
        return _check_size(item_from_wire(json_line(line, where), where), line, where)
    if dialect == "plain":
        doc = json_line(line, where, parse_float=Decimal, parse_int=Decimal)
        # {"Item": <typed>} is a backup line: a local file or export whose first line was damaged, not plain JSON
        if looks_typed(doc) or (isinstance(doc, dict) and len(doc) == 1 and looks_typed(doc.get("Item"))):
            raise BadInput(f"{where}: typed DynamoDB JSON in a file whose first line is plain JSON")
        return _check_size(plain_to_item(doc, where), line, where)
    raise UnknownFormat(f"{where}: unknown line dialect {dialect!r}")


def parse_item(dialect: str, line: bytes, where: str) -> Item:
    """One data line in ``dialect`` as a client-form item; a header or end line here is ``BadInput``."""
    item = _parse(dialect, line, where)
    if item is None:
        raise BadInput(f"{where}: header or end line out of place")
    return item


def is_item_line(line: bytes) -> bool:
    """True when ``line`` starts as an ``{"Item": ...}`` line (not a local file's header or end line)."""
    return line.lstrip()[:8] == b'{"Item":'
