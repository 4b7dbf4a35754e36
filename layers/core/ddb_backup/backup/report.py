"""A backup run's end: each table finalized on its own, then one report for the run.

Every table whose segments all finished gets its manifest, whatever happened
to the others. Each table's finalize leaves a note under the run's bookkeeping
prefix (``tables/<table>.json``: its summary, or the error that stopped it);
the report gathers the notes into ``report.json`` and fails the run, naming
every table without a manifest and its unfinished segments, unless all are
complete. It trusts the notes, not the Map's accounting (a child may fail or
never run).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ddb_backup.aws.s3io import get_json, get_json_many, put_json
from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import TABLES
from ddb_backup.errors import BackupIncomplete

NOTES = "tables/"
REPORT = "report.json"
#: Tables whose problem is quoted in full in the execution's cause (all are named).
QUOTED = 5
#: The cause stays well inside Step Functions' 32,768-character limit.
MAX_NAMES = 20_000


def note_key(run_prefix: str, table: str) -> str:
    return f"{run_prefix}{NOTES}{table}.json"


def finalize_noted(
    s3: Any, bucket: str, directory: str, table: str, run_prefix: str | None, **exact: Any
) -> dict[str, Any]:
    """:func:`finalize_table` (``exact``: its streams, settle and limits), its outcome once done noted under ``run_prefix`` (when
    given); a failure is noted and re-raised."""
    try:
        summary = finalize_table(s3, bucket, directory, **exact)
    except Exception as exc:
        if run_prefix is not None:
            note = {"table": table, "backupDir": directory, "complete": False, "problem": f"{exc}"}
            put_json(s3, bucket, note_key(run_prefix, table), {**note, "error": type(exc).__name__})
        raise
    if run_prefix is not None and summary["done"]:  # not done: the next call goes on (the state machine's loop)
        put_json(s3, bucket, note_key(run_prefix, table), {**summary, "complete": True})
    return summary


def write_report(
    s3: Any,
    bucket: str,
    run_prefix: str,
    backup_id: str,
    *,
    scan_error: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Gather every table's note into ``report.json`` (one row a table, the run's totals and problems); return it."""
    tables = get_json(s3, bucket, run_prefix + TABLES)
    notes = get_json_many(s3, bucket, [note_key(run_prefix, t["table"]) for t in tables])
    rows: list[dict[str, Any]] = []
    for table in tables:
        note = notes[note_key(run_prefix, table["table"])]
        if note is None:
            problem = f"table {table['table']}: its finalize did not finish (no note), so it has no manifest"
            note = {"table": table["table"], "backupDir": table["backupDir"], "complete": False, "problem": problem}
        warning = {"warning": table["warning"]} if table.get("warning") else {}  # e.g. not exact, and why
        rows.append({**note, "totalSegments": table["totalSegments"], **warning})
    problems = [r["problem"] for r in rows if not r["complete"]]
    if scan_error and not problems:
        problems.append(
            "the scan Map failed although every table finished: "
            f"{scan_error.get('Error')}: {str(scan_error.get('Cause'))[:2000]}"
        )
    complete = [r for r in rows if r["complete"]]
    report = {
        "backupId": backup_id,
        "status": "FAILED" if problems else "SUCCEEDED",
        "finishedAt": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "tables": rows,
        "incomplete": [r["table"] for r in rows if not r["complete"]],
        "totals": {
            "tables": len(rows),
            "complete": len(complete),
            "segments": sum(int(r["totalSegments"]) for r in rows),
            **{k: sum(int(r[k]) for r in complete) for k in ("items", "bytes", "parts")},
        },
        "problems": problems,
    }
    put_json(s3, bucket, run_prefix + REPORT, report)
    return report


def run_output(report: dict[str, Any], bucket: str, run_prefix: str) -> dict[str, Any]:
    """The execution's output (small: totals and where the report is), or ``BackupIncomplete`` naming each problem."""
    where = f"s3://{bucket}/{run_prefix}{REPORT}"
    problems, incomplete = report["problems"], report["incomplete"]
    if problems:
        names = ", ".join(incomplete)
        if len(names) > MAX_NAMES:
            names = names[:MAX_NAMES].rsplit(", ", 1)[0] + ", ..."
        head = f"backup {report['backupId']}: "
        if incomplete:
            head += f"{len(incomplete)} of {len(report['tables'])} tables have no manifest ({names}); "
        more = f"; and {len(problems) - QUOTED} more" if len(problems) > QUOTED else ""
        raise BackupIncomplete(head + "; ".join(p[:2000] for p in problems[:QUOTED]) + more + f"; see {where}")
    return {"backupId": report["backupId"], "bucket": bucket, "report": run_prefix + REPORT, **report["totals"]}
