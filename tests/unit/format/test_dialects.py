"""The line dialects one line at a time: item sizes as DynamoDB counts them, and each refusal's exact words."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddb_backup.errors import BadInput, UnknownFormat
from ddb_backup.format import dialects
from ddb_backup.format.dialects import MAX_ITEM_BYTES, is_item_line, item_size, looks_typed, parse_item


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ({"S": "aé"}, 3),  # UTF-8 bytes
        ({"N": "-0012.50"}, 4),  # significant digits 1250: 4 // 2 + 2
        ({"N": "7"}, 2),
        ({"B": b"\x00\x01\x02"}, 3),
        ({"BOOL": False}, 1),
        ({"NULL": True}, 1),
        ({"SS": ["a", "é"]}, 3),
        ({"NS": ["1", "12345"]}, 6),  # (1 // 2 + 2) + (5 // 2 + 2)
        ({"BS": [b"ab", b"c"]}, 3),
        ({"M": {"k": {"S": "ab"}, "": {"NULL": True}}}, 3 + (1 + 1 + 2) + (0 + 1 + 1)),
        ({"L": [{"S": "ab"}, {"BOOL": True}]}, 3 + (1 + 2) + (1 + 1)),
    ],
)
def test_each_attribute_type_is_sized_by_dynamodbs_rules(value: dict[str, Any], size: int) -> None:
    assert item_size({"éa": value}) == 3 + size  # the name's UTF-8 bytes, then the value's


def test_an_item_of_exactly_400_kb_is_taken_and_one_byte_more_is_refused_with_its_size() -> None:
    def line(text_bytes: int) -> bytes:
        return json.dumps({"a": {"S": "x" * text_bytes}}).encode()

    fits = MAX_ITEM_BYTES - 1  # the name "a" is the last byte
    assert MAX_ITEM_BYTES == 409600
    assert item_size(parse_item("typed", line(fits), "w")) == MAX_ITEM_BYTES
    message = r"^f line 2: item of 409601 bytes is larger than DynamoDB's 400 KB limit$"
    with pytest.raises(BadInput, match=message):
        parse_item("typed", line(fits + 1), "f line 2")


@pytest.mark.parametrize(
    ("dialect", "line", "message"),
    [
        ("item", b'{"Foo": 1, "Bar": 2}', r"""^w: expected \{"Item": \{\.\.\.\}\}, got \['Bar', 'Foo'\]$"""),
        ("local", b"[1]", r"""^w: expected \{"Item": \{\.\.\.\}\}, got list$"""),
        ("item", b'{"ddbBackupEnd": {"items": 1}}', r"expected \{\"Item\""),  # only a local file has end lines
        ("local", b'{"ddbBackupEnd": {"items": 1}}', r"^w: header or end line out of place$"),
        ("local", b'{"ddbBackupFile": 1}', r"^w: header or end line out of place$"),
        ("item", b'{"Item": {}}', r"^w: an item with no attributes \(a DynamoDB item holds at least its key\)$"),
        ("typed", b"{}", r"^w: an item with no attributes"),
        ("plain", b"{}", r"^w: an item with no attributes"),
        ("plain", b'{"id": {"S": "a"}}', r"^w: typed DynamoDB JSON in a file whose first line is plain JSON$"),
        ("plain", b'{"Item": {"id": {"S": "a"}}}', r"^w: typed DynamoDB JSON in a file whose first line is plain"),
        ("plain", b"[1]", r"^w: an item must be a JSON object, got list$"),
        ("plain", b'{"n": NaN}', r"^w: cannot be stored in DynamoDB: TypeError Float types are not supported"),
        ("plain", b"not json", r"^w: not a JSON line \("),
        ("item", b"not json", r"^w: not a JSON line \(Expecting value: line 1 column 1 \(char 0\)\)$"),
        ("typed", b"\xff", r"^w: not a JSON line \("),
    ],
)
def test_each_bad_line_is_refused_naming_where_and_what(dialect: str, line: bytes, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_item(dialect, line, "w")


def test_an_unknown_dialect_is_an_unknown_format_naming_it() -> None:
    with pytest.raises(UnknownFormat, match=r"^w: unknown line dialect 'xml'$"):
        parse_item("xml", b'{"Item": {"id": {"S": "a"}}}', "w")


def test_each_dialect_gives_the_same_client_form_item_and_plain_numbers_keep_every_digit() -> None:
    want = {"id": {"S": "a"}, "n": {"N": "1.000000000000000000001"}}
    typed = b'{"id": {"S": "a"}, "n": {"N": "1.000000000000000000001"}}'
    assert parse_item("item", b'{"Item": ' + typed + b"}", "w") == want
    assert parse_item("local", b'{"Item": ' + typed + b"}", "w") == want
    assert parse_item("typed", typed, "w") == want
    assert parse_item("plain", b'{"id": "a", "n": 1.000000000000000000001}', "w") == want


@pytest.mark.parametrize(
    ("doc", "typed"),
    [
        ({"a": {"S": "x"}, "b": {"NULL": True}}, True),
        ({}, False),
        ([{"S": "x"}], False),
        ({"a": {"S": "x", "N": "1"}}, False),
        ({"a": {"Q": "x"}}, False),
        ({"a": {}}, False),
        ({"a": {"S": "x"}, "b": "plain"}, False),
    ],
)
def test_only_an_object_of_typed_values_looks_typed(doc: Any, typed: bool) -> None:
    assert looks_typed(doc) is typed


@pytest.mark.parametrize(
    ("line", "item"),
    [(b'  {"Item": {}}', True), (b'{"Item" : {}}', False), (b'{"ddbBackupEnd": {}}', False), (b"", False)],
)
def test_an_item_line_is_told_by_its_first_eight_bytes(line: bytes, item: bool) -> None:
    assert is_item_line(line) is item


def test_plain_json_is_typed_by_boto3s_serializer_made_at_import() -> None:
    assert parse_item("plain", b'{"id": "a", "n": 1.5, "l": [true]}', "w") == {
        "id": {"S": "a"},
        "n": {"N": "1.5"},
        "l": {"L": [{"BOOL": True}]},
    }
    assert type(dialects._SERIALIZER).__name__ == "TypeSerializer"
