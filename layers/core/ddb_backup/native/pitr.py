"""Point-in-time recovery (PITR): keep it on for the configured tables, and report on it.

Newly created tables refuse ``UpdateContinuousBackups`` for a while
(``ContinuousBackupsUnavailableException``: "turn it on an hour later"), and
busy accounts answer ``ResourceInUseException`` or ``LimitExceededException``.
:func:`ensure_pitr` treats those as "not yet": it waits for the table to be
ACTIVE and its continuous backups to be available, retries every table that is
not ready yet in rounds with jittered exponential backoff until a deadline
(:func:`ddb_backup.aws.retry.run_until_done`), and reports each table as
already on, enabled, updated, missing or failed (with the reason). Run again,
it changes nothing that is already right.

Restores from PITR are in :mod:`ddb_backup.native.restores`, the deploy-time
custom resource in :mod:`ddb_backup.native.cfn`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import NotReady, Retry, error_code, run_until_done
from ddb_backup.aws.tables import MISSING_CODES
from ddb_backup.errors import BadInput, PitrIncomplete
from ddb_backup.events import DEFAULT_RECOVERY_DAYS

ALREADY_ON = "already-on"
ENABLED = "enabled"
UPDATED = "updated"
MISSING = "missing"
FAILED = "failed"


@dataclass(frozen=True)
class PitrResult:
    """One table's outcome: a status above, why, and the recovery period now in force."""

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
        if error_code(exc) in MISSING_CODES:
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
    """Counts per status and one row per table."""
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
            if error_code(exc) in MISSING_CODES:
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
