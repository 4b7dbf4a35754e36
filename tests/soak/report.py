"""Run a soak and judge it: the figures, and every way they differ from what the soak knows should be."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from tests.soak.check import check_alarms, check_on_demand, check_restores, check_retention, expected_complete
from tests.soak.run import SoakConfig, run_nights, soak_stack


def soak(config: SoakConfig, *, progress: bool = False) -> tuple[dict[str, Any], list[str]]:
    """(figures, problems): an empty list of problems is a passed soak."""
    started = time.monotonic()
    with soak_stack(config) as record:
        deployed = time.monotonic()
        run_nights(record, progress=progress)
        nights_seconds = time.monotonic() - deployed
        problems = []
        for night in record.nights:
            want = expected_complete(record, night.when, night.fault)
            status = "FAILED" if night.fault == "failed-run" else "SUCCEEDED"
            if night.complete != want or night.status != status:
                problems.append(f"night {night.index + 1}: {night.status}, complete {night.complete}; expected {status}, {want}")  # fmt: skip
        retention = check_retention(record)
        for key in ("expiredStillCurrent", "keptMissing", "expiredNoncurrentUnremoved", "orphans"):
            if retention[key]:
                problems.append(f"{key}: {len(retention[key])}, e.g. {retention[key][:3]}")
        if retention["currentBytes"] != retention["keptNightsBytes"] or retention["incompleteUploads"]:
            problems.append(f"storage {retention['currentBytes']} B != kept nights' {retention['keptNightsBytes']} B, or uploads left")  # fmt: skip
        alarms = check_alarms(record)
        for name, days in alarms["fired"].items():
            if days != alarms["expected"][name]:
                problems.append(f"{name} fired on {days}, expected {alarms['expected'][name]}")
        restores_started = time.monotonic()
        restores = check_restores(record)
        restores_seconds = time.monotonic() - restores_started
        problems += restores["wrong"]
        on_demand = check_on_demand(record)
        if on_demand["kept"] != on_demand["expected"]:
            problems.append(f"on-demand backups kept {on_demand['kept']}, expected {on_demand['expected']}")
        enabled = sum(p.value for p in record.datapoints() if p.name == "PitrEnabled")
        if enabled != len(record.table_times):
            problems.append(f"PITR turned on {enabled} times, expected once for each of the {len(record.table_times)} tables")  # fmt: skip
        pitr_on = _pitr_on(record)
        if sorted(pitr_on) != sorted(record.world.model):
            problems.append(f"PITR on for {pitr_on}, expected every table: {sorted(record.world.model)}")
        figures = {
            "nights": len(record.nights),
            "statuses": dict(Counter(n.status for n in record.nights)),
            "faults": {n.index + 1: n.fault for n in record.nights if n.fault},
            "writes": dict(record.world.counts),
            "items": {t: len(items) for t, items in record.world.model.items()},
            "nightSeconds": round(sum(n.seconds for n in record.nights), 1),
            "pitrChecks": record.pitr_runs,
            "pitrTurnedOn": enabled,
            "onDemand": on_demand,
            "lifecycle": record.lifecycle,
            "retention": {k: v for k, v in retention.items() if not isinstance(v, list) or k in ("kept", "expired")},
            "orphans": len(retention["orphans"]),
            "restores": restores["restored"],
            "alarms": {name: [d.isoformat() for d in days] for name, days in alarms["fired"].items()},
            "seconds": {
                "deploy": round(deployed - started, 1),
                "nights": round(nights_seconds, 1),
                "restores": round(restores_seconds, 1),
                "total": round(time.monotonic() - started, 1),
            },
        }
    return figures, problems


def _pitr_on(record: Any) -> list[str]:
    from ddb_backup.aws.clients import client

    ddb = client("dynamodb")
    out = []
    for table in record.world.model:
        desc = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        if desc["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED":
            out.append(table)
    return out
