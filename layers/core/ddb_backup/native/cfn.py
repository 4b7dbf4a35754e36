"""The PITR custom resource: answer CloudFormation's deploy-time requests.

Every request is answered through its ResponseURL (:func:`send_cfn_response`),
FAILED only when the request itself is unusable, so a stack never waits on us
and a rollback never gets stuck.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ddb_backup.events import PitrResourceProperties
from ddb_backup.native.pitr import ALREADY_ON, ENABLED, FAILED, MISSING, UPDATED, PitrResult, ensure_pitr, summarize

if TYPE_CHECKING:
    from ddb_backup.aws.retry import Retry

SUCCESS = "SUCCESS"
FAILURE = "FAILED"


def is_custom_resource_event(event: Any) -> bool:
    """A CloudFormation custom resource request (rather than the scheduled event)."""
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


def physical_id(event: dict[str, Any]) -> str:
    """The resource's id: the one CloudFormation sent, else <stack>-<logical id>."""
    if event.get("PhysicalResourceId"):
        return str(event["PhysicalResourceId"])
    stack = str(event.get("StackId", "")).split("/")
    return f"{stack[1] if len(stack) > 1 else 'stack'}-{event.get('LogicalResourceId', 'Pitr')}"


@dataclass
class CustomResourceOutcome:
    """The answer to send, and the per-table results behind it."""

    status: str
    reason: str
    physical_id: str
    data: dict[str, Any] = field(default_factory=dict)
    results: list[PitrResult] = field(default_factory=list)


def field_text(loc: tuple[int | str, ...]) -> str:
    """A field's path as one line of text: names JSON-escaped, so a newline in a name stays visible."""
    return ".".join(json.dumps(str(part))[1:-1] for part in loc)


def validation_text(exc: ValidationError) -> str:
    """A validation error as one line naming each bad field."""
    return "; ".join(f"{field_text(e['loc']) or '(the properties)'}: {e['msg']}" for e in exc.errors())


def custom_resource_outcome(ddb: Any, event: dict[str, Any], retry: Retry) -> CustomResourceOutcome:
    """What to answer CloudFormation. Never raises.

    Delete leaves the tables alone. Create and Update ensure PITR and succeed
    even when some tables are not ready (the schedule finishes the job; failing
    here would roll back the stack or, on a rollback, leave it stuck). Only a
    request that cannot be understood fails.
    """
    physical = physical_id(event)
    request_type = event.get("RequestType")
    try:
        if request_type == "Delete":
            return CustomResourceOutcome(SUCCESS, "PITR is left as it is", physical)
        if request_type not in ("Create", "Update"):
            return CustomResourceOutcome(FAILURE, f"unknown RequestType {request_type!r}", physical)
        request = PitrResourceProperties.model_validate(event.get("ResourceProperties") or {}).request()
        results = ensure_pitr(ddb, request.names(), recovery_days=request.recovery_period_in_days, retry=retry)
    except ValidationError as exc:
        return CustomResourceOutcome(FAILURE, "invalid ResourceProperties: " + validation_text(exc), physical)
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
