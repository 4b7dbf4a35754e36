"""The local stack's S3 lifecycle (devkit.strict.lifecycle) acts when S3 would: at midnight UTC after N days."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from devkit.strict.clock import WallClock
from devkit.strict.lifecycle import StrictLifecycle, api_rules, configure_bucket, due, lifecycle_patches

BUCKET = "lifecycle-test"
DAY0 = dt.datetime(2026, 11, 1, 15, 30, tzinfo=dt.UTC)


@pytest.fixture
def clock(aws: None) -> Iterator[WallClock]:
    clock = WallClock(DAY0)
    patches = [*clock.patches(), *lifecycle_patches()]
    for patch in patches:
        patch.start()
    yield clock
    for patch in reversed(patches):
        patch.stop()


def bucket(rules: list[dict[str, Any]], *, versioned: bool = True) -> Any:
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    props: dict[str, Any] = {"LifecycleConfiguration": {"Rules": rules}}
    if versioned:
        props["VersioningConfiguration"] = {"Status": "Enabled"}
    configure_bucket(s3, BUCKET, props)
    return s3


def at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 1, hour, tzinfo=dt.UTC) + dt.timedelta(days=day)


def test_due_is_the_midnight_after_the_days():
    assert due(DAY0, 2) == at(3)  # Nov 3 15:30 -> Nov 4 00:00
    assert due(at(1), 2) == at(3)  # exactly midnight stays


def test_cloudformation_rules_become_the_api_form():
    [rule] = api_rules([{"Id": "r", "Status": "Enabled", "Prefix": "p/", "TagFilters": [{"Key": "k", "Value": "v"}],
                         "ExpirationInDays": 3, "NoncurrentVersionExpiration": {"NoncurrentDays": 7}}])  # fmt: skip
    assert rule["Filter"] == {"And": {"Prefix": "p/", "Tags": [{"Key": "k", "Value": "v"}]}}
    assert rule["Expiration"] == {"Days": 3} and rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}


def test_expiry_then_noncurrent_removal_then_the_lone_marker(clock):
    s3 = bucket(
        [
            {"Id": "e", "Status": "Enabled", "Prefix": "backups/", "ExpirationInDays": 2,
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            {"Id": "m", "Status": "Enabled", "Prefix": "backups/", "ExpiredObjectDeleteMarker": True},
        ]
    )  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="backups/a", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="other/a", Body=b"x")  # outside the prefix: never touched
    life = StrictLifecycle(s3, BUCKET)
    clock.set(at(3) - dt.timedelta(seconds=1))
    assert life.apply(clock.now()).counts()["expired"] == 0  # a second before the midnight it is due at
    clock.set(at(3, 0) + dt.timedelta(seconds=1))
    assert life.apply(clock.now()).expired == ["backups/a"]
    listing = s3.list_object_versions(Bucket=BUCKET, Prefix="backups/")
    assert (
        len(listing["Versions"]) == 1 and not listing["Versions"][0]["IsLatest"] and len(listing["DeleteMarkers"]) == 1
    )
    clock.set(at(4, 12))
    assert life.apply(clock.now()).counts()["noncurrentRemoved"] == 0  # noncurrent since 00:00:01: due at day 5
    clock.set(at(5))
    report = life.apply(clock.now())
    assert len(report.noncurrent_removed) == 1 and report.markers_removed == ["backups/a"]
    assert "Versions" not in s3.list_object_versions(Bucket=BUCKET, Prefix="backups/")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["other/a"]


def test_tag_filter_and_unversioned_delete(clock):
    s3 = bucket([{"Id": "t", "Status": "Enabled", "TagFilters": [{"Key": "kind", "Value": "tmp"}], "ExpirationInDays": 1}],
                versioned=False)  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="tmp", Body=b"x", Tagging="kind=tmp")
    s3.put_object(Bucket=BUCKET, Key="keep", Body=b"x", Tagging="kind=data")
    clock.set(at(2))
    assert StrictLifecycle(s3, BUCKET).apply(clock.now()).expired == ["tmp"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["keep"]
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=BUCKET)


def test_incomplete_multipart_uploads_are_aborted(clock):
    s3 = bucket([{"Id": "u", "Status": "Enabled", "Prefix": "", "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}])  # fmt: skip
    s3.create_multipart_upload(Bucket=BUCKET, Key="big")
    life = StrictLifecycle(s3, BUCKET)
    clock.set(at(2, 23))
    assert life.apply(clock.now()).uploads_aborted == []
    clock.set(at(3))
    assert life.apply(clock.now()).uploads_aborted == ["big"]
    assert not s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads")


def test_a_disabled_rule_does_nothing(clock):
    s3 = bucket([{"Id": "off", "Status": "Disabled", "Prefix": "", "ExpirationInDays": 1}])
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"x")
    clock.set(at(30))
    assert StrictLifecycle(s3, BUCKET).apply(clock.now()).counts()["expired"] == 0


def test_the_clock_is_the_process_s_only_while_it_runs():
    """A reference taken while the clock ran (a module imported then) reads real time once it stops."""
    import time

    clock = WallClock(DAY0)
    patches = clock.patches()
    for patch in patches:
        patch.start()
    try:
        kept_datetime, kept_time = dt.datetime, time.time
        assert kept_datetime.now(dt.UTC) - DAY0 < dt.timedelta(minutes=5) and isinstance(DAY0, dt.datetime)
        assert abs(kept_time() - DAY0.timestamp()) < 300
    finally:
        for patch in reversed(patches):
            patch.stop()
    assert abs(kept_time() - time.time()) < 5
    assert kept_datetime.now(dt.UTC) - dt.datetime.now(dt.UTC) < dt.timedelta(seconds=5)
