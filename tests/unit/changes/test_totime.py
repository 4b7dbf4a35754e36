"""Restore to a time (ddb_backup.changes.totime): the archive's reach, proved per shard on the stream."""

from __future__ import annotations

import datetime as dt

import pytest

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive
from ddb_backup.changes.totime import changes_to, check_reach, newest_exact, parse_time, unarchived
from ddb_backup.errors import BadInput
from tests.helpers.aws import T0, FakeS3, FakeStreams, Shard, record

B, DIR, ARN = "bkt", "p/T/", "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-12-01T00:00:00.000"
SEQ = 300000000000000000000


def _stream() -> tuple[FakeS3, FakeStreams]:
    """Shard ahead archived to its last change (T0+9 s); shard behind holds changes at T0+2 s and T0+5 s, the
    first archived, the second not: Lambda reads shards concurrently."""
    s3 = FakeS3()
    ahead = [record(SEQ + n, T0 + dt.timedelta(seconds=n), f"a{n}", "v") for n in range(10)]
    behind = [record(SEQ + 100 + n, T0 + dt.timedelta(seconds=2 + 3 * n), f"b{n}", "v") for n in range(2)]
    streams = FakeStreams([Shard("shardId-ahead", SEQ, ahead), Shard("shardId-behind", SEQ + 100, behind)], empty=2)
    archive.start_archive(s3, B, DIR, "T", ARN, T0 - dt.timedelta(hours=1))
    for changes in ([{**_change(r), "shard": "shardId-ahead"} for r in ahead], [_change(behind[0], "behind")]):
        archive.append(s3, B, DIR, changes)
    return s3, streams


def _change(r: dict, shard: str = "ahead") -> dict:
    body = r["dynamodb"]
    return {"seq": body["SequenceNumber"], "shard": f"shardId-{shard}", "time": body["ApproximateCreationDateTime"].isoformat(),
            "event": "MODIFY", "Keys": {}, "NewImage": {}}  # fmt: skip


def test_a_time_after_a_change_one_shard_has_not_delivered_is_refused_naming_that_shard() -> None:
    s3, streams = _stream()
    why = unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=6))
    assert why and "shardId-behind" in why and "has not received yet" in why


def test_a_time_before_every_undelivered_change_is_covered_though_another_shard_ran_ahead() -> None:
    s3, streams = _stream()
    assert unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=4, microseconds=999999)) is None


def test_a_shard_never_archived_is_read_from_its_trim_horizon() -> None:
    s3, streams = _stream()
    streams.shards.append(Shard("shardId-new", SEQ + 200, [record(SEQ + 200, T0 + dt.timedelta(seconds=1), "n", "v")]))
    why = unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=1))
    assert why and "shardId-new" in why


OLD, NEW = "20261201T080000Z-00000001", "20261201T100000Z-00000002"


def _backups(s3: FakeS3) -> None:
    """Two exact backups of T (consistent at T0-2h and T0), a plain one between them, and stray names beside them."""
    for backup_id, consistent in ((OLD, T0 - dt.timedelta(hours=2)), (NEW, T0)):
        entry = archive.put_changes(
            s3, B, f"{DIR}{backup_id}/changes/000000.jsonl.gz", [_change(record(SEQ, consistent, "c", backup_id))]
        )
        entry["key"] = entry["key"][len(f"{DIR}{backup_id}/") :]
        manifest = {"backupId": backup_id, "consistentAt": consistent.isoformat(), "changes": [entry]}
        put_json(s3, B, f"{DIR}{backup_id}/manifest.json", manifest)
    put_json(s3, B, f"{DIR}20261201T090000Z-00000003/manifest.json", {"backupId": "plain"})
    put_json(s3, B, f"{DIR}not-a-backup/manifest.json", {"consistentAt": T0.isoformat()})
    put_json(s3, B, f"{DIR}20261201T110000Z-00000004/other.json", {})  # no manifest (a backup being written)


def test_a_time_given_as_text_is_utc_when_naive_and_refused_naming_the_form_when_not_a_time() -> None:
    assert parse_time("2026-12-01T10:00:00Z") == T0 and parse_time("2026-12-01T10:00:00") == T0
    assert parse_time("2026-12-01T05:00:00-05:00") == T0
    with pytest.raises(BadInput, match=r"^--to-time 'noon' is not an ISO time such as 2026-12-01T10:00:00Z$"):
        parse_time("noon")


