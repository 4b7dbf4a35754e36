"""Scan pages straight from DynamoDB's response body, without botocore's per-attribute parsing.

A Scan response is already in wire form, which is what a backup line holds.
botocore would walk every attribute value of every item against the service
model and decode every binary value from base64, only for
:func:`ddbjson.line_from_client_item` to walk it again and re-encode the
binary: that was 80 % of a segment's CPU. Here a ``before-parse`` handler
takes the raw body of a successful Scan and hands botocore ``{}`` to parse.
The lines are then cut out of the page's text when it is provably what
``ddbjson.compact_json`` would write (:func:`slice_page`), else the page is read
once with ``json.loads`` and written with that same encoder. Either way the
lines are byte for byte those of the slow path.

What stays with botocore: signing, the connection pool, retries of network
and 5xx errors, the DynamoDB CRC32 check (it reads the raw HTTP response, not
the body we replace), and every error response (a status other than 200 is
left alone, so throttling still raises ``ClientError`` for
:func:`throttle.call_with_backoff`).

Scope: the handler is registered on the client once, but acts only on a
thread that is inside :func:`fetch_page`; other Scan calls on the same client,
in this thread or another, get botocore's usual parsed response.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ddb_backup.aws.ratelimit import consumed_units
from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.format.ddbjson import compact_json, item_from_wire, item_to_wire
from ddb_backup.format.parts import PartBuffer

_RAW = "ddb_backup.rawBody"
_HANDLER_ID = "ddb_backup.backup.fastscan.keep_raw_body"
_EMPTY = b"{}"
_state = threading.local()


def _keep_raw_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """``before-parse.dynamodb.Scan``: on a 200 inside :func:`fetch_page`, keep the body and let botocore parse ``{}``."""
    if not getattr(_state, "active", False) or response_dict.get("status_code") != 200:
        return
    body = response_dict.get("body")
    if isinstance(body, bytes | bytearray):
        customized_response_dict[_RAW] = bytes(body)
        response_dict["body"] = _EMPTY


def install(ddb: Any) -> None:
    """Register the raw-body handler on ``ddb`` (idempotent)."""
    ddb.meta.events.register("before-parse.dynamodb.Scan", _keep_raw_body, unique_id=_HANDLER_ID)


def _scan(ddb: Any, request: Mapping[str, Any], on_throttle: Callable[[], None] | None) -> dict[str, Any]:
    """One Scan call; the raw body, if kept, is under ``_RAW``. botocore's own retries are told to ``on_throttle``."""
    install(ddb)
    _state.active = True
    try:
        page: dict[str, Any] = call_with_backoff(ddb.scan, on_throttle=on_throttle, **request)
    finally:
        _state.active = False
    if on_throttle is not None and retried(page):
        on_throttle()
    return page


def retried(response: Mapping[str, Any]) -> bool:
    """True if botocore had to retry the call (throttling or a server error) before it succeeded."""
    return bool((response.get("ResponseMetadata") or {}).get("RetryAttempts"))


def _from_parsed(page: Mapping[str, Any]) -> dict[str, Any]:
    """Wire form of a page botocore parsed (a botocore Stubber answers before any body exists)."""
    doc: dict[str, Any] = {"Items": [item_to_wire(item) for item in page.get("Items", ())]}
    if page.get("LastEvaluatedKey"):
        doc["LastEvaluatedKey"] = item_to_wire(page["LastEvaluatedKey"])
    return doc


def lines_from_doc(doc: Mapping[str, Any]) -> tuple[bytes, int]:
    """Backup lines for a parsed wire-form page, joined, and how many."""
    items = doc.get("Items") or []
    return "".join(compact_json({"Item": item}) + "\n" for item in items).encode("utf-8"), len(items)


# ------------------------------------------------------------------ slicing the raw page
#
# DynamoDB sends compact JSON: {"Items":[ITEM,ITEM,...],"Count":n,...}. When the
# Items array's text is exactly what compact_json writes for the same items, the lines
# are cut from it without parsing. slice_page proves that first, else returns None
# and the caller parses. The proof, for the array's text:
#   * valid UTF-8 and no raw control character (the encoder escapes them all);
#   * with the escapes \\ and \" blanked (same length), no \u and no \/ remains,
#     so every escape is one of \" \\ \b \f \n \r \t, written as the encoder writes
#     them; and every remaining quote opens or closes a string, so a position is
#     outside strings iff an even number of quotes precede it;
#   * no space outside strings (such a space touches one of {[:,}]) and no number
#     outside strings (one follows : , or [): checked with _SUSPECT;
#   * an item boundary is }},{"<name>":{ outside strings (an attribute's value is
#     always an object); between two elements of a list ({"<type>":...) only a type
#     M is followed by an object, so a name M is taken for a list element: a
#     boundary may be missed, never invented, and the item count must equal the
#     page's Count;
#   * the last item is parsed (that finds the array's end) and must re-encode to
#     its own text.
# Binary values pass through as sent: byte-identical to the slow path for the
# canonical base64 DynamoDB writes (the slow path decodes and re-encodes it).
# Duplicate names in one object (which DynamoDB never sends) are not detected.

_CLASSES = bytes.maketrans(bytes(range(32)) + b"{[:,}] -0123456789", bytes(32) + b"((((((000000000000")
_BOUNDARY = re.compile(rb'\}\},\{"(?!M")[^"]*":\{')
_ITEMS = b'"Items":['
_decoder = json.JSONDecoder()


