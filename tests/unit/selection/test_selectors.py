"""ddb_backup.selection.selectors: the one reading of selectors the CLI and the restore machine share."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ddb_backup.events import RestoreRequest
from ddb_backup.selection import cost
from ddb_backup.selection.selectors import SelectorError, changes_filter, from_request, plan_note

SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH", "AttributeType": "S"},
    {"AttributeName": "sk", "KeyType": "RANGE", "AttributeType": "N"},
]


def _change(pk: str, sk: str) -> dict:
    return {"Keys": {"pk": {"S": pk}, "sk": {"N": sk}}, "event": "MODIFY"}


def test_the_machine_names_a_selector_as_its_request_does():
    select = from_request({"keys": ["pk=a,sk=1.0", "pk=b"], "keyPrefixes": ["pk=job-"]})
    assert select is not None
    select.bind(SCHEMA, "T")
    assert [s.label for s in select.selectors] == ["select.keys 'pk=a,sk=1.0'", "select.keys 'pk=b'", "select.keyPrefixes 'pk=job-'"]  # fmt: skip
    assert select.keeps(_change("a", "1")) and select.keeps(_change("b", "9")) and select.keeps(_change("job-7", "0"))
    assert not select.keeps(_change("a", "2")) and not select.keeps(_change("jo", "0"))
    with pytest.raises(SelectorError, match=r"select.keys 'sk=1': give the partition key pk"):
        bad = from_request({"keys": ["sk=1"]})
        assert bad is not None
        bad.bind(SCHEMA, "T")


def test_whole_partitions_are_named_for_a_query_and_nothing_else_is():
    select = from_request({"keys": ["pk=a", "pk=b"]})
    assert select is not None
    select.bind(SCHEMA, "T")
    assert select.partitions() == [{"S": "a"}, {"S": "b"}]
    for other in ({"keys": ["pk=a", "pk=b,sk=1"]}, {"keyPrefixes": ["pk=a"]}):
        chosen = from_request(other)
        assert chosen is not None
        chosen.bind(SCHEMA, "T")
        assert chosen.partitions() is None


def test_the_plans_note_reads_back_as_the_same_filter_of_changes():
    select = from_request({"keys": ["pk=a,sk=1"], "keyPrefixes": ["pk=z"]})
    assert select is not None
    select.bind(SCHEMA, "T")
    keep = changes_filter(plan_note(select, "T"))
    assert keep is not None and keep(_change("a", "1.00")) and keep(_change("zz", "3")) and not keep(_change("a", "3"))
    assert changes_filter(None) is None


@pytest.mark.parametrize(
    ("select", "says"),
    [
        ({}, "'select' takes 'keys', 'keyPrefixes' or 'keysFile'"),
        ({"keysFile": "/tmp/k.jsonl"}, "must be an s3:// URL"),
        ({"keys": ["pk=a"], "extra": 1}, "Extra inputs"),
    ],
)
def test_a_malformed_select_is_refused_at_the_door(select, says):
    with pytest.raises(ValidationError, match=says):
        RestoreRequest.model_validate({"source": "s3://b/p/", "table": "abc", "select": select})


def test_select_takes_one_table_written_not_imported():
    with pytest.raises(ValidationError, match="'select' restores some items of one table"):
        RestoreRequest.model_validate({"source": "s3://b/p/", "map": [{"from": "a-", "to": "b-"}], "select": {"keys": ["pk=a"]}})  # fmt: skip
    with pytest.raises(ValidationError, match="'select' restores some items of one table"):
        RestoreRequest.model_validate({"source": "s3://b/p/", "table": "abc", "method": "auto", "select": {"keys": ["pk=a"]}})  # fmt: skip
    doc = RestoreRequest.model_validate({"source": "s3://b/p/", "table": "abc", "select": {"keyPrefixes": ["pk=a"]}})
    assert doc.to_request()["select"] == {"keyPrefixes": ["pk=a"]}


def test_the_cost_of_reading_every_part_and_writing_the_matches():
    assert cost.write_units([1, 1024, 1025, 4000]) == 1 + 1 + 2 + 4
    assert cost.read_units(4097) == 2 and cost.read_units(10, consistent=False) == 0.5
