"""BatchWriteItem requests built from backup lines as they are, without parsing or re-serializing items.

A backup line is ``{"Item":<wire item>}``, and a BatchWriteItem request is
``{"RequestItems":{"<table>":[{"PutRequest":{"Item":<wire item>}},...]}}``: the
request is the lines, joined. The slow path parsed every line into client
form (decoding every binary from base64), then botocore validated and
serialized it back attribute by attribute (encoding the binary again): most
of a restore's CPU.

:func:`read_part` yields :class:`RawItem` objects for parts whose bytes a
checksum has vouched for (``ddb-backup-v1`` parts, a native export's data
files, a local file whose checksum was verified when it was opened), each
line proved to be one ``{"Item": {...}}`` object and nothing
more (:func:`_one_item`); :func:`restore.write_items` handles them as it
handles any item: it asks for the key attributes (decoded from the values that
proof located), batches them, retries, isolates and dead-letters
them. When a batch of them reaches ``batch_write_item``, a
``before-parameter-build`` handler builds the request body from the lines and
hands botocore a one-item placeholder to validate and serialize; a
``before-call`` handler puts the body in place before the request is signed
and sent. UnprocessedItems come
back parsed by botocore and are resent the ordinary way. Anything that needs
the item itself (a dead letter, an error message) parses the line then, with
the reader's own validation.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from typing import Any

import msgspec

from ddb_backup.format.ddbjson import Item, item_from_wire
from ddb_backup.format.dialects import MAX_ITEM_BYTES, parse_item
from ddb_backup.format.lines import PartRef, part_lines
from ddb_backup.format.sources import Source
from ddb_backup.format.sources import read_part as read_part_slow

_BODY = "ddb_backup.batchBody"
_PLACEHOLDER: dict[str, Any] = {"PutRequest": {"Item": {}}}
_PREFIX = b'{"Item":{"'


class RawItem(Mapping[str, Any]):
    """One item as its backup line (``{"Item":{...}}``, no newline); parsed into client form only on demand.

    ``wire``: the item's attributes as raw JSON values (DynamoDB JSON), when the
    line was proved to be one ``{"Item": {...}}`` object (:func:`_one_item`); a key
    attribute is decoded and converted from its value alone. Without it the line
    is parsed as the reader does.
    """

    __slots__ = ("_item", "line", "where", "wire")

    def __init__(self, line: bytes, where: str, wire: Mapping[str, msgspec.Raw] | None = None) -> None:
        self.line = line
        self.where = where
        self.wire = wire
        self._item: Item | None = None

    def item(self) -> Item:
        """The item in client form, parsed and validated as the reader does (cached)."""
        if self._item is None:
            self._item = parse_item("item", self.line, self.where)
        return self._item

    def __getitem__(self, name: str) -> Any:
        if self._item is None and self.wire is not None and name in self.wire:
            # converted and validated as the reader does this attribute (its error names the line)
            return item_from_wire({name: msgspec.json.decode(self.wire[name])}, self.where)[name]
        return self.item()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.item())

    def __len__(self) -> int:
        return len(self.item())

    def __repr__(self) -> str:
        return f"RawItem({self.line[:80]!r}...)"


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    """A backup line's shape: one key ``Item``, an object; its values are checked as JSON but not decoded."""

    Item: dict[str, msgspec.Raw]


_decode_line = msgspec.json.Decoder(_Line).decode


def _one_item(line: bytes) -> dict[str, msgspec.Raw] | None:
    """The item's attributes (name -> raw JSON value) if ``line`` is one ``{"Item": {...}}`` object and nothing more.

    A checksum says the bytes are the backup's, not that each line is an item:
    joined into a request body, ``{"Item":{...}}}],"Other":[{"PutRequest":...``
    would add requests, even for another table. msgspec's strict decoder
    (RFC 8259) proves the shape and the syntax of every value without building
    them (2.4x faster than orjson, 4x faster than ``json``); it does not check
    UTF-8 inside values it skips, so that is checked here. The values in the
    item are DynamoDB's to check, and it refuses what it cannot store. A line
    refused here is left to the reader's own parser (None).
    """
    if not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        return _decode_line(line).Item
    except msgspec.DecodeError:
        return None


