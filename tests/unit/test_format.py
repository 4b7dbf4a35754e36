"""Backup line format: DynamoDB's own export lines, lossless for every type."""

from __future__ import annotations

import gzip
import json

import pytest

from ddb_backup import names
from ddb_backup.errors import BadInput
from ddb_backup.format import ddbjson, layout
from ddb_backup.format.parts import PartBuffer

ALL_TYPES = {
    "pk": {"S": "granule-1"},
    "n": {"N": "12345678901234567890123456789012345678"},
    "small": {"N": "-1.2345678901234567890123456789012345678E-130"},
    "b": {"B": b"\x00\xff\x10binary"},
    "ss": {"SS": ["a", "é", ""]},
    "ns": {"NS": ["1", "2.5", "-3E+10"]},
    "bs": {"BS": [b"\x00", b"\x01\x02"]},
    "m": {"M": {"inner": {"B": b"\x7f"}, "list": {"L": [{"BS": [b"x"]}, {"M": {}}]}}},
    "l": {"L": [{"S": ""}, {"NULL": True}, {"BOOL": False}]},
    "t": {"BOOL": True},
    "nul": {"NULL": True},
    "empty": {"S": ""},
    "unicode": {"S": '中文 \u2028 "quotes" \\ \n'},
}


def test_a_line_is_dynamodb_export_json_with_base64_binary():
    line = ddbjson.line_from_client_item({"pk": {"S": "a"}, "b": {"B": b"\x00\x01\x02"}})
    assert line == b'{"Item":{"pk":{"S":"a"},"b":{"B":"AAEC"}}}\n'


def test_every_type_round_trips_exactly():
    line = ddbjson.line_from_client_item(ALL_TYPES)
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    assert ddbjson.parse_line(line, "x") == ALL_TYPES


def test_numbers_keep_all_38_digits_as_text():
    line = ddbjson.line_from_client_item({"n": {"N": "0.12345678901234567890123456789012345678"}})
    assert json.loads(line)["Item"]["n"]["N"] == "0.12345678901234567890123456789012345678"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "not a JSON line"),
        (b'{"item": {}}', "expected"),
        (b'{"Item": {"a": {"S": 1}}}', "item.a: S value must be a string"),
        (b'{"Item": {"a": {"X": "1"}}}', "unknown DynamoDB type 'X'"),
        (b'{"Item": {"a": {"B": "***"}}}', "invalid base64"),
        (b'{"Item": {"a": {"S": "x", "N": "1"}}}', "one type key"),
        (b'{"Item": {"a": {"SS": []}}}', "non-empty list"),
        (b'{"Item": {"a": {"NULL": false}}}', "NULL value must be true"),
        (b'{"Item": {"m": {"M": {"x": {"BOOL": "yes"}}}}}', "item.m.x: BOOL"),
    ],
)
def test_bad_lines_are_refused_naming_the_problem(line, message):
    with pytest.raises(BadInput, match=message):
        ddbjson.parse_line(line, "item")


def test_a_part_buffer_is_gzip_of_the_lines():
    buf = PartBuffer(level=1)
    lines = [ddbjson.line_from_client_item({"pk": {"S": str(i)}}) for i in range(1000)]
    buf.add(lines[:500])
    buf.add(lines[500:])
    assert buf.items == 1000
    assert buf.uncompressed_bytes == sum(map(len, lines))
    assert gzip.decompress(buf.finish()) == b"".join(lines)


def test_backup_ids_sort_by_time():
    import datetime as dt

    early = names.new_backup_id(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    late = names.new_backup_id(dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.UTC))
    assert early.startswith("20260102T030405Z-") and early < late
    assert names.check_backup_id(late) == late
    with pytest.raises(BadInput):
        names.check_backup_id("../../etc")


@pytest.mark.parametrize("key", ["../x.json.gz", "data/../../x", "/data/x", "manifest.json", "data//x", "data\\x"])
def test_manifest_keys_outside_the_backup_are_refused(key):
    with pytest.raises(BadInput, match="outside"):
        layout.check_relative_key(key, "manifest")


def test_part_keys_are_inside_data():
    assert layout.check_relative_key(layout.part_key(3, 12), "m") == "data/000003-000012.json.gz"
