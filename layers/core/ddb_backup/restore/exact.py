"""The restore machine's exact restores (issue 14): the changes after the parts, to ``consistentAt`` or ``toTime``.

A restore of an exact backup applies its stored changes up to its
``consistentAt``; a request with ``toTime`` restores the newest exact backup
consistent at or before it and applies the archived changes up to it (refused
at plan time, naming why, inside a gap, before the archive or past its reach).

After every part is written, the machine partitions the changes by key and
applies the partitions in a Distributed Map (:mod:`ddb_backup.restore.partitioned`).
"""

from __future__ import annotations

from typing import Any

from ddb_backup.changes.totime import check_reach, newest_exact
from ddb_backup.errors import BadInput
from ddb_backup.names import parse_time, split_s3_url


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
