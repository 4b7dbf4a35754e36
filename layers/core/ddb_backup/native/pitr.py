"""Point-in-time recovery (PITR): keep it on, restore from it, and re-apply what restores drop.

Newly created tables refuse ``UpdateContinuousBackups`` for a while
(``ContinuousBackupsUnavailableException``: "turn it on an hour later"), and
busy accounts answer ``ResourceInUseException`` or ``LimitExceededException``.
:func:`ensure_pitr` treats those as "not yet": it waits for the table to be
ACTIVE and its continuous backups to be available, retries every table that is
not ready yet in rounds with jittered exponential backoff until a deadline, and
reports each table as already on, enabled, updated, missing or failed (with
the reason). Run again, it changes nothing that is already right.

The same module answers CloudFormation for the deploy-time custom resource
(:func:`handle_custom_resource`, :func:`send_cfn_response`): every request is
answered through its ResponseURL, FAILED only when the request itself is
unusable, so a stack never waits on us and a rollback never gets stuck.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ddb_backup.aws.retry import THROTTLE_CODES
from ddb_backup.backup.plan import describe
from ddb_backup.errors import BadInput, DdbBackupError, TableNotFound, TargetRefused
from ddb_backup.format import layout

#: The Cumulus metadata tables PITR covers when only a prefix is given.
DEFAULT_CUMULUS_TABLES = ("Collections", "Executions", "Files", "Granules", "Pdrs", "Providers", "Rules", "Users")
#: What DynamoDB uses when RecoveryPeriodInDays is not given (and reports for tables enabled before it existed).
DEFAULT_RECOVERY_DAYS = 35

#: Answers that mean "not now": the table is new or busy, or the account is at a limit.
RETRYABLE_CODES = THROTTLE_CODES | {
    "ContinuousBackupsUnavailableException",
    "ResourceInUseException",
    "LimitExceededException",
    "BackupInUseException",
}
_MISSING_CODES = {"ResourceNotFoundException", "TableNotFoundException"}

ALREADY_ON = "already-on"
ENABLED = "enabled"
UPDATED = "updated"
MISSING = "missing"
FAILED = "failed"


class PitrIncomplete(DdbBackupError):
    """PITR could not be turned on for some tables; the message names them and why."""


class PitrNotEnabled(DdbBackupError):
    """A point-in-time restore was asked of a table without PITR."""


class StillRestoring(DdbBackupError):
    """A restored table did not become ACTIVE in the time allowed."""


# ------------------------------------------------------------------ selection
class TableSelection(BaseModel):
    """The tables the stack manages: explicit names, or a Cumulus prefix plus the Cumulus table list."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tables: list[str] = Field(default_factory=list)
    cumulus_prefix: str = Field(default="", alias="cumulusPrefix", pattern=r"^[A-Za-z0-9_.-]{0,255}$")
    cumulus_tables: list[str] = Field(default_factory=lambda: list(DEFAULT_CUMULUS_TABLES), alias="cumulusTables")

    @field_validator("tables", "cumulus_tables", mode="before")
    @classmethod
    def _drop_blanks(cls, value: Any) -> Any:
        # A CommaDelimitedList parameter left empty arrives as [""].
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            # Non-strings are left for the type check, which names the field.
            return [v.strip() if isinstance(v, str) else v for v in value if not (isinstance(v, str) and not v.strip())]
        return value

    @field_validator("tables")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            layout.check_table_name(name)
        return list(dict.fromkeys(value))

    @field_validator("cumulus_tables")
    @classmethod
    def _short_names(cls, value: list[str]) -> list[str]:
        for short in value:
            if not short.isalnum():
                raise ValueError(f"Cumulus table {short!r} is not a short name such as 'Granules'")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_selector(self) -> TableSelection:
        if self.tables and self.cumulus_prefix:
            raise ValueError("give either 'tables' or 'cumulusPrefix', not both")
        return self

    def names(self) -> list[str]:
        """The table names; empty when nothing is configured."""
        if self.tables:
            return list(self.tables)
        if not self.cumulus_prefix:
            return []
        return [layout.check_table_name(f"{self.cumulus_prefix}{short}Table") for short in self.cumulus_tables]


class EnsurePitrEvent(TableSelection):
    """The scheduled (or hand-made) event of the PITR function."""

    recovery_period_in_days: int = Field(default=DEFAULT_RECOVERY_DAYS, alias="recoveryPeriodInDays", ge=1, le=35)


