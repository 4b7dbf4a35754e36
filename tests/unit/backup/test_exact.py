"""Which tables a run backs up exactly (ddb_backup.backup.exact): the default falls back to a plain scan."""

from __future__ import annotations

from typing import Any

import pytest

from ddb_backup.backup.exact import noter
from ddb_backup.errors import BadInput
from tests.helpers.aws import FakeDynamoDB, FakeStreams, Shard

KEYS_ONLY = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}


def _description(stream: dict[str, Any] | None) -> dict[str, Any]:
    table: dict[str, Any] = {"TableName": "T", "ItemCount": 10, "TableSizeBytes": 1000}
    if stream is not None:
        table["StreamSpecification"] = stream
    return {"Table": table}


@pytest.mark.parametrize("stream", [KEYS_ONLY, None], ids=["keys-only stream", "no stream"])
def test_a_default_backup_of_a_table_without_a_stream_of_new_images_is_a_plain_one(stream: Any) -> None:
    note = noter(FakeDynamoDB(stream=stream), FakeStreams([Shard("shardId-1", start=1)]), None, 4)
    assert note is not None
    assert note("T", _description(stream), 4, None) is None


def test_an_exact_backup_asked_of_a_keys_only_stream_is_refused_saying_how_to_enable_one() -> None:
    note = noter(FakeDynamoDB(stream=KEYS_ONLY), FakeStreams([Shard("shardId-1", start=1)]), True, 4)
    assert note is not None
    with pytest.raises(BadInput, match=r"table T has KEYS_ONLY: .*StreamViewType=NEW_AND_OLD_IMAGES"):
        note("T", _description(KEYS_ONLY), 4, None)


def test_a_default_backup_of_a_table_with_a_stream_of_new_images_notes_its_position() -> None:
    images = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    note = noter(FakeDynamoDB(stream=images), FakeStreams([Shard("shardId-1", start=1)]), None, 4)
    assert note is not None
    noted = note("T", _description(images), 4, None)
    assert noted is not None and noted["stream"]["shards"] == ["shardId-1"]
