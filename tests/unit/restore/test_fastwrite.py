"""Restore's fast request building sends what the slow path sends, and keeps every guarantee of write_items.

A botocore client answered by a ``before-send`` handler (no network) records
every BatchWriteItem body; the same part restored through the reader's
client-form items (botocore serializes) and through RawItems (lines joined)
must put the same items in the same requests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import zlib
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ParamValidationError

from ddb_backup.aws.ratelimit import RateLimiter
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError
from ddb_backup.format.ddbjson import item_to_wire, line_from_client_item, parse_line
from ddb_backup.format.dialects import MAX_ITEM_BYTES
from ddb_backup.format.lines import PartRef
from ddb_backup.format.localfile import write_local_file
from ddb_backup.format.sources import Source, read_part
from ddb_backup.restore import fastwrite
from ddb_backup.restore.write import DeadLettered, write_items
from devkit import sample

KEYS = [("pk", "HASH")]


class FakeDynamoDB:
    """Records BatchWriteItem bodies; answers from a script of (status, body) then with all processed."""

    def __init__(self, script: list[tuple[int, dict[str, Any]]] | None = None, reject: str | None = None):
        self.bodies: list[dict[str, Any]] = []
        self.script = list(script or [])
        self.reject = reject  # a pk whose presence in a request makes it a ValidationException

    def __call__(self, request: Any, **_: Any) -> AWSResponse:
        body = json.loads(request.body)
        self.bodies.append(body)
        if self.reject and any(
            r["PutRequest"]["Item"]["pk"]["S"] == self.reject for rs in body["RequestItems"].values() for r in rs
        ):
            return self._response(400, {"__type": "ValidationException", "message": "bad item"})
        if self.script:
            return self._response(*self.script.pop(0))
        return self._response(200, {"UnprocessedItems": {}})

    @staticmethod
    def _response(status: int, doc: dict[str, Any]) -> AWSResponse:
        raw = json.dumps(doc).encode()

        class Raw:
            def stream(self, **_: Any) -> Any:
                yield raw

        response = AWSResponse(
            "https://dynamodb.us-east-1.amazonaws.com/", status, {"x-amz-crc32": str(zlib.crc32(raw))}, Raw()
        )
        response._content = raw  # type: ignore[attr-defined]
        return response


def fake_client(server: FakeDynamoDB) -> Any:
    ddb = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client(
        "dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 2})
    )
    ddb.meta.events.register("before-send.dynamodb.BatchWriteItem", server)
    return ddb


TRICKY = [
    {"pk": {"S": "nested"}, "m": {"M": {"pk": {"S": "not me"}}}},  # the key name twice: parsed
    {"pk": {"S": 'esc"aped'}, "b": {"B": b"\x00"}},  # an escape in the key: parsed
    {"pk": {"S": "é中"}, "L": {"L": [{"M": {"pk": {"N": "1"}}}]}},
    {"pk": {"S": "1"}, "v": {"N": "1"}},
    {"pk": {"S": "1.0"}, "v": {"N": "2"}},  # equal as numbers, two keys as strings: both written
]


def make_part(tmp_path: Path, items: list[dict[str, Any]], *, checksum: bool = True) -> PartRef:
    path = tmp_path / "000000-000000.json.gz"
    path.write_bytes(gzip.compress(b"".join(line_from_client_item(i) for i in items)))
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if checksum else None
    return PartRef(id="data/000000-000000.json.gz", url=str(path), dialect="item", items=len(items), sha256=digest)


def realistic(count: int) -> list[dict[str, Any]]:
    rng = random.Random(3)
    return [sample.make_item(KEYS, i, rng, 400) for i in range(count)] + TRICKY


def restore(part: PartRef, *, fast: bool, server: FakeDynamoDB, **kwargs: Any) -> dict[str, Any]:
    ddb = fake_client(server)
    items = fastwrite.read_part(part, ddb=ddb) if fast else read_part(part)
    return write_items(
        ddb, "target-table", items, dead_letter=kwargs.pop("dead_letter", lambda xs: "dl"), key_names=["pk"], **kwargs
    )


def test_requests_are_the_same_items_in_the_same_batches(tmp_path):
    part = make_part(tmp_path, realistic(120))
    sent = {}
    for fast in (True, False):
        server = FakeDynamoDB()
        counts = restore(part, fast=fast, server=server, concurrency=1)
        sent[fast] = (server.bodies, counts)
    assert sent[True] == sent[False]
    assert sent[True][1]["written"] == 125


def test_the_body_is_the_lines_joined(tmp_path):
    items = realistic(30)
    server = FakeDynamoDB()
    restore(make_part(tmp_path, items), fast=True, server=server, concurrency=1)
    first = server.bodies[0]["RequestItems"]["target-table"]
    assert [r["PutRequest"]["Item"] for r in first] == [item_to_wire(i) for i in items[:25]]


def test_key_attributes_come_from_the_lines_json_or_else_from_the_parser(tmp_path):
    items = realistic(5)
    raws = list(fastwrite.read_part(make_part(tmp_path, items)))
    assert all(isinstance(r, fastwrite.RawItem) for r in raws)
    for raw, item in zip(raws, items, strict=True):
        assert raw["pk"] == item["pk"]
    assert all(r._item is None for r in raws)  # a nested "pk" (item 5) is no reason to parse
    line = line_from_client_item({"pk": {"B": b"\x01\xff"}, "s": {"S": 'a"\\\u00e9'}})[:-1]
    binary = fastwrite.RawItem(line, "x", fastwrite._one_item(line))
    assert binary["pk"] == {"B": b"\x01\xff"} and binary["s"] == {"S": 'a"\\\u00e9'} and binary._item is None
    assert dict(binary) == {"pk": {"B": b"\x01\xff"}, "s": {"S": 'a"\\\u00e9'}}
    # an attribute is validated as the reader validates it, and the error names the line
    bad = b'{"Item":{"pk":{"B":"not base64!"}}}'
    with pytest.raises(BadInput, match=r"line 7\.pk"):
        _ = fastwrite.RawItem(bad, "line 7", fastwrite._one_item(bad))["pk"]
    with pytest.raises(KeyError):
        _ = fastwrite.RawItem(line, "x", fastwrite._one_item(line))["absent"]


def test_only_one_item_object_per_line_is_sent_as_it_is():
    found = fastwrite._one_item(b'{"Item":{"pk":{"S":"a"},"n":{"N":"1"}}}')
    assert found is not None and {k: bytes(v) for k, v in found.items()} == {"pk": b'{"S":"a"}', "n": b'{"N":"1"}'}
    for line in (
        b'{"Item":{"pk":{"S":"a"}}}],"Other":[{"PutRequest":{"Item":{"pk":{"S":"b"}}}}',
        b'{"Item":{"pk":{"S":"a"}},"Item2":{}}',
        b'{"Item":{"pk":{"S":"a"}}} {"Item":{}}',
        b'{"Item":[1]}',
        b'{"Item":{"pk":{"S":"a}}',
        b'{"Item":{"pk":{"S":"\xff"}}}',
        b'{"Item":{"pk":{"N":NaN}}}',
        b'{"Item":{"pk":{"S":"a",}}}',
        b'{"Item":{"pk":{"S":"\\q"}}}',
        b'{"Item":{"pk":{"L":[{"S":"a"},]}}}',
        b'{"Item":{"pk":{"S":"a\x01"}}}',
    ):
        assert fastwrite._one_item(line) is None, line


def test_unprocessed_items_are_resent_until_written(tmp_path):
    items = realistic(10)
    left = [{"PutRequest": {"Item": item_to_wire(items[3])}}, {"PutRequest": {"Item": item_to_wire(items[7])}}]
    server = FakeDynamoDB(script=[(200, {"UnprocessedItems": {"target-table": left}})])
    counts = restore(make_part(tmp_path, items), fast=True, server=server, concurrency=1, sleep=lambda _s: None)
    assert counts["written"] == 15 and counts["unprocessedRetries"] == 1
    assert server.bodies[1]["RequestItems"]["target-table"] == left


def test_throttling_is_retried(tmp_path):
    throttled = (400, {"__type": "ProvisionedThroughputExceededException", "message": "slow"})
    server = FakeDynamoDB(script=[throttled] * 3)
    counts = restore(make_part(tmp_path, realistic(3)), fast=True, server=server, sleep=lambda _s: None)
    assert counts["written"] == 8 and counts["throttleRetries"] >= 1


def test_an_item_dynamodb_rejects_is_dead_lettered_in_client_form(tmp_path):
    items = realistic(40)
    saved: list[Any] = []

    def dead_letter(xs: list[Any]) -> str:
        saved.extend(line_from_client_item(x) for x in xs)
        return "s3://dl/x.json.gz"

    server = FakeDynamoDB(reject="pk-0000007")
    with pytest.raises(DeadLettered, match="1 of 45 items"):
        restore(make_part(tmp_path, items), fast=True, server=server, dead_letter=dead_letter, sleep=lambda _s: None)
    assert saved == [line_from_client_item(items[7])]
    assert parse_line(saved[0], "x") == items[7]


def test_lines_no_checksum_vouches_for_are_validated_before_they_are_sent(tmp_path):
    items = realistic(2)
    part = make_part(tmp_path, items, checksum=False)
    raws = list(fastwrite.read_part(part))
    assert all(isinstance(r, fastwrite.RawItem) and r._item is not None for r in raws)
    assert [dict(r) for r in raws] == items
    bad = tmp_path / "bad.json"
    bad.write_bytes(line_from_client_item(items[0]) + b'{"Item":{"pk":{"B":"not base64!"}}}\n')
    with pytest.raises(BadInput, match=r"bad\.json line 2"):
        list(fastwrite.read_part(PartRef(id="bad", url=str(bad), dialect="item")))


def test_a_local_file_reads_as_the_reader_reads_it(tmp_path):
    items = realistic(30)
    path = tmp_path / "t.json"
    write_local_file(path, items, table="t-table", description={"Table": {"TableName": "t-table"}})
    part = PartRef(id="t.json", url=str(path), dialect="local", items=None)
    assert [dict(i) for i in fastwrite.read_part(part)] == list(read_part(part))
    assert len(list(fastwrite.read_part(part, start=28))) == 7
    cut = tmp_path / "cut.json"
    cut.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    with pytest.raises(BackupIncomplete, match="no end line"):
        list(fastwrite.read_part(PartRef(id="cut", url=str(cut), dialect="local")))


def test_other_dialects_are_read_the_ordinary_way(tmp_path):
    path = tmp_path / "typed.json"
    path.write_bytes(json.dumps(item_to_wire(TRICKY[0])).encode() + b"\n")
    part = PartRef(id="typed", url=str(path), dialect="typed")
    assert not fastwrite.eligible(part)
    assert list(fastwrite.read_part(part)) == [TRICKY[0]]


def test_a_part_is_verified_and_counted(tmp_path):
    part = make_part(tmp_path, realistic(2))
    short = PartRef(**{**part.__dict__, "items": 99})
    with pytest.raises(IntegrityError, match="manifest says 99"):
        list(fastwrite.read_part(short))
    corrupt = PartRef(**{**part.__dict__, "sha256": "0" * 64})
    with pytest.raises(IntegrityError, match="corrupt"):
        next(fastwrite.read_part(corrupt))
    assert len(list(fastwrite.read_part(part, start=5))) == 2


def test_a_limited_restore_asks_for_consumed_capacity_on_both_paths_with_the_same_requests(tmp_path):
    part = make_part(tmp_path, realistic(120))
    sent = {}
    for fast in (True, False):
        server = FakeDynamoDB()
        counts = restore(part, fast=fast, server=server, concurrency=1, write_rate=1e9)
        sent[fast] = (server.bodies, counts)
    assert sent[True] == sent[False]
    assert all(body["ReturnConsumedCapacity"] == "TOTAL" for body in sent[True][0])
    assert sent[True][1]["written"] == 125


def test_a_limited_restore_is_charged_what_dynamodb_reports_at_least_a_unit_an_item(tmp_path, monkeypatch):
    """ConsumedCapacity above the floor is charged as reported; below it (moto says 1.0), one unit an item."""
    charged: list[float] = []
    real_charge = RateLimiter.charge
    monkeypatch.setattr(RateLimiter, "charge", lambda self, u, e=0.0: (charged.append(u), real_charge(self, u, e)))
    big = {"UnprocessedItems": {}, "ConsumedCapacity": [{"TableName": "target-table", "CapacityUnits": 60.0}]}
    small = {"UnprocessedItems": {}, "ConsumedCapacity": [{"TableName": "target-table", "CapacityUnits": 1.0}]}
    server = FakeDynamoDB(script=[(200, big), (200, small)])
    restore(make_part(tmp_path, realistic(46)), fast=True, server=server, concurrency=1, write_rate=1e9)
    assert charged == [60.0, 25.0, 1.0]  # batches of 25, 25, 1; the second reports 1.0, the last nothing


# ------------------------------------------------------------------ what the fast path sends, and when it steps aside
def test_a_fast_restore_sends_the_lines_byte_for_byte_and_parses_none_of_them(tmp_path):
    items = realistic(30)
    part = make_part(tmp_path, items)
    raws = list(fastwrite.read_part(part))
    server = FakeDynamoDB()
    raw_bodies: list[bytes] = []
    ddb = fake_client(server)
    ddb.meta.events.register(
        "before-send.dynamodb.BatchWriteItem", lambda request, **_: raw_bodies.append(request.body)
    )
    fastwrite.install(ddb)
    counts = write_items(ddb, "target-table", iter(raws), dead_letter=lambda xs: "dl", key_names=["pk"], concurrency=1)
    assert counts["written"] == 35
    sent = b"".join(raw_bodies)
    assert all(r.line in sent for r in raws)  # "é中" stays UTF-8: botocore would have written \\u escapes
    assert all(r._item is None for r in raws)  # nothing was parsed, not even to be serialized


def _installed(line: bytes) -> tuple[FakeDynamoDB, Any, fastwrite.RawItem]:
    """A recording server, a client with the fast handlers, and ``line`` as a proved RawItem."""
    server = FakeDynamoDB()
    ddb = fake_client(server)
    fastwrite.install(ddb)
    return server, ddb, fastwrite.RawItem(line, "line 1", fastwrite._one_item(line))


def _requests(raw: fastwrite.RawItem, plain: dict[str, Any]) -> list[Any]:
    return [{"PutRequest": {"Item": raw}}, {"PutRequest": {"Item": plain}}, {"DeleteRequest": {"Key": plain}}]


def test_raw_items_mixed_with_ordinary_requests_or_tables_are_sent_parsed_with_the_others():
    """Not something restore sends; a caller doing it still gets every request, as botocore serializes them."""
    line = b'{"Item":{"pk":{"S":"raw"},"b":{"B":"AAE="}}}'
    server, ddb, raw = _installed(line)
    ddb.batch_write_item(RequestItems={"t": _requests(raw, {"pk": {"S": "plain"}})})
    assert server.bodies[-1]["RequestItems"] == {
        "t": [
            {"PutRequest": {"Item": {"pk": {"S": "raw"}, "b": {"B": "AAE="}}}},
            {"PutRequest": {"Item": {"pk": {"S": "plain"}}}},
            {"DeleteRequest": {"Key": {"pk": {"S": "plain"}}}},
        ]
    }
    ddb.batch_write_item(RequestItems={"a": [{"PutRequest": {"Item": raw}}], "b": [{"PutRequest": {"Item": raw}}]})
    assert server.bodies[-1]["RequestItems"] == {t: [{"PutRequest": {"Item": json.loads(line)["Item"]}}] for t in "ab"}
    with pytest.raises(ParamValidationError, match="RequestItems"):  # botocore's own refusal, as without the handler
        ddb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": raw}}, "not a request"]})


def test_every_other_member_of_a_fast_request_is_sent():
    server, ddb, raw = _installed(b'{"Item":{"pk":{"S":"a"}}}')
    ddb.batch_write_item(
        RequestItems={"t": [{"PutRequest": {"Item": raw}}]},
        ReturnConsumedCapacity="TOTAL",
        ReturnItemCollectionMetrics="SIZE",
    )
    assert server.bodies == [
        {
            "RequestItems": {"t": [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}]},
            "ReturnConsumedCapacity": "TOTAL",
            "ReturnItemCollectionMetrics": "SIZE",
        }
    ]


def test_installing_once_a_part_leaves_one_handler_of_each_kind_on_the_client(tmp_path, monkeypatch):
    """A restore installs the handlers for every part it reads: they must not pile up (each walks every request)."""
    calls: list[str] = []
    build, use = fastwrite._build_body, fastwrite._use_body

    def counted_build(params: dict[str, Any], context: dict[str, Any], **kw: Any) -> None:
        calls.append("build")
        build(params, context, **kw)

    def counted_use(params: dict[str, Any], context: dict[str, Any], **kw: Any) -> None:
        calls.append("use")
        use(params, context, **kw)

    monkeypatch.setattr(fastwrite, "_build_body", counted_build)
    monkeypatch.setattr(fastwrite, "_use_body", counted_use)
    server = FakeDynamoDB()
    ddb = fake_client(server)
    part = make_part(tmp_path, realistic(3))
    for _ in range(3):
        raws = list(fastwrite.read_part(part, ddb=ddb))
    ddb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": r}} for r in raws]})
    assert calls == ["build", "use"]
    assert len(server.bodies[0]["RequestItems"]["t"]) == 8


def test_a_raw_item_built_without_its_attributes_is_parsed_when_one_is_asked_for():
    raw = fastwrite.RawItem(b'{"Item":{"pk":{"S":"a"},"n":{"N":"2"}}}', "line 3")
    assert raw["pk"] == {"S": "a"} and raw["n"] == {"N": "2"}
    with pytest.raises(BadInput, match=r"line 3\.pk"):
        _ = fastwrite.RawItem(b'{"Item":{"pk":{"B":"not base64!"}}}', "line 3")["pk"]


def test_a_raw_item_shows_at_most_80_bytes_of_its_line():
    """An item may be 400 KiB: its repr (in logs and failures) shows the start of the line only."""
    line = b'{"Item":{"pk":{"S":"' + b"x" * 1000 + b'"}}}'
    assert repr(fastwrite.RawItem(line, "x")) == f"RawItem({line[:80]!r}...)"


def test_a_line_of_exactly_the_largest_item_size_is_sent_unparsed_one_byte_more_is_parsed(tmp_path):
    head, tail = b'{"Item":{"pk":{"S":"a"},"v":{"S":"', b'"}}}'
    exact = head + b"x" * (MAX_ITEM_BYTES - len(head) - len(tail)) + tail
    assert len(exact) == MAX_ITEM_BYTES
    path = tmp_path / "big.json"
    path.write_bytes(exact + b"\n" + exact.replace(b'"a"', b'"ab"') + b"\n")
    part = PartRef(
        id="big", url=str(path), dialect="item", items=2, sha256=hashlib.sha256(path.read_bytes()).hexdigest()
    )
    first, second = fastwrite.read_part(part)
    assert first.wire is not None and first._item is None
    assert second.wire is None and second._item is not None and second["pk"] == {"S": "ab"}


def test_a_line_not_in_compact_form_is_returned_parsed_and_a_bad_one_named(tmp_path):
    path = tmp_path / "spaced.json"
    path.write_bytes(
        b'{"Item": {"pk": {"S": "a"}}}\n{"Item":{"pk":{"S":"b"}}}\n{"Item": {"pk": {"B": "not base64!"}}}\n'
    )
    part = PartRef(id="spaced", url=str(path), dialect="item", sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    read = fastwrite.read_part(part)
    assert next(read) == {"pk": {"S": "a"}}  # a plain item: botocore serializes it
    assert isinstance(next(read), fastwrite.RawItem)
    with pytest.raises(BadInput, match=r"spaced\.json line 3\.pk"):
        next(read)


class FakeS3:
    """get_object from a dict; a restore must read through the client it was given."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects, self.gets = objects, 0

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.gets += 1
        body = io.BytesIO(self.objects[f"s3://{Bucket}/{Key}"])

        class Body:
            def iter_chunks(self, size: int) -> Any:
                return iter(lambda: body.read(size), b"")

            def read(self, size: int = -1) -> bytes:
                return body.read(size)

            def close(self) -> None:
                pass

        return {"Body": Body()}


