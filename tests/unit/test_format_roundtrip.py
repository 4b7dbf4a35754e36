"""Property: any item of any shape (all ten types, nested) survives every path restore reads, exactly."""

from __future__ import annotations

import gzip
import hashlib
import json
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddb_backup.format import ddbjson
from ddb_backup.format import sources as readers
from ddb_backup.format.lines import PartRef
from ddb_backup.format.localfile import write_local_file
from ddb_backup.format.parts import PartBuffer

names = st.text(min_size=1, max_size=12)
text = st.text(max_size=40)
binary = st.binary(max_size=40)
# DynamoDB numbers: up to 38 significant digits, exponent within -130..125.
numbers = st.builds(
    lambda digits, exp, neg: f"{'-' if neg else ''}{digits}E{exp}",
    st.integers(min_value=0, max_value=10**38 - 1).map(str),
    st.integers(min_value=-128, max_value=87),
    st.booleans(),
)
scalars = st.one_of(
    text.map(lambda s: {"S": s}),
    numbers.map(lambda n: {"N": n}),
    binary.map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(text, min_size=1, max_size=5, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=5, unique=True).map(lambda v: {"NS": v}),
    st.lists(binary, min_size=1, max_size=5, unique=True).map(lambda v: {"BS": v}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(names, inner, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=25,
)
items = st.dictionaries(names, values, min_size=1, max_size=8).map(lambda d: {"pk": {"S": "k"}, **d})

SETTINGS = settings(max_examples=80, deadline=None)
#: Paths through files add framing, not new values: fewer examples keep the suite fast.
FILE_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(item=items)
def test_a_backup_line_round_trips_every_type(item):
    line = ddbjson.line_from_client_item(item)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert ddbjson.parse_line(line, "x") == item


@FILE_SETTINGS
@given(batch=st.lists(items, min_size=1, max_size=6))
def test_a_verified_part_round_trips(tmp_path, batch):
    buf = PartBuffer(3)
    buf.add([ddbjson.line_from_client_item(i) for i in batch])
    body = buf.finish()
    path = tmp_path / "000000-000000.json.gz"
    path.write_bytes(body)
    part = PartRef("data/000000-000000.json.gz", str(path), "item", len(batch), hashlib.sha256(body).hexdigest())
    assert list(readers.read_part(part)) == batch


@FILE_SETTINGS
@given(batch=st.lists(items, min_size=1, max_size=6), gz=st.booleans())
def test_the_local_file_round_trips(tmp_path, batch, gz):
    path = Path(tmp_path) / ("T.json.gz" if gz else "T.json")
    write_local_file(path, batch, table="T", description=None, replace=True)  # one tmp_path for every example
    source = readers.open_source(str(path))
    assert source.format == "local-file" and list(source.items()) == batch


@FILE_SETTINGS
@given(batch=st.lists(items, min_size=1, max_size=6))
def test_a_cumulus_typed_file_round_trips(tmp_path, batch):
    path = Path(tmp_path) / "T.json"
    path.write_text("".join(json.dumps(ddbjson.item_to_wire(i)) + "\n" for i in batch))
    source = readers.open_source(str(path))
    assert source.parts[0].dialect == "typed" and list(source.items()) == batch


# Plain JSON holds no sets and no binary; numbers are whatever JSON can write.
plain_values = st.recursive(
    st.one_of(
        text,
        st.booleans(),
        st.none(),
        st.integers(min_value=-(10**37), max_value=10**37),
        st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(names, inner, max_size=4)),
    max_leaves=25,
)


def _plain_expected(value):
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, Decimal)):
        return {"N": str(Decimal(str(value)))}
    if isinstance(value, list):
        return {"L": [_plain_expected(v) for v in value]}
    return {"M": {k: _plain_expected(v) for k, v in value.items()}}


@FILE_SETTINGS
@given(docs=st.lists(st.dictionaries(names, plain_values, max_size=6), min_size=1, max_size=5))
def test_a_cumulus_plain_file_converts_exactly_keeping_every_digit(tmp_path, docs):
    docs = [{"pk": "k", **d} for d in docs]
    path = Path(tmp_path) / "T.json"
    path.write_text("".join(_dumps(d) + "\n" for d in docs))
    source = readers.open_source(str(path))
    assert source.parts[0].dialect == "plain"
    assert list(source.items()) == [{k: _plain_expected(v) for k, v in d.items()} for d in docs]


def _dumps(value) -> str:
    """JSON text with each Decimal written as the exact number it is (json.dumps cannot)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def test_gzip_of_a_part_is_plain_gzip():
    buf = PartBuffer(3)
    buf.add([ddbjson.line_from_client_item({"pk": {"S": "x"}})])
    assert gzip.decompress(buf.finish()) == b'{"Item":{"pk":{"S":"x"}}}\n'
