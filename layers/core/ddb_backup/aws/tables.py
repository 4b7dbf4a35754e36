"""Table administration shared by backups, restores and AWS-native backups.

Describe a table (:func:`describe_table`, or everything needed to recreate
it: :func:`describe`), wait until it is ACTIVE (:func:`wait_active`), and give
it back the settings a restore or CreateTable leaves out (:func:`reapply_settings`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup import names
from ddb_backup.aws.retry import NOT_READY_CODES, NotReady, Retry, call_until_ready, call_with_backoff, error_code
from ddb_backup.errors import DdbBackupError, TableNotFound

#: Answers that mean "no such table".
MISSING_CODES = frozenset({"ResourceNotFoundException", "TableNotFoundException"})

#: What AWS restores (from a backup or a point in time) drop.
RESTORE_DROPS = ("tags", "ttl", "stream", "pitr")
#: What CreateTable cannot take.
CREATE_TABLE_LACKS = ("ttl", "pitr")


class NotActive(DdbBackupError):
    """A table did not become ACTIVE (indexes and restore done) in the time allowed."""

    def __init__(self, table: str, status: str, restoring: bool) -> None:
        super().__init__(f"table {table} is {status}{' (restoring)' if restoring else ''}")
        self.table, self.status, self.restoring = table, status, restoring


def describe_table(ddb: Any, name: str) -> dict[str, Any] | None:
    """DescribeTable's ``Table`` (throttling retried), or None when there is no such table."""
    try:
        return dict(call_with_backoff(ddb.describe_table, TableName=name)["Table"])
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def _tag_pages(ddb: Any, arn: str) -> Iterator[dict[str, Any]]:
    kwargs: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = ddb.list_tags_of_resource(**kwargs)
        yield page
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def describe(ddb: Any, table: str) -> dict[str, Any]:
    """Everything needed to recreate ``table``: DescribeTable, TTL, continuous backups, tags."""
    names.check_table_name(table)
    desc = describe_table(ddb, table)
    if desc is None:
        raise TableNotFound(f"table {table!r} does not exist")
    ttl = ddb.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    try:
        backups = ddb.describe_continuous_backups(TableName=table).get("ContinuousBackupsDescription", {})
    except ClientError:
        backups = {}
    tags: list[dict[str, str]] = []
    for page in _tag_pages(ddb, desc["TableArn"]):
        tags.extend(page.get("Tags", []))
    return dict(_jsonable({"Table": desc, "TimeToLive": ttl, "ContinuousBackups": backups, "Tags": tags}))


def is_active(desc: dict[str, Any] | None) -> bool:
    """ACTIVE, every global index ACTIVE, and no restore in progress."""
    if not desc or desc.get("TableStatus") != "ACTIVE":
        return False
    if desc.get("RestoreSummary", {}).get("RestoreInProgress", False):
        return False
    return all(g.get("IndexStatus", "ACTIVE") == "ACTIVE" for g in desc.get("GlobalSecondaryIndexes") or [])


def wait_active(ddb: Any, table: str, retry: Retry) -> dict[str, Any]:
    """Wait until ``table`` is active (see :func:`is_active`); returns its description, raises :class:`NotActive`."""
    attempt = 0
    while True:
        desc = describe_table(ddb, table)
        if desc is not None and is_active(desc):
            return desc
        pause = retry.delay(attempt)
        if pause > retry.left():
            status = desc.get("TableStatus", "?") if desc else "missing"
            restoring = bool(desc and desc.get("RestoreSummary", {}).get("RestoreInProgress", False))
            raise NotActive(table, str(status), restoring)
        retry.sleep(pause)
        attempt += 1


@dataclass
class Reapplied:
    """What :func:`reapply_settings` did: one phrase per setting applied, and the settings still refused."""

    done: list[str] = field(default_factory=list)
    #: setting ("tags", "ttl", "stream", "pitr") -> the last "not yet" answer
    pending: dict[str, BaseException] = field(default_factory=dict)


