"""The fast scan path writes exactly the bytes the slow path writes, and leaves errors and retries to botocore.

A botocore client answered by a ``before-send`` handler (no network) stands in
for DynamoDB: it serves pages in DynamoDB's own compact form and in the forms
other servers use (``ensure_ascii``, spaced separators, keys in another order),
so both the slicing and the parsing fallback of :mod:`ddb_backup.backup.fastscan` run.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import threading
import zlib
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.parsers import create_parser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddb_backup.backup import fastscan
from ddb_backup.backup.scan import FastPages, Pages, ScanSettings, scan_segment
from ddb_backup.errors import BadInput
from ddb_backup.format.ddbjson import item_to_wire, line_from_client_item

# ------------------------------------------------------------------ wire items
TRICKY = ['}},{"', '},{"M":{', '"', "\\", ", ", ": ", ":1", "[-0", "{ ", " }", "é中😀", "\u2028", "\x7f", "\n\t", "\b"]


def item_lists(text: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Pages' worth of wire items, every type, names and strings drawn from ``text`` and tricky ones."""
    tricky = st.one_of(text, st.sampled_from(TRICKY), st.lists(st.sampled_from(TRICKY)).map("".join))
    names = st.one_of(
        st.sampled_from(["pk", "M", "S", "N", "B", "L", "BOOL", "NULL", "SS", "Item", "Items", "a b", 'q"t', "x\\y"]),
        text.filter(bool),
    )
    scalar = st.one_of(
        tricky.map(lambda v: {"S": v}),
        numbers.map(lambda v: {"N": v}),
        b64.map(lambda v: {"B": v}),
        st.lists(tricky, min_size=1, max_size=3, unique=True).map(lambda v: {"SS": v}),
        st.lists(numbers, min_size=1, max_size=3, unique=True).map(lambda v: {"NS": v}),
        st.lists(b64, min_size=1, max_size=3, unique=True).map(lambda v: {"BS": v}),
        st.booleans().map(lambda v: {"BOOL": v}),
        st.just({"NULL": True}),
    )
    attribute = st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.dictionaries(names, inner, max_size=3).map(lambda v: {"M": v}),
            st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        ),
        max_leaves=8,
    )
    return st.lists(st.dictionaries(names, attribute, min_size=1, max_size=5), max_size=8)


numbers = st.sampled_from(["0", "-1", "1E+2", "12345678901234567890123456789012345678", "-0.000001", "3.14"])
b64 = st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode())
items = item_lists(st.text(max_size=12))
# Text DynamoDB sends without \uXXXX escapes: no control characters but newline and tab.
printable_items = item_lists(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t"), max_size=12)
)
keys = st.none() | st.dictionaries(st.sampled_from(["pk", "sk"]), b64.map(lambda v: {"B": v}), min_size=1)

STYLES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    # DynamoDB: compact, UTF-8 as is.
    "dynamodb": lambda page: json.dumps(page, separators=(",", ":"), ensure_ascii=False).encode(),
    # moto: Python's defaults.
    "spaced-ascii": lambda page: json.dumps(page).encode(),
    "compact-ascii": lambda page: json.dumps(page, separators=(",", ":")).encode(),
    "count-first": lambda page: json.dumps(
        {k: page[k] for k in sorted(page)}, separators=(",", ":"), ensure_ascii=False
    ).encode(),
}

_SCAN_OUTPUT = (
    boto3.session.Session(region_name="us-east-1")
    .client("dynamodb")
    .meta.service_model.operation_model("Scan")
    .output_shape
)


def page_body(wire_items: list[dict[str, Any]], last_key: dict[str, Any] | None, style: str) -> bytes:
    page: dict[str, Any] = {"Items": wire_items, "Count": len(wire_items), "ScannedCount": len(wire_items)}
    if last_key:
        page["LastEvaluatedKey"] = last_key
    return STYLES[style](page)