class PitrResourceProperties(BaseModel):
    """``ResourceProperties`` of the custom resource. CloudFormation sends every scalar as a string."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_token: str = Field(default="", alias="ServiceToken")
    service_timeout: str | int | None = Field(default=None, alias="ServiceTimeout")
    tables: list[str] = Field(default_factory=list, alias="Tables")
    cumulus_prefix: str = Field(default="", alias="CumulusPrefix")
    cumulus_tables: list[str] | str | None = Field(default=None, alias="CumulusTables")
    recovery_period_in_days: int = Field(default=DEFAULT_RECOVERY_DAYS, alias="RecoveryPeriodInDays", ge=1, le=35)

    def request(self) -> EnsurePitrEvent:
        doc: dict[str, Any] = {
            "tables": self.tables,
            "cumulusPrefix": self.cumulus_prefix,
            "recoveryPeriodInDays": self.recovery_period_in_days,
        }
        if self.cumulus_tables is not None:
            doc["cumulusTables"] = self.cumulus_tables
        return EnsurePitrEvent.model_validate(doc)


# ------------------------------------------------------------------ retrying
class NotReady(Exception):
    """The table (or its continuous backups) is not ready yet; the reason is the message."""


@dataclass(frozen=True)
class Retry:
    """How long and how often to try again: rounds of jittered exponential backoff until ``deadline``."""

    deadline: float
    base: float = 1.0
    cap: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def within(cls, seconds: float, **kwargs: Any) -> Retry:
        clock: Callable[[], float] = kwargs.get("clock", time.monotonic)
        return cls(deadline=clock() + seconds, **kwargs)

    @classmethod
    def for_lambda(cls, context: Any, *, margin: float = 30.0) -> Retry:
        """A budget that ends ``margin`` seconds before the invocation would time out.

        ``TIME_BUDGET_SECONDS`` (default 600) caps it; ``RETRY_BASE_SECONDS``
        (default 1) sets the first backoff step.
        """
        budget = float(os.environ.get("TIME_BUDGET_SECONDS") or 600)
        remaining = context.get_remaining_time_in_millis() / 1000 - margin
        base = float(os.environ.get("RETRY_BASE_SECONDS") or 1.0)
        return cls.within(max(0.0, min(budget, remaining)), base=base)

    def delay(self, attempt: int) -> float:
        """Equal jitter: half the step plus a random part of the other half, never nothing."""
        step = min(self.cap, self.base * 2**attempt)
        return step / 2 + random.uniform(0, step / 2)

    def left(self) -> float:
        return self.deadline - self.clock()


R = TypeVar("R")


def error_text(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code')}: {err.get('Message')}"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, NotReady) else str(exc)


def error_code(exc: BaseException) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def run_until_done(
    names: Iterable[str],
    attempt: Callable[[str], R],
    failed: Callable[[str, str], R],
    retry: Retry,
) -> list[R]:
    """Try ``attempt(name)`` for every name; retry those not ready, in rounds, until done or out of time.

    ``attempt`` returns a final result or raises :class:`NotReady` / a retryable
    ``ClientError``. Other errors end that name with ``failed(name, reason)``;
    names still pending at the deadline end the same way, with the last reason.
    Results come back in the order of ``names``.
    """
    order = list(dict.fromkeys(names))
    results: dict[str, R] = {}
    pending = list(order)
    last: dict[str, str] = {}
    started = retry.clock()
    rounds = 0
    while pending:
        waiting = []
        for name in pending:
            try:
                results[name] = attempt(name)
            except NotReady as exc:
                last[name] = str(exc)
                waiting.append(name)
            except ClientError as exc:
                if error_code(exc) in RETRYABLE_CODES:
                    last[name] = error_text(exc)
                    waiting.append(name)
                else:
                    results[name] = failed(name, error_text(exc))
            except BotoCoreError as exc:
                results[name] = failed(name, error_text(exc))
        pending = waiting
        if not pending:
            break
        pause = retry.delay(rounds)
        if pause > retry.left():
            elapsed = retry.clock() - started
            for name in pending:
                results[name] = failed(name, f"{last[name]} (still so after {elapsed:.0f} s and {rounds + 1} tries)")
            break
        retry.sleep(pause)
        rounds += 1
    return [results[name] for name in order]


# ------------------------------------------------------------------ ensure PITR
@dataclass(frozen=True)
class PitrResult:
    table: str
    status: str
    reason: str = ""
    recovery_period_in_days: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in (ALREADY_ON, ENABLED, UPDATED)

    def as_dict(self) -> dict[str, Any]:
        doc = {
            "table": self.table,
            "status": self.status,
            "reason": self.reason,
            "recoveryPeriodInDays": self.recovery_period_in_days,
        }
        return {k: v for k, v in doc.items() if v not in ("", None)}


def _pitr_description(ddb: Any, table: str) -> dict[str, Any]:
    desc: dict[str, Any] = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return desc


def ensure_one(ddb: Any, table: str, days: int) -> PitrResult:
    """One try at PITR for ``table``; raises :class:`NotReady` or a retryable error when it is too early."""
    try:
        status = ddb.describe_table(TableName=table)["Table"]["TableStatus"]
        if status == "DELETING":
            return PitrResult(table, MISSING, "the table is being deleted")
        if status in ("CREATING", "UPDATING"):
            raise NotReady(f"the table is {status}")
        if status != "ACTIVE":  # archived, or its KMS key is unusable: waiting will not help
            return PitrResult(table, FAILED, f"the table is {status}")
        backups = _pitr_description(ddb, table)
        if backups.get("ContinuousBackupsStatus") != "ENABLED":
            raise NotReady("continuous backups are not available yet")
        pitr = backups.get("PointInTimeRecoveryDescription", {})
        was_on = pitr.get("PointInTimeRecoveryStatus") == "ENABLED"
        current = int(pitr.get("RecoveryPeriodInDays") or DEFAULT_RECOVERY_DAYS)
        if was_on and current == days:
            return PitrResult(table, ALREADY_ON, recovery_period_in_days=days)
        out = ddb.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": days},
        )
    except ClientError as exc:
        if error_code(exc) in _MISSING_CODES:
            return PitrResult(table, MISSING, "the table does not exist")
        raise
    now = out["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
    if now.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise NotReady(f"PITR is {now.get('PointInTimeRecoveryStatus')} after the update")
    if was_on:
        return PitrResult(table, UPDATED, f"recovery period {current} -> {days} days", days)
    return PitrResult(table, ENABLED, recovery_period_in_days=days)


def ensure_pitr(ddb: Any, tables: Iterable[str], *, recovery_days: int, retry: Retry) -> list[PitrResult]:
    """Make PITR on with ``recovery_days`` for every table; one result per table, nothing raised."""
    if not 1 <= recovery_days <= 35:
        raise BadInput(f"RecoveryPeriodInDays must be between 1 and 35, got {recovery_days}")
    return run_until_done(
        tables,
        lambda name: ensure_one(ddb, name, recovery_days),
        lambda name, reason: PitrResult(name, FAILED, reason),
        retry,
    )


def summarize(results: list[PitrResult]) -> dict[str, Any]:
    counts = {s: sum(r.status == s for r in results) for s in (ALREADY_ON, ENABLED, UPDATED, MISSING, FAILED)}
    return {"counts": counts, "tables": [r.as_dict() for r in results]}


def check(results: list[PitrResult]) -> None:
    """Raise :class:`PitrIncomplete` naming every failed table."""
    failed = [r for r in results if r.status == FAILED]
    if failed:
        detail = "; ".join(f"{r.table}: {r.reason}" for r in failed)
        raise PitrIncomplete(f"PITR is not on for {len(failed)} table(s): {detail}")


def pitr_status(ddb: Any, tables: Iterable[str]) -> list[dict[str, Any]]:
    """One row per table: table status, PITR status, recovery period and restorable window."""
    rows = []
    for table in tables:
        row: dict[str, Any] = {"table": table}
        try:
            row["tableStatus"] = ddb.describe_table(TableName=table)["Table"]["TableStatus"]
            backups = _pitr_description(ddb, table)
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                row.update(tableStatus="MISSING", pitr="-")
                rows.append(row)
                continue
            raise
        pitr = backups.get("PointInTimeRecoveryDescription", {})
        row["continuousBackups"] = backups.get("ContinuousBackupsStatus")
        row["pitr"] = pitr.get("PointInTimeRecoveryStatus", "DISABLED")
        if row["pitr"] == "ENABLED":
            row["recoveryPeriodInDays"] = int(pitr.get("RecoveryPeriodInDays") or DEFAULT_RECOVERY_DAYS)
            for key, name in (("EarliestRestorableDateTime", "earliest"), ("LatestRestorableDateTime", "latest")):
                if isinstance(pitr.get(key), dt.datetime):
                    row[name] = pitr[key].astimezone(dt.UTC).isoformat()
        rows.append(row)
    return rows


# ------------------------------------------------------------------ restores
def wait_active(ddb: Any, table: str, retry: Retry) -> dict[str, Any]:
    """Wait until ``table`` is ACTIVE with no restore in progress; returns its description."""
    attempt = 0
    while True:
        desc: dict[str, Any] = ddb.describe_table(TableName=table)["Table"]
        restoring = desc.get("RestoreSummary", {}).get("RestoreInProgress", False)
        if desc["TableStatus"] == "ACTIVE" and not restoring:
            return desc
        pause = retry.delay(attempt)
        if pause > retry.left():
            raise StillRestoring(
                f"table {table!r} is still {desc['TableStatus']}{' (restoring)' if restoring else ''}; "
                "settings were not re-applied yet: wait, then run 'ddb-backup pitr enable' and check TTL, stream and tags"
            )
        retry.sleep(pause)
        attempt += 1


def refuse_existing(ddb: Any, target: str) -> None:
    try:
        ddb.describe_table(TableName=target)
    except ClientError as exc:
        if error_code(exc) in _MISSING_CODES:
            return
        raise
    raise TargetRefused(f"table {target!r} already exists: restores from AWS backups create a new table")


def sse_override(description: dict[str, Any]) -> dict[str, Any]:
    """Keep a customer managed (or AWS managed) KMS key: restores otherwise fall back to the AWS owned key."""
    sse = description.get("Table", {}).get("SSEDescription") or {}
    if sse.get("SSEType") != "KMS" or sse.get("Status") not in ("ENABLED", "UPDATING"):
        return {}
    spec: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
    if sse.get("KMSMasterKeyArn"):
        spec["KMSMasterKeyId"] = sse["KMSMasterKeyArn"]
    return {"SSESpecificationOverride": spec}


def _call(retry: Retry, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """``fn(**kwargs)``, retried while DynamoDB says the table is busy or new."""
    attempt = 0
    while True:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            pause = retry.delay(attempt)
            if error_code(exc) not in RETRYABLE_CODES or pause > retry.left():
                raise
            retry.sleep(pause)
            attempt += 1


def reapply_settings(ddb: Any, source: dict[str, Any], target: str, retry: Retry) -> list[str]:
    """Give ``target`` the TTL, stream, tags and PITR that ``source`` (a ``plan.describe``) has.

    AWS restores keep keys, indexes, billing mode and items, and drop exactly
    these. Returns what was applied, one phrase each; raises if PITR could not
    be turned on in time (the table is usable, the message says what to run).
    """
    done: list[str] = []
    desc = wait_active(ddb, target, retry)
    tags = [t for t in source.get("Tags", []) if not t["Key"].startswith("aws:")]
    for i in range(0, len(tags), 50):
        _call(retry, ddb.tag_resource, ResourceArn=desc["TableArn"], Tags=tags[i : i + 50])
    if tags:
        done.append(f"{len(tags)} tag(s)")
    ttl = source.get("TimeToLive", {})
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName"):
        have = ddb.describe_time_to_live(TableName=target).get("TimeToLiveDescription", {})
        if have.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            spec = {"Enabled": True, "AttributeName": ttl["AttributeName"]}
            _call(retry, ddb.update_time_to_live, TableName=target, TimeToLiveSpecification=spec)
        done.append(f"TTL on {ttl['AttributeName']}")
    stream = source.get("Table", {}).get("StreamSpecification") or {}
    if stream.get("StreamEnabled"):
        have_stream = desc.get("StreamSpecification") or {}
        if not have_stream.get("StreamEnabled"):
            spec = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
            _call(retry, ddb.update_table, TableName=target, StreamSpecification=spec)
            wait_active(ddb, target, retry)
        done.append(f"stream {stream['StreamViewType']}")
    pitr = source.get("ContinuousBackups", {}).get("PointInTimeRecoveryDescription", {})
    if pitr.get("PointInTimeRecoveryStatus") == "ENABLED":
        days = int(pitr.get("RecoveryPeriodInDays") or DEFAULT_RECOVERY_DAYS)
        (result,) = ensure_pitr(ddb, [target], recovery_days=days, retry=retry)
        if not result.ok:
            raise PitrIncomplete(
                f"restored {target!r} and re-applied {', '.join(done) or 'nothing else'}, but PITR is not on yet: "
                f"{result.reason}; run 'ddb-backup pitr enable --table {target}' later"
            )
        done.append(f"PITR ({days} days)")
    return done


def parse_time(text: str) -> dt.datetime:
    """ISO 8601; a time without a zone is UTC."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--time {text!r} is not an ISO 8601 time such as 2026-11-22T03:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def restore_to_point_in_time(
    ddb: Any,
    source: str,
    target: str,
    *,
    when: dt.datetime | None,
    retry: Retry,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """RestoreTableToPointInTime (``when``, or the latest restorable time), wait, re-apply the source's settings."""
    layout.check_table_name(target)
    description = describe(ddb, source)
    pitr = description.get("ContinuousBackups", {}).get("PointInTimeRecoveryDescription", {})
    if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
        raise PitrNotEnabled(
            f"table {source!r} has no point-in-time recovery enabled: there is nothing to restore from"
        )
    refuse_existing(ddb, target)
    kwargs: dict[str, Any] = {"SourceTableName": source, "TargetTableName": target, **sse_override(description)}
    if when is None:
        kwargs["UseLatestRestorableTime"] = True
    else:
        kwargs["RestoreDateTime"] = when
    try:
        ddb.restore_table_to_point_in_time(**kwargs)
    except ClientError as exc:
        code = error_code(exc)
        if code == "TableAlreadyExistsException":
            raise TargetRefused(f"table {target!r} already exists") from None
        if code == "InvalidRestoreTimeException":
            window = f"{pitr.get('EarliestRestorableDateTime')} .. {pitr.get('LatestRestorableDateTime')}"
            raise BadInput(f"{source!r} cannot be restored to {when}: the restorable window is {window}") from None
        if code == "PointInTimeRecoveryUnavailableException":
            raise PitrNotEnabled(f"table {source!r}: {error_text(exc)}") from None
        if code in _MISSING_CODES | {"SourceTableNotFoundException"}:
            raise TableNotFound(f"table {source!r} does not exist") from None
        raise
    if on_wait:
        on_wait(f"restoring {source} to {target}; waiting for it to become ACTIVE")
    applied = reapply_settings(ddb, description, target, retry)
    return {
        "source": source,
        "target": target,
        "restoredTo": when.isoformat() if when else "latest",
        "reapplied": applied,
    }


