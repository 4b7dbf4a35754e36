"""AWS-side restores into a new table: from a point in time, and what restores from backups share.

AWS restores keep keys, indexes, billing mode and items, and drop TTL, stream,
tags and PITR: :func:`reapply_settings` gives them back from the source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup import names
from ddb_backup.aws import tables
from ddb_backup.aws.retry import Retry, error_code, error_text
from ddb_backup.errors import BadInput, PitrIncomplete, PitrNotEnabled, StillRestoring, TableNotFound, TargetRefused


def _still_restoring(exc: tables.NotActive) -> StillRestoring:
    return StillRestoring(
        f"table {exc.table!r} is still {exc.status}{' (restoring)' if exc.restoring else ''}; "
        "settings were not re-applied yet: wait, then run 'ddb-backup pitr enable' and check TTL, stream and tags"
    )


def wait_active(ddb: Any, table: str, retry: Retry) -> dict[str, Any]:
    """Wait until ``table`` is ACTIVE with no restore in progress; returns its description."""
    try:
        return tables.wait_active(ddb, table, retry)
    except tables.NotActive as exc:
        raise _still_restoring(exc) from None


def refuse_existing(ddb: Any, target: str) -> None:
    """Raise ``TargetRefused`` when ``target`` exists: AWS restores create a new table."""
    if tables.describe_table(ddb, target) is not None:
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


def reapply_settings(ddb: Any, source: dict[str, Any], target: str, retry: Retry) -> list[str]:
    """Give the restored ``target`` the TTL, stream, tags and PITR that ``source`` (a ``describe``) has.

    Returns what was applied, one phrase each. Raises :class:`StillRestoring`
    when the table is not ACTIVE in time, :class:`PitrIncomplete` when PITR
    could not be turned on in time (the table is usable, the message says
    what to run), and the last refusal of any other setting still refused.
    """
    try:
        out = tables.reapply_settings(ddb, source, target, retry)
    except tables.NotActive as exc:
        raise _still_restoring(exc) from None
    late = out.pending.pop("pitr", None)
    for refused in out.pending.values():
        raise refused
    if late is not None:
        raise PitrIncomplete(
            f"restored {target!r} and re-applied {', '.join(out.done) or 'nothing else'}, but PITR is not on yet: "
            f"{error_text(late)}; run 'ddb-backup pitr enable --table {target}' later"
        )
    return out.done


def _refusal(exc: ClientError, source: str, target: str, when: dt.datetime | None, pitr: dict[str, Any]) -> Exception:
    """The error to raise for a refused RestoreTableToPointInTime, or ``exc`` itself."""
    code = error_code(exc)
    if code == "TableAlreadyExistsException":
        return TargetRefused(f"table {target!r} already exists")
    if code == "InvalidRestoreTimeException":
        window = f"{pitr.get('EarliestRestorableDateTime')} .. {pitr.get('LatestRestorableDateTime')}"
        return BadInput(f"{source!r} cannot be restored to {when}: the restorable window is {window}")
    if code == "PointInTimeRecoveryUnavailableException":
        return PitrNotEnabled(f"table {source!r}: {error_text(exc)}")
    if code in tables.MISSING_CODES | {"SourceTableNotFoundException"}:
        return TableNotFound(f"table {source!r} does not exist")
    return exc


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
    names.check_table_name(target)
    description = tables.describe(ddb, source)
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
        refusal = _refusal(exc, source, target, when, pitr)
        if refusal is exc:
            raise
        raise refusal from None
    if on_wait:
        on_wait(f"restoring {source} to {target}; waiting for it to become ACTIVE")
    applied = reapply_settings(ddb, description, target, retry)
    return {
        "source": source,
        "target": target,
        "restoredTo": when.isoformat() if when else "latest",
        "reapplied": applied,
    }
