"""Which tables a run backs up exactly (ddb_backup.backup.exact): the default falls back to a plain scan."""

from __future__ import annotations

from typing import Any

import pytest

from ddb_backup.backup.exact import noter, too_slow
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


NEW_IMAGE = {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
#: A table the description gives no size for counts as empty: 0.25 read units (half a page, halved), so at
#: this read rate its scan is estimated at exactly 22 h, the most an exact backup may take (24 h less 2).
AT_THE_LIMIT = 0.25 / (22 * 3600)
TWO_TB = {"Table": {"TableName": "T", "ItemCount": 1, "TableSizeBytes": 2 * 10**12}}  # 33.1 h on one segment


def test_a_scan_estimated_at_exactly_the_limit_is_not_too_slow_and_a_sizeless_table_counts_as_empty() -> None:
    assert too_slow("T", {"Table": {"TableName": "T"}}, 4, AT_THE_LIMIT, 4) == ""


def test_a_scan_past_the_limit_is_too_slow_naming_its_hours_segments_and_read_rate() -> None:
    rate = 0.25 / 80111  # 80,111 s: 22.253 h, shown as 22.3
    assert too_slow("T", {"Table": {"TableName": "T"}}, 4, rate, 4) == (
        "table T: its scan is estimated at 22.3 h (4 segments, read rate 3.12067e-06), past the 22 h an exact "
        "backup has before the stream's 24 h retention trims the changes it must read; give more segments "
        "or a higher readRate (ddb-backup estimate shows the effect), or back up with consistent: false"
    )
    assert too_slow("T", {"Table": {"TableName": "T"}}, 4, 0.25 / (23 * 3600), 4).startswith(
        "table T: its scan is estimated at 23.0 h"
    )  # 23 h: past the limit, though inside the 24 h retention


def test_without_a_read_limit_the_scan_is_paced_by_the_segments_asked_for() -> None:
    assert too_slow("T", TWO_TB, 1, None, 4).startswith(
        "table T: its scan is estimated at 33.1 h (1 segments, no read limit), past the 22 h an exact backup"
    )
    assert too_slow("T", TWO_TB, 4, None, 4) == ""  # four segments at once: 8.3 h


def test_a_default_backup_of_a_table_too_large_for_the_retention_is_a_plain_one_with_the_reason() -> None:
    note = noter(FakeDynamoDB(stream=NEW_IMAGE), FakeStreams([Shard("shardId-1", start=1)]), None, 4)
    assert note is not None
    noted = note("T", {"Table": {**TWO_TB["Table"], "StreamSpecification": NEW_IMAGE}}, 1, None)
    assert noted == {"warning": too_slow("T", TWO_TB, 1, None, 4) + "; backed up without consistentAt (a plain scan)"}
    assert "(1 segments, no read limit)" in noted["warning"]
