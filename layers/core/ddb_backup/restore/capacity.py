"""How a restore target takes its load: on-demand for the load (``loadBilling``), pre-warmed, then switched back.

* ``--load-billing on-demand``: a PROVISIONED target (one the restore creates
  from a provisioned backup, or an existing provisioned table) takes the load
  in PAY_PER_REQUEST mode and is switched back afterwards to the provisioned
  units it had (an existing table) or the backup saved (a created one). A
  created table is created on-demand (no switch spent); an existing one is
  switched, which DynamoDB allows four times in a rolling 24 hours (on-demand
  back to provisioned: at any time). A refused switch refuses the restore
  before anything is created or written.
* ``--within DURATION``: an on-demand table the restore creates gets
  ``WarmThroughput`` sized to write the backup's units in that time, capped at
  the per-table quota.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws import tables
from ddb_backup.aws.retry import Retry, call_with_backoff, error_code
from ddb_backup.errors import BillingNotRestored, DdbBackupError, TargetRefused
from ddb_backup.estimate import NEW_ON_DEMAND_WRITE_UNITS, TABLE_QUOTA_UNITS, write_units
from ddb_backup.restore import resume

LOG = logging.getLogger(__name__)
ON_DEMAND = "PAY_PER_REQUEST"


def provisioned_spec(table: dict[str, Any]) -> dict[str, Any] | None:
    """A described table's provisioned units (table and global indexes), or None when it is on-demand."""
    if (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED") == ON_DEMAND:
        return None

    def units(spec: dict[str, Any] | None) -> dict[str, int]:
        spec = spec or {}
        return {name: max(1, int(spec.get(name) or 1)) for name in ("ReadCapacityUnits", "WriteCapacityUnits")}

    return {
        "ProvisionedThroughput": units(table.get("ProvisionedThroughput")),
        "GlobalSecondaryIndexes": {
            g["IndexName"]: units(g.get("ProvisionedThroughput")) for g in table.get("GlobalSecondaryIndexes") or []
        },
    }


def load_plan(ddb: Any, target: str, saved: dict[str, Any] | None, load: bool = True) -> dict[str, Any] | None:
    """What ``loadBilling: on-demand`` does to ``target``: ``{"switch", "restore"}``, or None (it is on-demand anyway).

    ``switch``: an existing provisioned table, to switch now (refused unless it
    and its indexes are ACTIVE); ``restore``: the units to put back afterwards.
    A target an earlier run left on-demand (killed before it switched back)
    has its recorded units put back, with or without ``load``.
    """
    existing = tables.describe_table(ddb, target)
    if existing is None:
        spec = provisioned_spec((saved or {}).get("Table") or {}) if saved and load else None
        return {"switch": False, "restore": spec} if spec else None
    spec = provisioned_spec(existing)
    if spec is None:
        recorded = resume.read_billing(ddb, existing["TableArn"])
        return {"switch": False, "restore": recorded} if recorded else None
    if not load:
        return None
    if not tables.is_active(existing):
        raise TargetRefused(
            f"table {target} is {existing.get('TableStatus')} (or an index is not ACTIVE): it cannot switch to "
            "on-demand for the load now; wait until it is ACTIVE, or restore without --load-billing on-demand"
        )
    return {"switch": True, "restore": spec}


def switch_to_on_demand(ddb: Any, plans: dict[str, dict[str, Any] | None]) -> None:
    """Switch every existing target ``plans`` says to on-demand, its units recorded on it first (a run killed
    after the switch leaves them for the resume); if DynamoDB refuses one, switch the others back."""
    done: list[str] = []
    for target, plan in plans.items():
        if not plan or not plan["switch"]:
            continue
        try:
            arn = call_with_backoff(ddb.describe_table, TableName=target)["Table"]["TableArn"]
            resume.set_billing(ddb, arn, plan["restore"])
            call_with_backoff(ddb.update_table, TableName=target, BillingMode=ON_DEMAND)
        except ClientError as exc:
            for name in done:
                put_back(ddb, name, plans[name]["restore"])  # type: ignore[index]
            raise TargetRefused(
                f"table {target} could not switch to on-demand for the load: {error_code(exc)}: "
                f"{exc.response['Error'].get('Message')} (DynamoDB allows four switches from provisioned to "
                "on-demand in a rolling 24 hours); nothing was restored: restore without --load-billing on-demand "
                "(and with --write-rate), or later"
            ) from None
        done.append(target)


def put_back_after(ddb: Any, plans: dict[str, dict[str, Any] | None], exc: BaseException) -> BaseException:
    """A restore stopped while preparing its targets: switch every target on-demand for its load back; ``exc``
    with a sentence naming each table switched back, and each left on-demand with the command that fixes it."""
    said, left = [], []
    for target, plan in plans.items():
        if not plan or tables.describe_table(ddb, target) is None:
            continue
        try:
            put_back(ddb, target, plan["restore"])
            said.append(f"table {target} was switched back to PROVISIONED")
        except BillingNotRestored as failed:
            said.append(str(failed))
            left.append(target)
    if isinstance(exc, DdbBackupError):
        return type(exc)("; ".join([str(exc), *said]))
    for text in said:  # logged whatever the failure; and said in its message where it has one to extend
        LOG.warning("%s", text)
    if said and isinstance(exc, KeyboardInterrupt):  # Ctrl-C stays Ctrl-C (its exit code), saying where billing is
        exc.args = ("; ".join([*filter(None, [str(exc)]), *said]),)
    elif left:  # an AWS, network or other failure left a table on-demand: the operator must hear of it
        failure = BillingNotRestored("; ".join([f"{type(exc).__name__}: {exc}", *said]))
        failure.__cause__ = exc
        return failure
    return exc


def put_back(ddb: Any, target: str, spec: dict[str, Any], patience: float = 600.0) -> None:
    """Switch ``target`` back to PROVISIONED with ``spec``'s units, once it is ACTIVE; or name the command to do it."""
    request: dict[str, Any] = {
        "TableName": target,
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": spec["ProvisionedThroughput"],
    }
    indexes = [
        {"Update": {"IndexName": name, "ProvisionedThroughput": units}}
        for name, units in spec["GlobalSecondaryIndexes"].items()
    ]
    if indexes:
        request["GlobalSecondaryIndexUpdates"] = indexes
    try:
        current = tables.wait_active(ddb, target, Retry.within(patience, base=1.0, cap=15.0))
        if (current.get("BillingModeSummary") or {}).get("BillingMode") == ON_DEMAND:
            call_with_backoff(ddb.update_table, **request)  # else already provisioned (a retried finalize)
        resume.clear_billing(ddb, current["TableArn"])
    except (ClientError, tables.NotActive) as exc:
        why = f"{error_code(exc)}: {exc.response['Error'].get('Message')}" if isinstance(exc, ClientError) else exc
        raise BillingNotRestored(
            f"table {target} was loaded in on-demand mode and could not be switched back to provisioned ({why}); "
            f"it is still on-demand: switch it back with: {fix_command(target, spec)}"
        ) from None


def fix_command(target: str, spec: dict[str, Any]) -> str:
    """The AWS CLI command that puts ``spec``'s provisioned units back on ``target``."""
    units = spec["ProvisionedThroughput"]
    command = (
        f"aws dynamodb update-table --table-name {target} --billing-mode PROVISIONED --provisioned-throughput "
        f"ReadCapacityUnits={units['ReadCapacityUnits']},WriteCapacityUnits={units['WriteCapacityUnits']}"
    )
    indexes = [
        {"Update": {"IndexName": name, "ProvisionedThroughput": u}}
        for name, u in spec["GlobalSecondaryIndexes"].items()
    ]
    if indexes:
        command += f" --global-secondary-index-updates '{json.dumps(indexes, separators=(',', ':'))}'"
    return command


def warm_throughput(items: int, size: int, within: int) -> tuple[dict[str, int] | None, str]:
    """``WarmThroughput`` to write ``items`` of ``size`` bytes in ``within`` seconds, and a note saying what was chosen.

    None when a new on-demand table's own 4,000 write units a second suffice;
    capped at the default per-table quota (40,000).
    """
    units = write_units(items, size)
    wanted = math.ceil(units / within)
    if wanted <= NEW_ON_DEMAND_WRITE_UNITS:
        return None, (
            f"{units:,.0f} write units in {within:,} s is {wanted:,} a second: within a new on-demand table's "
            f"{NEW_ON_DEMAND_WRITE_UNITS:,}, no pre-warm needed"
        )
    chosen = min(wanted, TABLE_QUOTA_UNITS)
    capped = (
        f" (capped at the per-table quota of {TABLE_QUOTA_UNITS:,}: the load takes about "
        f"{math.ceil(units / chosen):,} s)"
        if chosen < wanted
        else ""
    )
    note = f"pre-warmed to {chosen:,} write units a second for {units:,.0f} units in {within:,} s{capped}"
    return {"WriteUnitsPerSecond": chosen}, note


def create_on_demand(
    args: dict[str, Any], warm: dict[str, int] | None = None, restore: dict[str, Any] | None = None
) -> dict[str, Any]:
    """CreateTable arguments made on-demand (no provisioned units on the table or its indexes), and ``warm``;
    ``restore``: the units to switch to after the load, recorded on the table for a run killed before that."""
    out = {k: v for k, v in args.items() if k != "ProvisionedThroughput"}
    if restore:
        out["Tags"] = [*out.get("Tags", []), *resume.billing_tags(restore)]
    out["BillingMode"] = ON_DEMAND
    if out.get("GlobalSecondaryIndexes"):
        out["GlobalSecondaryIndexes"] = [
            {k: v for k, v in g.items() if k != "ProvisionedThroughput"} for g in out["GlobalSecondaryIndexes"]
        ]
    if warm:
        out["WarmThroughput"] = warm
    return out
