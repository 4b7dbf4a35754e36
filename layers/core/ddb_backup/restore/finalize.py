"""Finalize a restore run: check every part's result against what its source promised, then report.

Finalize trusts none of the map's own accounting (a child may fail or never
run): it fails, naming the parts, unless every part has a result whose count
matches the manifest. An exact backup's changes are applied after the parts
(:mod:`ddb_backup.restore.partitioned`), each partition noting it finished; a target loaded on-demand is switched back
(:mod:`ddb_backup.restore.capacity`). A table restored by ImportTable has no
parts to check: its import's counts must equal the backup's
(:func:`ddb_backup.restore.importtable.finish_planned`).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ddb_backup.aws.s3io import get_json, get_json_or_none, list_keys, put_json
from ddb_backup.errors import BillingNotRestored, IntegrityError, RestoreIncomplete
from ddb_backup.names import utc_time
from ddb_backup.restore import capacity, importtable
from ddb_backup.restore.partitioned.machine import changes_outcome
from ddb_backup.restore.resume import MARK_KEY, clear_mark
from ddb_backup.restore.write import note_key


def finalize_restore(
    s3: Any,
    bucket: str,
    prefix: str,
    *,
    map_failed: bool = False,
    now: dt.datetime | None = None,
    ddb: Any = None,
) -> dict[str, Any]:
    """Compare what every part wrote with what its source promised; report, or fail naming each problem.

    On success the restore-in-progress mark is removed from every target
    (``ddb``: the DynamoDB client to do it with); on failure it stays, so the
    targets say they hold a partial restore. Either way a target loaded in
    on-demand mode (``loadBilling``) is switched back to its provisioned
    units; one that cannot be fails the run (``BillingNotRestored`` when all
    items were restored), naming the table and the command that fixes it.

    Fails (``IntegrityError`` for a corrupt part or a count that differs from
    the manifest, else ``RestoreIncomplete``) when a part has no result (it
    failed, or never ran), when items were dead-lettered (naming where), or
    when ``map_failed`` and nothing else explains it, or when a partition of an
    exact table's changes has no note saying it was written
    (:mod:`ddb_backup.restore.partitioned.machine`). Writes ``report.json`` either
    way and returns it on success: items restored per table, dead-lettered, duration.
    """
    plan = get_json(s3, bucket, prefix + "plan.json")
    checks = _checks(ddb, s3, plan, _part_notes(s3, bucket, prefix), prefix)
    problems = [p for c in checks for p in c.problems]
    report_tables = [c.row for c in checks]
    if not problems:  # the changes were applied after the parts (and imports), while still loading
        problems.extend(_changes(s3, bucket, prefix, plan["tables"], report_tables))
    if map_failed and not problems:
        problems.append("the Distributed Map failed although every part has a result; see its failed children")
    billing = _billing_back(ddb, plan["tables"]) if ddb is not None else []
    finished = now or dt.datetime.now(dt.UTC)
    started = utc_time(plan["startedAt"])
    report = {
        "runId": plan["runId"],
        "status": "FAILED" if problems or billing else "SUCCEEDED",
        "tables": report_tables,
        "itemsRestored": sum(t["itemsRestored"] for t in report_tables),
        "deadLettered": sum(c.dead_lettered for c in checks),
        "seconds": round((finished - started).total_seconds(), 3),
        "warnings": [w for t in plan["tables"] for w in t.get("warnings", [])],
        "problems": problems + billing,
    }
    put_json(s3, bucket, prefix + "report.json", report)
    if problems:
        message = _failure_message(plan["runId"], problems, billing, f"s3://{bucket}/{prefix}report.json")
        raise (IntegrityError if any(c.integrity for c in checks) else RestoreIncomplete)(message)
    if ddb is not None:
        for table in plan["tables"]:
            clear_mark(ddb, table["target"])
    if billing:
        raise BillingNotRestored(f"restore {plan['runId']}: every item was restored, but " + "; ".join(billing))
    del report["problems"]
    return report


def _checks(ddb: Any, s3: Any, plan: dict[str, Any], notes: dict[str, Any], prefix: str) -> list[_TableCheck]:
    """Every table of the plan checked: its parts' notes, or for an imported table its import's counts."""
    checks = [_TableCheck(table, notes, prefix) for table in plan["tables"]]
    for check, table in zip(checks, plan["tables"], strict=True):
        if table.get("importArn"):
            check.imported(ddb, s3, table, plan["runId"])
    return checks


def imports_running(s3: Any, ddb: Any, bucket: str, prefix: str) -> int:
    """How many of the run's imports (plan.json) have not ended: the state machine waits while any has not."""
    return importtable.running(ddb, get_json(s3, bucket, prefix + "plan.json")["tables"])