# ------------------------------------------------------------------ CloudFormation
SUCCESS = "SUCCESS"
FAILURE = "FAILED"


def is_custom_resource_event(event: Any) -> bool:
    return isinstance(event, dict) and "RequestType" in event and "ResponseURL" in event


def send_cfn_response(
    event: dict[str, Any],
    status: str,
    reason: str,
    physical_id: str,
    data: dict[str, Any] | None = None,
    *,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """PUT the response document to the pre-signed ``ResponseURL`` (4 KiB at most), retrying network errors."""
    body = {
        "Status": status,
        "Reason": reason[:1000],
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": data or {},
    }
    raw = json.dumps(body).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(
            event["ResponseURL"],
            data=raw,
            method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(raw))},
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                response.read()
            return body
        except OSError:
            if attempt == attempts - 1:
                raise
            sleep(2**attempt)
    return body


def _physical_id(event: dict[str, Any]) -> str:
    if event.get("PhysicalResourceId"):
        return str(event["PhysicalResourceId"])
    stack = str(event.get("StackId", "")).split("/")
    return f"{stack[1] if len(stack) > 1 else 'stack'}-{event.get('LogicalResourceId', 'Pitr')}"


@dataclass
class CustomResourceOutcome:
    status: str
    reason: str
    physical_id: str
    data: dict[str, Any] = field(default_factory=dict)
    results: list[PitrResult] = field(default_factory=list)