def slow_lines(body: bytes) -> tuple[bytes, int, dict[str, Any] | None]:
    """What the slow path makes of a body: botocore's parse, then ``line_from_client_item``."""
    parsed = create_parser("json").parse({"body": body, "headers": {}, "status_code": 200}, _SCAN_OUTPUT)
    found = parsed.get("Items", [])
    key = parsed.get("LastEvaluatedKey")
    return b"".join(line_from_client_item(i) for i in found), len(found), item_to_wire(key) if key else None


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items, keys, st.sampled_from(sorted(STYLES)))
def test_page_lines_equal_the_slow_path_byte_for_byte(wire_items, last_key, style):
    body = page_body(wire_items, last_key, style)
    assert fastscan.page_lines(body) == slow_lines(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(printable_items, keys)
def test_dynamodb_pages_are_sliced_not_parsed(wire_items, last_key):
    body = page_body(wire_items, last_key, "dynamodb")
    sliced = fastscan.slice_page(body)
    ambiguous = any(next(iter(item)) == "M" for item in wire_items[1:])  # taken for a list element: parsed
    if b"\\u" not in body and not ambiguous:
        assert sliced is not None
    if sliced is not None:
        assert sliced == slow_lines(body)


@pytest.mark.parametrize("style", ["spaced-ascii", "compact-ascii"])
def test_other_servers_forms_are_parsed_instead(style):
    body = page_body([{"pk": {"S": "é"}, "n": {"N": "1"}}], None, style)
    assert fastscan.slice_page(body) is None
    assert fastscan.page_lines(body) == slow_lines(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"Items":[{"pk":{"S":"a"}} ,{"pk":{"S":"b"}}],"Count":2}',  # space outside strings
        b'{"Items":[{"pk":{"S":"a"},"n":1}],"Count":1}',  # a bare number
        b'{"Items":[{"pk":{"S":"a\\/b"}}],"Count":1}',  # an escape the encoder does not write
        b'{"Items":[{"pk":{"S":"a"}},{"pk":{"S":"b"}}],"Count":3}',  # Count disagrees
        b'{"Items":[{"pk":{"S":"a"}},{"M":{"S":"b"}}],"Count":2}',  # an item whose first name is M
    ],
)
def test_anything_unproven_falls_back_to_parsing(body):
    assert fastscan.slice_page(body) is None
    if b'"Count":3' not in body and b'"n":1' not in body:  # those two are not DynamoDB's to send
        assert fastscan.page_lines(body) == slow_lines(body)


# ------------------------------------------------------------------ through botocore
class FakeDynamoDB:
    """Answers Scan from prepared pages (the next page from ExclusiveStartKey), after scripted failures."""

    def __init__(self, pages: list[bytes], failures: list[tuple[int, bytes]] | None = None, bad_crc: int = 0):
        self.pages, self.failures, self.bad_crc, self.calls = pages, list(failures or []), bad_crc, 0

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        self.calls += 1
        if self.failures:
            status, body = self.failures.pop(0)
            return self._response(status, body)
        sent = json.loads(request.body)
        index = int(sent["ExclusiveStartKey"]["pk"]["S"]) + 1 if "ExclusiveStartKey" in sent else 0
        body = self.pages[index]
        crc = zlib.crc32(body)
        if self.bad_crc:
            self.bad_crc -= 1
            crc ^= 1
        return self._response(200, body, crc)

    @staticmethod
    def _response(status: int, body: bytes, crc: int | None = None) -> AWSResponse:
        headers = {"x-amz-crc32": str((zlib.crc32(body) if crc is None else crc) & 0xFFFFFFFF)}

        class Raw:
            def stream(self, **_: Any) -> Any:
                yield body

        response = AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", status, headers, Raw())
        response._content = body  # type: ignore[attr-defined]
        return response