def _failure_message(run_id: str, problems: list[str], billing: list[str], report: str) -> str:
    """The first five problems (and where the rest are), that the targets stay marked, and any billing left over."""
    more = f" (and {len(problems) - 5} more; see {report})" if len(problems) > 5 else ""
    return (
        f"restore {run_id}: " + "; ".join(problems[:5]) + more + "; the targets stay marked as a partial"
        f" restore ({MARK_KEY}): rerun with mode 'overwrite' to finish" + "".join(f"; {b}" for b in billing)
    )


def _part_notes(s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    """Every part's result or error note of the run, by key (fetched side by side: one small object a part)."""
    present = list_keys(s3, bucket, prefix + "results/") + list_keys(s3, bucket, prefix + "errors/")
    with ThreadPoolExecutor(max_workers=16) as pool:
        return dict(zip(present, pool.map(lambda key: get_json_or_none(s3, bucket, key), present), strict=True))


def _billing_back(ddb: Any, planned: list[dict[str, Any]]) -> list[str]:
    """Switch every target loaded on-demand back to its provisioned units; what could not be, and how to fix it."""
    failed = []
    for table in planned:
        if table.get("loadBilling"):
            try:
                capacity.put_back(ddb, table["target"], table["loadBilling"])
            except BillingNotRestored as exc:
                failed.append(str(exc))
    return failed


def _changes(s3: Any, bucket: str, prefix: str, tables: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """Each exact table's changes, applied by the machine's Map: its counts in its report row, or what did not
    finish (every partition must say it did; the Map's own accounting is not trusted)."""
    problems = []
    for table, row in zip(tables, rows, strict=True):
        counts, missing = changes_outcome(s3, bucket, prefix, table)
        row.update(counts)
        problems.extend(missing)
    return problems


class _TableCheck:
    """One table of a finished restore run: its parts' notes against the plan (counts, problems, report row)."""

    def __init__(self, table: dict[str, Any], notes: dict[str, Any], prefix: str) -> None:
        self.target = table["target"]
        self.problems: list[str] = []
        self.integrity = False
        self.dead_lettered = 0
        self.restored = self.duplicates = self.retries = 0
        for part in [] if table.get("importArn") else table["parts"]:
            result = notes.get(note_key(prefix, "results", table["index"], part["id"]))
            if result is not None:
                self._result(part, result)
            else:
                self._failure(part, notes.get(note_key(prefix, "errors", table["index"], part["id"])))
        self.row = {
            "source": table["source"],
            "format": table["format"],
            "target": self.target,
            "created": table["created"],
            "expectedItems": table["expectedItems"],
            "itemsRestored": self.restored,
            "parts": len(table["parts"]),
            "duplicateKeys": self.duplicates,
            "retries": self.retries,
            "method": table.get("method", "write"),
            "reason": table.get("reason"),
            **({"importArn": table["importArn"]} if table.get("importArn") else {}),
        }

    def imported(self, ddb: Any, s3: Any, table: dict[str, Any], run_id: str) -> None:
        """The table was restored by ImportTable: its counts checked and settings applied, or the problem named."""
        try:
            done = importtable.finish_planned(ddb, s3, table, run_id)
        except RestoreIncomplete as exc:
            self.problems.append(str(exc))
            return
        self.restored = self.row["itemsRestored"] = done["imported"]
        self.row.update(itemsRead=done["processed"], settings=done["settings"], warnings=done["warnings"])

    def _result(self, part: dict[str, Any], result: dict[str, Any]) -> None:
        self.restored += int(result["items"])
        self.duplicates += int(result.get("duplicateKeys", 0))
        self.retries += int(result.get("retries", 0))
        if part["items"] is not None and int(result["items"]) != int(part["items"]):
            self.integrity = True
            self.problems.append(
                f"table {self.target}: part {part['id']} restored {result['items']} items, "
                f"the backup says {part['items']}"
            )

    def _failure(self, part: dict[str, Any], error: dict[str, Any] | None) -> None:
        if error is None:
            self.problems.append(
                f"table {self.target}: part {part['id']} did not finish (no result; its restore never ended)"
            )
            return
        if error.get("error") == IntegrityError.__name__:
            self.integrity = True
        if error.get("deadLetter"):
            counts = error.get("counts") or {}
            self.dead_lettered += int(counts.get("deadLettered", 0))
        self.problems.append(
            f"table {self.target}: part {part['id']} failed: {error.get('error')}: {error.get('message')}"
        )