def test_the_newest_exact_backup_consistent_at_or_before_the_time_is_chosen() -> None:
    s3 = FakeS3()
    _backups(s3)
    assert newest_exact(s3, B, DIR, T0)[0] == f"{DIR}{NEW}/"  # consistent exactly at the time
    directory, manifest = newest_exact(s3, B, DIR, T0 - dt.timedelta(microseconds=1))
    assert directory == f"{DIR}{OLD}/" and manifest["backupId"] == OLD
    when = T0 - dt.timedelta(hours=3)
    with pytest.raises(BadInput) as refused:
        newest_exact(s3, B, DIR, when)
    assert str(refused.value) == (
        f"s3://{B}/{DIR}: no exact backup consistent at or before {when.isoformat()}; "
        f"the earliest is consistent at {(T0 - dt.timedelta(hours=2)).isoformat()}"
    )
    with pytest.raises(
        BadInput, match=r": no exact backup consistent at or before .*: make one with backup --consistent$"
    ):
        newest_exact(FakeS3(), B, DIR, T0)


def test_changes_to_the_backups_moment_are_its_own_and_later_ones_add_the_archives() -> None:
    s3, _ = _stream()
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    assert [(c["seq"], c["time"]) for c in changes_to(s3, B, DIR, manifest, T0)] == [(str(SEQ), T0.isoformat())]
    later = changes_to(s3, B, DIR, manifest, T0 + dt.timedelta(seconds=2))
    assert [c["seq"] for c in later] == [str(SEQ), *(str(SEQ + n) for n in range(10)), str(SEQ + 100)]


def test_the_reach_to_the_backups_own_moment_needs_no_archive() -> None:
    s3 = FakeS3()
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    check_reach(None, s3, B, DIR, manifest, T0)  # no archive, no stream: nothing to prove


def test_a_reach_past_an_archive_that_does_not_exist_or_began_later_is_refused_naming_both_moments() -> None:
    s3 = FakeS3()
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    when = T0 + dt.timedelta(seconds=1)
    with pytest.raises(BadInput) as refused:
        check_reach(FakeStreams([]), s3, B, DIR, manifest, when)
    assert str(refused.value) == (
        f"s3://{B}/{DIR}changes/: the change archive does not exist, after the newest exact backup before "
        f"{when.isoformat()} (consistent at {T0.isoformat()})"
    )
    archive.start_archive(s3, B, DIR, "T", ARN, T0 + dt.timedelta(microseconds=1))
    with pytest.raises(
        BadInput, match=r"changes/: the change archive begins at 2026-12-01T10:00:00.000001\+00:00, after"
    ):
        check_reach(FakeStreams([]), s3, B, DIR, manifest, when)


def test_a_reach_the_archive_holds_passes_and_one_it_has_not_received_is_refused_saying_to_wait() -> None:
    s3, streams = _stream()
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    check_reach(streams, s3, B, DIR, manifest, T0 + dt.timedelta(seconds=4))  # an archive begun at T0 exactly
    with pytest.raises(
        BadInput, match=r"changes/: the change archive does not reach .*shardId-behind.*; wait a minute"
    ):
        check_reach(streams, s3, B, DIR, manifest, T0 + dt.timedelta(seconds=6))


def test_a_reach_across_a_recorded_gap_is_refused_naming_it_and_the_times_around_it() -> None:
    s3, streams = _stream()
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    archive.record_gap(
        s3, B, DIR, "shardId-x", (T0 + dt.timedelta(seconds=1)).isoformat(), "2026-12-01T10:00:03+00:00", "trimmed"
    )
    when = T0 + dt.timedelta(seconds=4)
    with pytest.raises(BadInput) as refused:
        check_reach(streams, s3, B, DIR, manifest, when)
    assert str(refused.value) == (
        f"{when.isoformat()}: the changes from 2026-12-01T10:00:01+00:00 to 2026-12-01T10:00:03+00:00 on shardId-x "
        "may be missing (trimmed); restore to a time before 2026-12-01T10:00:01+00:00, or after a later exact backup"
    )