def fake_client(server: FakeDynamoDB) -> Any:
    ddb = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client(
        "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 5})
    )
    ddb.meta.events.register("before-send.dynamodb.Scan", server)
    return ddb


class RecordingS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, *, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[Key] = Body
        return {}


def pages_for(count: int, style: str = "dynamodb") -> list[bytes]:
    out = []
    for p in range(count):
        wire = [
            {
                "pk": {"S": f"{p}-{i}"},
                "files": {"L": [{"M": {"b": {"B": "AAEC"}}}, {"M": {"k": {"S": '}},{"M":'}}}]},
                "M": {"M": {"S": {"NULL": True}}},
                "tags": {"SS": ["é", 'q"t\\']},
            }
            for i in range(7)
        ]
        last = {"pk": {"S": str(p)}} if p < count - 1 else None
        out.append(page_body(wire, last, style))
    return out


@pytest.mark.parametrize("style", ["dynamodb", "spaced-ascii"])
def test_scan_segment_parts_are_identical_on_both_paths(style):
    pages = pages_for(5, style)
    results = {}
    for fast in (True, False):
        s3 = RecordingS3()
        task = {"table": "t-table", "backupDir": "b/", "segment": 0, "totalSegments": 1}
        done = scan_segment(
            fake_client(FakeDynamoDB(pages)),
            s3,
            ScanSettings(bucket="x", part_bytes=3000, fast_path=fast),
            task,
            time_left=lambda: 60.0,
        )
        results[fast] = (s3.objects, {k: v for k, v in done.items() if k != "startKey"}, done["startKey"])
    assert results[True] == results[False]
    assert len(results[True][0]) > 1
    assert results[True][1]["items"] == 35


def test_a_budget_stop_hands_over_the_key_in_wire_form():
    pages = pages_for(3)
    task = {"table": "t-table", "backupDir": "b/", "segment": 0, "totalSegments": 1}
    out = {}
    for fast in (True, False):
        out[fast] = scan_segment(
            fake_client(FakeDynamoDB(pages)),
            RecordingS3(),
            ScanSettings(bucket="x", fast_path=fast),
            dict(task),
            time_left=lambda: 0,
        )
    assert out[True] == out[False]
    assert out[True]["startKey"] == {"pk": {"S": "0"}} and not out[True]["done"]


def test_throttling_and_bad_checksums_are_retried_before_the_body_is_taken(monkeypatch):
    monkeypatch.setattr("ddb_backup.aws.retry.time.sleep", lambda _s: None)
    monkeypatch.setattr("botocore.retries.standard.time.sleep", lambda _s: None, raising=False)
    throttled = json.dumps({"__type": "ProvisionedThroughputExceededException", "message": "slow down"}).encode()
    server = FakeDynamoDB(pages_for(1), failures=[(400, throttled)] * 6, bad_crc=1)
    data, count, last_key = fastscan.scan_page(fake_client(server), {"TableName": "t-table"})
    assert (data, count, last_key) == slow_lines(pages_for(1)[0])
    assert server.calls >= 8


def test_errors_reach_the_caller_as_client_errors():
    from botocore.exceptions import ClientError

    missing = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "no"})
    server = FakeDynamoDB([], failures=[(400, missing.encode())])
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        fastscan.scan_page(fake_client(server), {"TableName": "t-table"})


def test_other_scans_on_the_same_client_are_parsed_as_usual():
    pages = pages_for(1)
    ddb = fake_client(FakeDynamoDB(pages * 2))
    fastscan.scan_page(ddb, {"TableName": "t-table"})
    page = ddb.scan(TableName="t-table")
    assert "ddb_backup.rawBody" not in page
    assert page["Items"][0]["files"]["L"][0]["M"]["b"]["B"] == b"\x00\x01\x02"


def _with_capacity(body: bytes, units: float) -> bytes:
    """A page as DynamoDB sends it with ReturnConsumedCapacity=TOTAL: ConsumedCapacity in the tail."""
    assert body.endswith(b"}")
    return body[:-1] + b',"ConsumedCapacity":{"TableName":"t-table","CapacityUnits":' + str(units).encode() + b"}}"