def slice_page(body: bytes) -> tuple[bytes, int, dict[str, Any] | None] | None:
    """(lines, count, LastEvaluatedKey) cut from the raw page, or None if its text is not canonical."""
    sliced = _slice(body)
    return None if sliced is None else (sliced[0], sliced[1], sliced[2].get("LastEvaluatedKey"))


def _slice(body: bytes) -> tuple[bytes, int, dict[str, Any]] | None:  # noqa: C901
    """(lines, count, the page without its items) cut from the raw page, or None if its text is not canonical."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    neut = body
    if b"\\" in body:
        neut = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")
        if b"\\u" in neut or b"\\/" in neut:
            return None
    start = neut.find(_ITEMS)
    if start < 0:
        return None
    start += len(_ITEMS)
    starts: list[int] = []  # where each item begins
    end = start
    if neut[start : start + 1] != b"]":
        found = [m.start() for m in _BOUNDARY.finditer(neut, start)]
        # A candidate is outside strings iff an even number of quotes precede it.
        quotes = itertools.accumulate(map(neut.count, itertools.repeat(b'"'), [start, *found], found))
        starts = [start, *(pos + 3 for pos, q in zip(found, quotes, strict=True) if not q & 1)]
        last = starts[-1]
        text = body[last:].decode("utf-8")
        try:
            item, stop = _decoder.raw_decode(text)
        except ValueError:
            return None
        raw_last = text[:stop]
        if compact_json(item) != raw_last:
            return None
        end = last + len(raw_last.encode("utf-8"))
    if neut[end : end + 1] != b"]" or not _outside_clean(neut, start, end):
        return None
    try:
        rest = json.loads(body[:start] + body[end:])
    except ValueError:
        return None
    if not isinstance(rest, dict) or rest.get("Items") != [] or rest.get("Count") != len(starts):
        return None
    if not starts:
        return b"", 0, rest
    # Item i spans starts[i] .. starts[i+1] - 1 (the comma); the last one ends at ``end``.
    pieces = [body[a : b - 1] for a, b in itertools.pairwise(starts)]
    pieces.append(body[starts[-1] : end])
    return b'{"Item":' + b'}\n{"Item":'.join(pieces) + b"}\n", len(starts), rest


def _outside_clean(neut: bytes, start: int, end: int) -> bool:
    """True if ``neut[start:end]`` has no raw control character and no space or number outside strings.

    The text is mapped to classes: ``(`` for ``{[:,}]``, ``0`` for a space, a digit
    or ``-``, NUL for a control character. An outside space touches a structural
    character, and an outside number follows one, so either shows as ``(0`` or
    ``0(``; every such match must be inside a string.
    """
    text = neut[start:end].translate(_CLASSES)
    if b"\0" in text:
        return False
    for needle in (b"(0", b"0("):
        at = text.find(needle)
        quotes, prev = 0, 0
        while at >= 0:
            quotes += text.count(b'"', prev, at)
            prev = at
            if not quotes & 1:
                return False
            at = text.find(needle, at + 1)
    return True


class Page(NamedTuple):
    """One Scan page: its backup lines (joined), how many, the key to go on from, the units it consumed."""

    data: bytes
    items: int
    last_key: dict[str, Any] | None
    consumed: float | None  # ConsumedCapacity.CapacityUnits, when the request asked for it


def read_page(body: bytes) -> Page:
    """The :class:`Page` of a raw Scan body; ConsumedCapacity comes from the page's tail, parsed with the key."""
    sliced = _slice(body)
    if sliced is not None:
        data, count, rest = sliced
    else:
        rest = json.loads(body)
        data, count = lines_from_doc(rest)
    return Page(data, count, rest.get("LastEvaluatedKey"), consumed_units(rest))


def page_lines(body: bytes) -> tuple[bytes, int, dict[str, Any] | None]:
    """(backup lines, item count, LastEvaluatedKey in wire form or None) for a raw Scan body."""
    page = read_page(body)
    return page.data, page.items, page.last_key


def fetch_page(ddb: Any, request: Mapping[str, Any], *, on_throttle: Callable[[], None] | None = None) -> Page:
    """One Scan call (with throttling backoff, each throttled try told to ``on_throttle``) as a :class:`Page`."""
    got = _scan(ddb, request, on_throttle)
    body: bytes | None = got.get(_RAW)
    if body is not None:
        return read_page(body)
    doc = _from_parsed(got)
    data, count = lines_from_doc(doc)
    return Page(data, count, doc.get("LastEvaluatedKey"), consumed_units(got))


def scan_page(ddb: Any, request: Mapping[str, Any]) -> tuple[bytes, int, dict[str, Any] | None]:
    """One page: (backup lines, item count, LastEvaluatedKey in wire form or None)."""
    page = fetch_page(ddb, request)
    return page.data, page.items, page.last_key


def next_request(request: dict[str, Any], last_key: dict[str, Any]) -> dict[str, Any]:
    """``request`` to go on after ``last_key`` (wire form; botocore wants binary keys as bytes)."""
    request["ExclusiveStartKey"] = item_from_wire(last_key, "LastEvaluatedKey")
    return request


class BlockPartBuffer(PartBuffer):
    """A :class:`PartBuffer` that also takes lines already joined, with their count."""

    def add_block(self, data: bytes, count: int) -> None:
        if not count:
            return
        self.items += count
        self.uncompressed_bytes += len(data)
        out = self._z.compress(data)
        if out:
            self._chunks.append(out)