def custom_resource_outcome(ddb: Any, event: dict[str, Any], retry: Retry) -> CustomResourceOutcome:
    """What to answer CloudFormation. Never raises.

    Delete leaves the tables alone. Create and Update ensure PITR and succeed
    even when some tables are not ready (the schedule finishes the job; failing
    here would roll back the stack or, on a rollback, leave it stuck). Only a
    request that cannot be understood fails.
    """
    physical = _physical_id(event)
    request_type = event.get("RequestType")
    try:
        if request_type == "Delete":
            return CustomResourceOutcome(SUCCESS, "PITR is left as it is", physical)
        if request_type not in ("Create", "Update"):
            return CustomResourceOutcome(FAILURE, f"unknown RequestType {request_type!r}", physical)
        request = PitrResourceProperties.model_validate(event.get("ResourceProperties") or {}).request()
        results = ensure_pitr(ddb, request.names(), recovery_days=request.recovery_period_in_days, retry=retry)
    except Exception as exc:
        return CustomResourceOutcome(FAILURE, f"{type(exc).__name__}: {exc}".replace("\n", " "), physical)
    counts = summarize(results)["counts"]
    data = {
        "AlreadyOn": str(counts[ALREADY_ON]),
        "Enabled": str(counts[ENABLED] + counts[UPDATED]),
        "Missing": str(counts[MISSING]),
        "Failed": str(counts[FAILED]),
    }
    reason = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no tables configured"
    late = [r for r in results if r.status in (FAILED, MISSING)]
    if late:
        reason += "; the schedule retries " + "; ".join(f"{r.table}: {r.reason}" for r in late)
    return CustomResourceOutcome(SUCCESS, reason, physical, data, results)