@pytest.mark.parametrize("style", ["dynamodb", "spaced-ascii"])
def test_consumed_capacity_is_read_from_the_raw_page_on_the_fast_path(style):
    body = _with_capacity(pages_for(1, style)[0], 12.5)
    page = fastscan.read_page(body)
    assert page.consumed == 12.5
    assert (page.data, page.items, page.last_key) == slow_lines(body)
    assert fastscan.read_page(pages_for(1, style)[0]).consumed is None


class _CountingLimiter:
    def __init__(self) -> None:
        self.charged: list[float] = []
        self.throttles = 0
        self.rate = 10.0

    def acquire(self, estimate: float = 0.0) -> None:
        pass

    def charge(self, units: float, estimate: float = 0.0) -> None:
        self.charged.append(units)

    def throttled(self) -> None:
        self.throttles += 1


@pytest.mark.parametrize("fast", [True, False])
def test_a_limited_scan_is_charged_what_each_page_consumed_and_told_of_throttling(fast, monkeypatch):
    """Two throttled tries retried inside botocore: the limiter still hears of them (RetryAttempts), once a page."""
    monkeypatch.setattr("ddb_backup.aws.retry.time.sleep", lambda _s: None)
    throttled = json.dumps({"__type": "ProvisionedThroughputExceededException", "message": "slow down"}).encode()
    pages = [_with_capacity(p, 3.5 + i) for i, p in enumerate(pages_for(3))]
    server = FakeDynamoDB(pages, failures=[(400, throttled)] * 2)
    limiter = _CountingLimiter()
    request = {"TableName": "t-table"}
    pager = (FastPages if fast else Pages)(fake_client(server), request, limiter)  # type: ignore[arg-type]
    assert request["ReturnConsumedCapacity"] == "TOTAL" and request["Limit"] == 100  # a first page of 100 items
    buf = pager.buffer(1)
    while (key := pager.read_into(buf)) is not None:
        pager.advance(key)
    assert limiter.charged == [3.5, 4.5, 5.5]
    assert limiter.throttles == 1
    assert request["Limit"] == 6  # the next page: half a second at 10 units/s, at 5.5 units for 7 items
    assert buf.items == 21


# ------------------------------------------------------------------ what the fast path proves and skips
@pytest.mark.parametrize(
    "body",
    [
        b'{"Items":[{"pk":{"S":"a"}, "x":{"S":"b"}},{"pk":{"S":"c"}}],"Count":2}',  # a space after a comma only
        b'{"Items":[{"pk":{"S":"a" }},{"pk":{"S":"c"}}],"Count":2}',  # a space before a brace only
        b'{"Items":[{ "pk":{"S":"a"}},{"pk":{"S":"c"}}],"Count":2}',  # a space at the array's first byte
        # outside strings first, then inside one: every occurrence is checked, not only the last
        b'{"Items":[{"pk":{"S":"a"}, "x":{"S":", y"}},{"pk":{"S":"c"}}],"Count":2}',
        # inside a string, outside, inside again: the middle one is checked too
        b'{"Items":[{"pk":{"S":", a"}, "x":{"S":", b"}},{"pk":{"S":"c"}}],"Count":2}',
        b'{"Items":[{"pk":{"S":"a\\/b"}},{"pk":{"S":"c"}}],"Count":2}',  # an escape the encoder does not write
    ],
)
def test_text_the_encoder_does_not_write_in_an_item_before_the_last_is_parsed_not_sliced(body):
    assert fastscan.slice_page(body) is None
    assert fastscan.page_lines(body) == slow_lines(body)