@dataclass
class _Copy:
    ddb: Any
    source: dict[str, Any]
    target: str
    retry: Retry
    out: Reapplied

    def call(self, setting: str, fn: Any, /, **kwargs: Any) -> bool:
        """``fn(**kwargs)`` until ready; False (and the setting pending) when it is still "not yet" at the end."""
        try:
            call_until_ready(self.retry, fn, **kwargs)
        except (ClientError, NotReady) as exc:
            if isinstance(exc, ClientError) and error_code(exc) not in NOT_READY_CODES:
                raise
            self.out.pending[setting] = exc
            return False
        return True

    def tags(self, desc: dict[str, Any]) -> None:
        tags = [t for t in self.source.get("Tags") or [] if not t["Key"].startswith("aws:")]
        for i in range(0, len(tags), 50):
            if not self.call("tags", self.ddb.tag_resource, ResourceArn=desc["TableArn"], Tags=tags[i : i + 50]):
                return
        if tags:
            self.out.done.append(f"{len(tags)} tag(s)")

    def ttl(self, desc: dict[str, Any]) -> None:
        ttl = self.source.get("TimeToLive") or {}
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or not ttl.get("AttributeName"):
            return
        have = self.ddb.describe_time_to_live(TableName=self.target).get("TimeToLiveDescription", {})
        if have.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            spec = {"Enabled": True, "AttributeName": ttl["AttributeName"]}
            if not self.call("ttl", self.ddb.update_time_to_live, TableName=self.target, TimeToLiveSpecification=spec):
                return
        self.out.done.append(f"TTL on {ttl['AttributeName']}")

    def stream(self, desc: dict[str, Any]) -> None:
        stream = self.source.get("Table", {}).get("StreamSpecification") or {}
        if not stream.get("StreamEnabled"):
            return
        if not (desc.get("StreamSpecification") or {}).get("StreamEnabled"):
            spec = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
            if not self.call("stream", self.ddb.update_table, TableName=self.target, StreamSpecification=spec):
                return
            wait_active(self.ddb, self.target, self.retry)
        self.out.done.append(f"stream {stream['StreamViewType']}")

    def pitr(self, desc: dict[str, Any]) -> None:
        pitr = (self.source.get("ContinuousBackups") or {}).get("PointInTimeRecoveryDescription") or {}
        if pitr.get("PointInTimeRecoveryStatus") not in ("ENABLED", "ENABLING"):
            return
        spec: dict[str, Any] = {"PointInTimeRecoveryEnabled": True}
        days = int(pitr.get("RecoveryPeriodInDays") or 0)
        if days:
            spec["RecoveryPeriodInDays"] = days

        def update() -> None:
            out = self.ddb.update_continuous_backups(TableName=self.target, PointInTimeRecoverySpecification=spec)
            status = out["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
            if status.get("PointInTimeRecoveryStatus") != "ENABLED":
                raise NotReady(f"PITR is {status.get('PointInTimeRecoveryStatus')} after the update")

        if self.call("pitr", update):
            self.out.done.append(f"PITR ({days} days)" if days else "PITR")


def reapply_settings(
    ddb: Any, source: dict[str, Any], target: str, retry: Retry, settings: Collection[str] = RESTORE_DROPS
) -> Reapplied:
    """Give ``target`` the ``settings`` (tags, TTL, stream, PITR) that ``source`` (a :func:`describe`) has.

    Waits for ``target`` to be active first (:class:`NotActive` when it is
    not by the deadline). A setting the table still refuses as "not yet" at
    the deadline is left ``pending``; any other error is raised.
    """
    out = Reapplied()
    copy = _Copy(ddb, source, target, retry, out)
    steps = {"tags": copy.tags, "ttl": copy.ttl, "stream": copy.stream, "pitr": copy.pitr}
    desc = wait_active(ddb, target, retry)
    for setting in RESTORE_DROPS:
        if setting in settings:
            steps[setting](desc)
    return out
