"""DynamoDB JSON: the wire form of items, and the backup's line format.

Two shapes of the same item meet here:

* *wire* form, what DynamoDB sends and what its export to S3 writes: binary as
  base64 text (``{"B": "AAEC"}``);
* *client* form, what a boto3 low-level client returns and accepts: binary as
  ``bytes`` (``{"B": b"\\x00\\x01\\x02"}``).

Numbers are strings in both, so all 38 digits survive. A backup line is
``{"Item": <wire item>}`` exactly as DynamoDB's own export writes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from ddb_backup.errors import BadInput

Item = dict[str, Any]

TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"})
_SCALAR_TEXT = frozenset({"S", "N"})


def _av_to_wire(av: Mapping[str, Any]) -> Any:
    if "S" in av or "N" in av or "BOOL" in av or "NULL" in av or "SS" in av or "NS" in av:
        return av
    if "M" in av:
        return {"M": {k: _av_to_wire(v) for k, v in av["M"].items()}}
    if "L" in av:
        return {"L": [_av_to_wire(v) for v in av["L"]]}
    if "B" in av:
        return {"B": base64.b64encode(av["B"]).decode("ascii")}
    if "BS" in av:
        return {"BS": [base64.b64encode(b).decode("ascii") for b in av["BS"]]}
    raise BadInput(f"not a DynamoDB attribute value: {av!r:.200}")


def item_to_wire(item: Mapping[str, Any]) -> Item:
    """Client form to wire form (binary bytes become base64 text)."""
    return {name: _av_to_wire(av) for name, av in item.items()}


def _b64(text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise BadInput(f"{where}: binary value must be base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"{where}: invalid base64: {exc}") from None


def _av_from_wire(av: Any, where: str) -> Any:  # noqa: C901 (one branch per DynamoDB type)
    if not isinstance(av, dict) or len(av) != 1:
        raise BadInput(f"{where}: an attribute value must be an object with one type key, got {av!r:.120}")
    ((kind, value),) = av.items()
    if kind in _SCALAR_TEXT:
        if not isinstance(value, str):
            raise BadInput(f"{where}: {kind} value must be a string, got {type(value).__name__}")
        return av
    if kind == "M":
        if not isinstance(value, dict):
            raise BadInput(f"{where}: M value must be an object")
        return {"M": {k: _av_from_wire(v, f"{where}.{k}") for k, v in value.items()}}
    if kind == "L":
        if not isinstance(value, list):
            raise BadInput(f"{where}: L value must be a list")
        return {"L": [_av_from_wire(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind == "B":
        return {"B": _b64(value, where)}
    if kind in ("SS", "NS"):
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise BadInput(f"{where}: {kind} value must be a non-empty list of strings")
        return av
    if kind == "BS":
        if not isinstance(value, list) or not value:
            raise BadInput(f"{where}: BS value must be a non-empty list of base64 strings")
        return {"BS": [_b64(v, where) for v in value]}
    if kind == "BOOL":
        if not isinstance(value, bool):
            raise BadInput(f"{where}: BOOL value must be true or false")
        return av
    if kind == "NULL":
        if value is not True:
            raise BadInput(f"{where}: NULL value must be true")
        return av
    raise BadInput(f"{where}: unknown DynamoDB type {kind!r}")


def item_from_wire(item: Any, where: str = "item") -> Item:
    """Wire form to client form, validating every attribute value on the way."""
    if not isinstance(item, dict):
        raise BadInput(f"{where}: an item must be a JSON object, got {type(item).__name__}")
    return {name: _av_from_wire(av, f"{where}.{name}") for name, av in item.items()}


#: JSON text as backup lines hold it: compact, non-ASCII kept as it is.
compact_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def line_from_client_item(item: Mapping[str, Any]) -> bytes:
    """One backup line (with its newline) for an item in client form."""
    return (compact_json({"Item": item_to_wire(item)}) + "\n").encode("utf-8")


def line_from_wire_item(item: Mapping[str, Any]) -> bytes:
    """One backup line (with its newline) for an item already in wire form."""
    return (compact_json({"Item": item}) + "\n").encode("utf-8")


def parse_line(line: bytes | str, where: str) -> Item:
    """Parse one backup line into a client-form item; ``where`` names it in errors."""
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where}: not a JSON line ({exc})") from None
    if not isinstance(doc, dict) or set(doc) != {"Item"}:
        raise BadInput(
            f'{where}: expected {{"Item": {{...}}}}, got keys {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}'
        )
    return item_from_wire(doc["Item"], where)


def key_of(item: Mapping[str, Any], key_names: list[str]) -> dict[str, Any]:
    """The primary key attributes of an item."""
    try:
        return {name: item[name] for name in key_names}
    except KeyError as exc:
        raise BadInput(f"item lacks key attribute {exc.args[0]!r}") from None


def _norm(av: Any) -> Any:
    ((kind, value),) = av.items()
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(value)}
    if kind == "M":
        return {"M": {k: _norm(v) for k, v in value.items()}}
    if kind == "L":
        return {"L": [_norm(v) for v in value]}
    return av


def canonical(item: Mapping[str, Any]) -> str:
    """A stable text of an item for comparison: wire form, attribute names and set members sorted.

    DynamoDB does not keep the order of set members, so two equal items may list them differently.
    """
    return json.dumps({k: _norm(v) for k, v in item_to_wire(item).items()}, sort_keys=True, separators=(",", ":"))


#: A set's members in the text of an item (``"SS":["a","b"]``), and one JSON string among them.
_SET = re.compile(rb'("(?:SS|NS|BS)":\[)((?:"(?:[^"\\]|\\.)*",?)*)\]')
_MEMBER = re.compile(rb'"(?:[^"\\]|\\.)*"')
_sorted_json = msgspec.json.Encoder(order="sorted").encode


def _sorted_members(m: re.Match[bytes]) -> bytes:
    return m.group(1) + b",".join(sorted(_MEMBER.findall(m.group(2)))) + b"]"


def canonical_wire(item: Mapping[str, Any]) -> bytes:
    """A stable text (UTF-8) of an item in wire form, for comparison: attribute names and set members sorted.

    Not :func:`canonical`'s text (set members are sorted by their JSON text), but equal for equal items, and
    without a walk of the item in Python: a set's value is the only JSON list after an ``"SS"``, ``"NS"`` or
    ``"BS"`` name (an attribute's value is an object, and inside a string a quote is escaped), so the sets are
    found in the text and their members sorted there.
    """
    text = _sorted_json(item)
    if b'"SS":[' in text or b'"NS":[' in text or b'"BS":[' in text:
        text = _SET.sub(_sorted_members, text)
    return text