@pytest.mark.parametrize("bad", [b"\x01", b"\xff", b"\xc3"])
def test_a_raw_control_character_or_bad_utf8_is_never_sliced_into_a_line(bad):
    """JSON refuses both; an item before the last is not parsed, so the byte checks must see them."""
    body = b'{"Items":[{"pk":{"S":"a' + bad + b'"}},{"pk":{"S":"\xc3\xa9"}}],"Count":2}'
    assert fastscan.slice_page(body) is None
    with pytest.raises(ValueError):  # as botocore's own json.loads refuses them: nothing is written
        fastscan.page_lines(body)


# An item whose string holds a boundary look-alike: "a}},{" closes, then the name ':{x' opens with '":{'.
_LOOKALIKE = b'{"pk":{"S":"a}},{"},":{x":{"S":"c"}}'


@pytest.mark.parametrize(
    ("body", "sliced"),
    [
        # look-alike inside, a boundary, look-alike inside, a boundary: exactly the two boundaries split items
        (b'{"Items":[' + _LOOKALIKE + b"," + _LOOKALIKE + b',{"pk":{"S":"e"}}],"Count":3}', True),
        # a look-alike inside and a boundary missed (an item named M first): the count disagrees, so parsed
        (b'{"Items":[' + _LOOKALIKE + b',{"M":{"S":"z"}},{"pk":{"S":"e"}}],"Count":3}', False),
    ],
)
def test_a_string_that_looks_like_an_item_boundary_never_splits_an_item(body, sliced):
    assert json.loads(body)["Items"][0] == {"pk": {"S": "a}},{"}, ":{x": {"S": "c"}}
    assert (fastscan.slice_page(body) is not None) is sliced
    assert fastscan.page_lines(body) == slow_lines(body)
    assert fastscan.page_lines(body)[1] == 3


def test_a_page_with_its_count_before_the_items_is_sliced():
    """Where the Items array stands in the page does not matter (only its own text is checked)."""
    body = page_body([{"pk": {"S": "a"}}, {"pk": {"S": "b"}, "n": {"N": "-1"}}], {"pk": {"S": "b"}}, "count-first")
    assert body.startswith(b'{"Count":2,"Items":[')
    assert fastscan.slice_page(body) == slow_lines(body)


def test_a_page_with_two_items_arrays_is_read_as_botocore_reads_it():
    """JSON keeps the last of two equal names: so does botocore, so must the fast path (it parses such a page)."""
    body = b'{"Items":[{"pk":{"S":"first"}}],"Count":1,"Items":[{"pk":{"S":"last"}}]}'
    assert fastscan.slice_page(body) is None
    assert fastscan.page_lines(body) == slow_lines(body) == (b'{"Item":{"pk":{"S":"last"}}}\n', 1, None)


def test_a_dynamodb_page_is_sliced_on_the_fetch_path_never_parsed(monkeypatch):
    def parsed(_doc: Any) -> Any:
        raise AssertionError("a canonical page was parsed")

    monkeypatch.setattr(fastscan, "lines_from_doc", parsed)
    body = _with_capacity(pages_for(2)[0], 2.5)
    page = fastscan.read_page(body)
    assert (page.data, page.items, page.last_key, page.consumed) == (*slow_lines(body), 2.5)


def test_botocore_is_handed_an_empty_body_inside_fetch_page_only():
    """The raw body is kept and botocore parses ``{}``; a scan outside fetch_page, in any thread, is parsed."""
    pages = pages_for(2)
    ddb = fake_client(FakeDynamoDB(pages * 2))
    parsed: list[dict[str, Any]] = []
    ddb.meta.events.register("after-call.dynamodb.Scan", lambda parsed=None, **_: parsed_pages(parsed))

    def parsed_pages(page: dict[str, Any]) -> None:
        parsed.append(page)

    page = fastscan.fetch_page(ddb, {"TableName": "t-table"})
    assert (page.data, page.items, page.last_key) == slow_lines(pages[0])
    assert "Items" not in parsed[0] and "Count" not in parsed[0]  # botocore walked no attribute
    assert parsed[0]["ddb_backup.rawBody"] == pages[0]
    got: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: got.append(ddb.scan(TableName="t-table")))
    worker.start()
    worker.join()
    assert "ddb_backup.rawBody" not in got[0] and len(got[0]["Items"]) == 7