@pytest.fixture
def no_shared_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    def shared(*_: Any, **__: Any) -> Any:
        raise AssertionError("the shared S3 client was used instead of the one given")

    monkeypatch.setattr("ddb_backup.aws.clients.client", shared)


def test_parts_in_s3_are_read_through_the_client_given_from_the_start_asked(tmp_path, no_shared_s3):
    items = realistic(3)
    part = make_part(tmp_path, items)
    typed = b"".join(json.dumps(item_to_wire(i)).encode() + b"\n" for i in items)
    s3 = FakeS3({"s3://b/item.json.gz": Path(part.url).read_bytes(), "s3://b/typed.json": typed})
    in_s3 = PartRef(**{**part.__dict__, "url": "s3://b/item.json.gz"})
    assert [dict(i) for i in fastwrite.read_part(in_s3, s3, start=6)] == items[6:]
    other = PartRef(id="typed", url="s3://b/typed.json", dialect="typed")
    assert list(fastwrite.read_part(other, s3, start=6)) == items[6:]
    assert s3.gets == 2


def test_a_sources_items_are_every_part_in_order_ready_to_send(tmp_path, no_shared_s3):
    first, second = realistic(2), [{"pk": {"S": f"second-{i}"}} for i in range(3)]
    (tmp_path / "1").mkdir()
    parts = [make_part(tmp_path / "1", first), make_part(tmp_path, second)]
    s3 = FakeS3({f"s3://b/{n}.json.gz": Path(p.url).read_bytes() for n, p in enumerate(parts)})
    source = Source(
        format="ddb-backup-v1",
        location="s3://b/",
        table="t",
        description=None,
        parts=[PartRef(**{**p.__dict__, "url": f"s3://b/{n}.json.gz"}) for n, p in enumerate(parts)],
        s3=s3,
    )
    server = FakeDynamoDB()
    ddb = fake_client(server)
    got = list(fastwrite.source_items(source, ddb))
    assert [dict(i) for i in got] == first + second
    ddb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": i}} for i in got[:25]]})
    assert len(server.bodies[0]["RequestItems"]["t"]) == 10