# ------------------------------------------------------------------ botocore hooks
def _build_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """``before-parameter-build.dynamodb.BatchWriteItem``: a request of RawItems becomes a prebuilt body."""
    requests_by_table = params.get("RequestItems")
    if not isinstance(requests_by_table, dict):
        return
    raw = [
        r["PutRequest"]["Item"]
        for requests in requests_by_table.values()
        for r in requests
        if isinstance(r, dict) and isinstance(r.get("PutRequest"), dict)
        if isinstance(r["PutRequest"].get("Item"), RawItem)
    ]
    if not raw:
        return
    total = sum(len(requests) for requests in requests_by_table.values())
    if len(requests_by_table) != 1 or len(raw) != total:
        # Mixed with ordinary requests (not something restore does): let botocore serialize parsed items.
        for requests in requests_by_table.values():
            for r in requests:
                item = r.get("PutRequest", {}).get("Item") if isinstance(r, dict) else None
                if isinstance(item, RawItem):
                    r["PutRequest"] = {**r["PutRequest"], "Item": item.item()}
        return
    ((table, _requests),) = requests_by_table.items()
    # The other members (ReturnConsumedCapacity, ...) are botocore's to serialize in an ordinary request.
    others = b"".join(
        b"," + json.dumps(k).encode() + b":" + json.dumps(v).encode() for k, v in params.items() if k != "RequestItems"
    )
    context[_BODY] = b"".join(
        (
            b'{"RequestItems":{',
            json.dumps(table).encode(),
            b':[{"PutRequest":',
            b'},{"PutRequest":'.join([item.line for item in raw]),
            b"}]}",
            others,
            b"}",
        )
    )
    params["RequestItems"] = {table: [_PLACEHOLDER]}


def _use_body(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """``before-call.dynamodb.BatchWriteItem``: put the prebuilt body in place before signing."""
    body = context.pop(_BODY, None)
    if body is not None:
        params["body"] = body


def install(ddb: Any) -> None:
    """Register the request-building handlers on ``ddb`` (idempotent); they act only on RawItems."""
    events = ddb.meta.events
    events.register(
        "before-parameter-build.dynamodb.BatchWriteItem", _build_body, unique_id="ddb_backup.restore.fastwrite.build"
    )
    events.register("before-call.dynamodb.BatchWriteItem", _use_body, unique_id="ddb_backup.restore.fastwrite.use")


# ------------------------------------------------------------------ reading
def eligible(part: PartRef) -> bool:
    """Parts whose lines go to DynamoDB as they are: ``{"Item": ...}`` lines (backup parts, exports, local files)."""
    return part.dialect in ("item", "local")


def read_part(part: PartRef, s3: Any = None, *, start: int = 0, ddb: Any = None) -> Generator[Any, None, None]:
    """:func:`ddb_backup.format.sources.read_part` with items as :class:`RawItem` where the part is :func:`eligible`.

    Same checks: a checksum before the first item, the item count at the end, a
    local file's header and end lines. Lines a checksum vouches for are proved
    to be one ``{"Item": {...}}`` each and parsed only if something needs the
    item (or they are longer than an item may be); other lines are parsed and
    validated as the reader does (and still sent as they are). A line that does
    not look like a compact ``{"Item":{...}}`` is returned parsed. ``ddb``: the client the
    items will be written with (the handlers are installed on it).
    """
    if not eligible(part):
        yield from read_part_slow(part, s3, start=start)
        return
    if ddb is not None:
        install(ddb)
    verified = bool(part.sha256 or part.md5 or part.lines_sha256)
    with closing(part_lines(part, s3, start=start)) as lines:
        for where, line in lines:
            if line.startswith(_PREFIX) and line.endswith(b"}}"):
                wire = _one_item(line) if verified and len(line) <= MAX_ITEM_BYTES else None
                item = RawItem(line, where, wire)
                if wire is None:
                    item.item()  # validate now, as the reader would (its error names the line)
                yield item
            else:
                yield parse_item(part.dialect, line, where)


def source_items(source: Source, ddb: Any = None) -> Iterator[Any]:
    """:meth:`ddb_backup.format.sources.Source.items` through :func:`read_part`: every item of every part, in order."""
    for part in source.parts:
        yield from read_part(part, source.s3, ddb=ddb)