def test_a_stubbed_client_answers_before_any_body_and_is_read_from_the_parsed_page():
    """botocore's Stubber answers before a body exists: the page is taken from the parsed response (Items may be absent)."""
    from botocore.stub import Stubber

    ddb = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client(
        "dynamodb"
    )
    items = [{"pk": {"B": b"\x00\x01"}, "n": {"N": "1"}}, {"pk": {"S": "é"}, "m": {"M": {"x": {"NULL": True}}}}]
    answer = {
        "Items": items,
        "Count": 2,
        "ScannedCount": 2,
        "LastEvaluatedKey": {"pk": {"B": b"\x00\x01"}},
        "ConsumedCapacity": {"TableName": "t-table", "CapacityUnits": 1.5},
    }
    with Stubber(ddb) as stub:
        stub.add_response("scan", answer, {"TableName": "t-table"})
        stub.add_response("scan", {"Count": 0, "ScannedCount": 5}, {"TableName": "t-table"})  # Items left out
        page = fastscan.fetch_page(ddb, {"TableName": "t-table"})
        last = fastscan.fetch_page(ddb, {"TableName": "t-table"})
    assert page == fastscan.Page(b"".join(map(line_from_client_item, items)), 2, {"pk": {"B": "AAE="}}, 1.5)
    assert last == fastscan.Page(b"", 0, None, None)
    assert fastscan.read_page(b'{"Count":0,"ScannedCount":5}') == last  # the same page as a raw body


def test_throttling_botocore_gave_up_on_is_retried_and_each_try_told_to_the_limiter(monkeypatch):
    """Six throttled tries exhaust botocore's retries (one ClientError); call_with_backoff retries and says so."""
    monkeypatch.setattr("ddb_backup.aws.retry.time.sleep", lambda _s: None)
    monkeypatch.setattr("botocore.retries.standard.time.sleep", lambda _s: None, raising=False)
    throttled = json.dumps({"__type": "ProvisionedThroughputExceededException", "message": "slow down"}).encode()
    server = FakeDynamoDB(pages_for(1), failures=[(400, throttled)] * 7)
    told: list[str] = []
    page = fastscan.fetch_page(fake_client(server), {"TableName": "t-table"}, on_throttle=lambda: told.append("t"))
    assert (page.data, page.items, page.last_key) == slow_lines(pages_for(1)[0])
    assert told == ["t", "t"]  # the ClientError after 6 tries, then the success that botocore retried once


def test_a_bad_key_to_go_on_from_is_named_as_the_last_evaluated_key():
    with pytest.raises(BadInput, match=r"LastEvaluatedKey\.pk"):
        fastscan.next_request({"TableName": "t-table"}, {"pk": {"B": "not base64!"}})
    request = fastscan.next_request({"TableName": "t-table"}, {"pk": {"B": "AAE="}})
    assert request["ExclusiveStartKey"] == {"pk": {"B": b"\x00\x01"}}


def test_a_block_larger_than_the_compressor_holds_is_kept_whole():
    """A block the compressor flushes as it goes (megabytes of varied lines) comes out of the part whole."""
    rng = random.Random(5)
    lines = b"".join(line_from_client_item({"pk": {"S": f"{i}"}, "v": {"B": rng.randbytes(300)}}) for i in range(4000))
    buf = fastscan.BlockPartBuffer()
    buf.add_block(lines, 4000)
    buf.add_block(b"", 0)
    assert (buf.items, buf.uncompressed_bytes) == (4000, len(lines))
    assert gzip.decompress(buf.finish()) == lines
