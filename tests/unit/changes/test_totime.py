"""Restore to a time (ddb_backup.changes.totime): the archive's reach, proved per shard on the stream."""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any

import pytest

from ddb_backup.aws.s3io import put_json
from ddb_backup.changes import archive
from ddb_backup.changes.totime import changes_to, check_reach, newest_exact, unarchived
from ddb_backup.errors import BadInput
from ddb_backup.names import parse_time
from tests.helpers.aws import T0, FakeS3, FakeStreams, Shard, error, record

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


def test_a_run_of_empty_pages_before_an_undelivered_change_does_not_prove_the_shard_archived() -> None:
    # AWS may answer several empty pages before a shard's next record; 5 in a row once ended this proof
    s3, streams = _stream()
    streams.empty = 8
    why = unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=6))
    assert why and "shardId-behind" in why


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
    opt = "--to-time"
    assert parse_time("2026-12-01T10:00:00Z", opt) == T0 and parse_time("2026-12-01T10:00:00", opt) == T0
    assert parse_time("2026-12-01T05:00:00-05:00", opt) == T0
    with pytest.raises(BadInput, match=r"^--to-time 'noon' is not an ISO 8601 time such as 2026-12-01T10:00:00Z$"):
        parse_time("noon", opt)


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


class _OneStream(FakeStreams):
    """Streams that answer only for the archive's own stream (another ARN is not found, as on AWS), on a clock
    fixed at ``now`` (the Date header)."""

    def __init__(self, shards: list[Shard], now: dt.datetime, **kw: Any) -> None:
        super().__init__(shards, **kw)
        self.now = now

    def _check(self, arn: str) -> None:
        if arn != ARN:
            raise error("ResourceNotFoundException", "DescribeStream")

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "", **kw: Any) -> dict[str, Any]:
        self._check(StreamArn)
        answer = super().describe_stream(StreamArn, ExclusiveStartShardId, **kw)
        answer["ResponseMetadata"]["HTTPHeaders"]["date"] = email.utils.format_datetime(self.now, usegmt=True)
        return answer

    def get_shard_iterator(self, StreamArn: str, **kw: Any) -> dict[str, Any]:
        self._check(StreamArn)
        return super().get_shard_iterator(StreamArn, **kw)


def _one_stream(now: dt.datetime) -> tuple[FakeS3, _OneStream]:
    s3, streams = _stream()
    return s3, _OneStream(streams.shards, now, empty=2)


def test_a_time_dynamodbs_clock_has_not_passed_is_not_yet_archived() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(seconds=4))
    assert unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=4)) == (
        "2026-12-01T10:00:04+00:00 is not yet past on DynamoDB's clock"
    )
    assert unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=3, microseconds=999999)) is None


def test_the_archives_own_stream_is_read_and_a_shard_behind_is_named_saying_where_to_look() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(hours=1))
    assert unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=6)) == (
        "shard shardId-behind holds a change of 2026-12-01T10:00:05+00:00 the archive has not received yet "
        "(the archiver is behind: see its IteratorAge)"
    )


def test_only_each_shards_first_page_of_records_is_read() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(hours=1))
    archive.save_state(s3, B, DIR, "shardId-ahead", seq=str(SEQ + 1))  # eight changes past it, four pages
    assert unarchived(streams, s3, B, DIR, T0) is None  # the first page's change is past the time: covered
    assert streams.get_records_calls == 2 * 3  # each of the two shards: two empty pages, then its first records


def test_a_shard_the_archive_read_to_its_end_is_not_read_again() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(hours=1))
    archive.save_state(s3, B, DIR, "shardId-ahead", seq=str(SEQ + 1), closed=True)  # as if the rest were archived
    archive.save_state(s3, B, DIR, "shardId-behind", closed=True)
    assert unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=6)) is None
    assert streams.get_records_calls == 0


def test_a_closed_shard_listed_first_does_not_end_the_check_of_the_others() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(hours=1))
    archive.save_state(s3, B, DIR, "shardId-ahead", closed=True)
    why = unarchived(streams, s3, B, DIR, T0 + dt.timedelta(seconds=6))
    assert why is not None and why.startswith("shard shardId-behind holds a change of 2026-12-01T10:00:05+00:00")


def test_an_archive_that_does_not_name_its_stream_says_how_to_get_it_named() -> None:
    s3 = FakeS3()
    put_json(s3, B, f"{DIR}changes/_archive.json", {"table": "T", "coveredFrom": T0.isoformat()})  # an older archiver
    assert unarchived(FakeStreams([]), s3, B, DIR, T0) == (
        "the archive does not name its stream yet (an earlier version started it): wait for the archiver's "
        "next batch, or run ddb-backup changes follow once"
    )


def test_the_changes_since_the_backups_changes_from_are_read_from_the_archive() -> None:
    s3 = FakeS3()
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    manifest["changesFrom"] = (T0 - dt.timedelta(seconds=10)).isoformat()
    early = record(SEQ + 50, T0 - dt.timedelta(seconds=8), "e", "v")
    archive.append(s3, B, DIR, [_change(early)])  # a file from before consistentAt, after changesFrom
    assert str(SEQ + 50) in [c["seq"] for c in changes_to(s3, B, DIR, manifest, T0 + dt.timedelta(seconds=1))]


def test_an_archive_begun_at_the_backups_moment_reaches_past_it() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(hours=1))
    s3.objects = {k: v for k, v in s3.objects.items() if not k[1].endswith("_archive.json")}
    archive.start_archive(s3, B, DIR, "T", ARN, T0)
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    check_reach(streams, s3, B, DIR, manifest, T0 + dt.timedelta(seconds=1))


def test_a_reach_the_archive_has_not_received_is_refused_saying_to_wait_or_pick_an_earlier_time() -> None:
    s3, streams = _one_stream(T0 + dt.timedelta(hours=1))
    _backups(s3)
    _, manifest = newest_exact(s3, B, DIR, T0)
    with pytest.raises(BadInput) as refused:
        check_reach(streams, s3, B, DIR, manifest, T0 + dt.timedelta(seconds=6))
    assert str(refused.value).endswith(
        "(the archiver is behind: see its IteratorAge); wait a minute and try again, or pick an earlier time"
    )
