"""The leaf of rules: one home for ids, names, keys, S3 URLs, times, durations and the Lambda deadline."""

import datetime as dt

import pytest

from ddb_backup import names
from ddb_backup.errors import BadInput


def test_a_backup_id_carries_the_time_it_was_made():
    when = dt.datetime(2026, 11, 22, 3, 0, 0, tzinfo=dt.UTC)
    backup_id = names.new_backup_id(when)
    assert names.is_backup_id(backup_id)
    assert names.backup_id_time(backup_id) == when
    with pytest.raises(ValueError):
        names.backup_id_time("changes")


def test_a_run_id_is_one_path_segment_of_safe_characters():
    assert names.is_run_id("20261122T030000Z-1a2b3c4d")
    assert names.is_run_id("my-execution_1.2")
    assert not names.is_run_id(None)
    assert not names.is_run_id("a/b")
    assert not names.is_run_id("x" * 81)


@pytest.mark.parametrize(
    ("url", "parts"),
    [("s3://b/some/prefix", ("b", "some/prefix")), ("s3://b", ("b", "")), ("s3://b/", ("b", ""))],
)
def test_an_s3_url_splits_into_bucket_and_key(url, parts):
    assert names.split_s3_url(url) == parts


@pytest.mark.parametrize(("url", "said"), [("bucket/x", "is not an s3:// URL"), ("s3:///x", "names no bucket")])
def test_a_url_that_names_no_bucket_is_refused(url, said):
    with pytest.raises(BadInput, match=said):
        names.split_s3_url(url)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-12-01T10:00:00Z", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),
        ("2026-12-01T10:00:00", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),  # naive means UTC
        ("2026-12-01T12:00:00+02:00", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),
    ],
)
def test_a_time_is_iso_8601_with_any_offset(text, utc):
    assert names.parse_time(text, "--to-time") == utc


def test_a_time_that_is_not_iso_names_the_option():
    with pytest.raises(BadInput, match="--time 'yesterday' is not an ISO 8601 time"):
        names.parse_time("yesterday", "--time")


def test_the_lambda_deadline_keeps_a_reserve_before_the_timeout_and_stops_at_the_budget():
    assert names.lambda_seconds_left(lambda: 70_000) == 40.0
    assert names.deadline_from(lambda: 70_000, budget_s=600)() <= 40.0
    assert names.deadline_from(lambda: 900_000, budget_s=5)() <= 5.0
