"""The restore machine's exact restores (issue 14): the changes after the parts, to ``consistentAt`` or ``toTime``.

A restore of an exact backup applies its stored changes up to its
``consistentAt``; a request with ``toTime`` restores the newest exact backup
consistent at or before it and applies the archived changes up to it (refused
at plan time, naming why, inside a gap, before the archive or past its reach).

Finalize applies them after every part is written. The changes are folded to
one final change per key and sorted by key, so the list is the same in every
invocation: an invocation writes 25 at a time until its time budget is spent,
saves how far it got under the run's ``changes/`` and raises
``ChangesPending``; the state machine retries the step, which resumes there.
Writing a final state twice is harmless, so an invocation killed between
saves only repeats writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ddb_backup.aws.s3io import get_json, get_json_or_none, put_json
from ddb_backup.changes.consistent import backup_changes
from ddb_backup.changes.replay import apply, fold
from ddb_backup.changes.totime import changes_to, check_reach, newest_exact
from ddb_backup.errors import BadInput, ChangesPending
from ddb_backup.format import layout
from ddb_backup.names import parse_time, split_s3_url, utc_time
from ddb_backup.selection.selectors import changes_filter

BATCH = 25
#: Save the position every this many batches, besides when the budget runs out.
SAVE_EVERY = 200


def resolve_to_time(
    s3: Any, streams: Any, source_url: str, request: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``toTime`` request pointed at the newest exact backup consistent at or before it, and the plan's note.

    ``source_url``: the table's directory of backups (``s3://B/P/T/``). Refuses what the archive cannot prove.
    """
    if not request.get("table") or request.get("map") or request.get("backupId"):
        raise BadInput("'toTime' restores one table: give 'source' (the table's backups, s3://B/P/T/) and 'table'")
    when = parse_time(str(request["toTime"]), "toTime")
    if streams is None:
        raise BadInput("a restore to a time reads the table's stream: plan it with a streams client")
    bucket, table_dir = split_s3_url(source_url)
    table_dir = table_dir if table_dir.endswith("/") else table_dir + "/"
    directory, manifest = newest_exact(s3, bucket, table_dir, when)
    check_reach(streams, s3, bucket, table_dir, manifest, when)
    return {**request, "source": f"s3://{bucket}/{directory}"}, {"toTime": when.isoformat(), "tableDir": table_dir}


def note(location: str, consistent_at: str | None, to_time: dict[str, Any] | None) -> dict[str, Any] | None:
    """What ``plan.json`` records for a table restored exactly (None: no changes to apply)."""
    if consistent_at is None:
        return None
    return {"source": location, "consistentAt": consistent_at, **(to_time or {})}


def _final_changes(s3: Any, exact: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The final change of every key the restore must apply, sorted by key (the same list in every invocation)."""
    bucket, directory = split_s3_url(exact["source"])
    manifest = get_json(s3, bucket, directory + layout.MANIFEST)
    if "toTime" in exact:
        until = utc_time(exact["toTime"])
        changes = changes_to(s3, bucket, exact["tableDir"], manifest, until)
    else:
        until = utc_time(exact["consistentAt"])
        changes = backup_changes(s3, bucket, directory, manifest)
    return sorted(fold(changes, until).items())


def apply_changes(
    ddb: Any,
    s3: Any,
    bucket: str,
    prefix: str,
    table: dict[str, Any],
    *,
    budget: float,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any] | None:
    """Apply one planned table's changes, resuming where the last invocation stopped; its counts (None: no changes).

    Raises ``ChangesPending`` (position saved) when ``budget`` seconds pass with changes left.
    """
    exact = table.get("exact")
    if not exact:
        return None
    key = f"{prefix}changes/{table['index']}.json"
    done = get_json_or_none(s3, bucket, key) or {"applied": 0, "puts": 0, "deletes": 0}
    if done.get("finished"):
        return dict(done)
    final = _final_changes(s3, exact)
    keep = changes_filter(table.get("select"), s3)  # a restore of selected items: their changes only (issue 28)
    final = [(k, c) for k, c in final if keep(c)] if keep else final
    start, batches = clock(), 0
    while done["applied"] < len(final):
        counts = apply(ddb, table["target"], [c for _, c in final[done["applied"] : done["applied"] + BATCH]])
        done.update(applied=done["applied"] + counts["changes"], puts=done["puts"] + counts["puts"])
        done["deletes"] += counts["deletes"]
        batches += 1
        left = len(final) - done["applied"]
        if left and clock() - start >= budget:
            put_json(s3, bucket, key, done)
            raise ChangesPending(
                f"table {table['target']}: {done['applied']} of {len(final)} changes applied; resuming in the next try"
            )
        if left and batches % SAVE_EVERY == 0:
            put_json(s3, bucket, key, done)
    done.update(finished=True, changes=len(final), until=exact.get("toTime", exact["consistentAt"]))
    put_json(s3, bucket, key, done)
    return dict(done)
