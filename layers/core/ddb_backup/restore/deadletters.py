"""Dead letters: items a restore could not write, saved beside the backup so they can be restored later."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddb_backup.format import location
from ddb_backup.format.ddbjson import Item, line_from_client_item


def dead_letter_line(item: Item) -> bytes:
    """An item as a dead-letter line: its backup line when it still has one, else serialized."""
    raw = getattr(item, "line", None)
    return raw + b"\n" if isinstance(raw, bytes) else line_from_client_item(item)


def dead_letter_home(beside: str, bucket: str, run_prefix: str) -> str:
    """Where a state machine restore puts its dead letters: always in the backup bucket.

    Beside the backup (``beside``) when that directory is in the backup bucket under the stack's
    prefix (the one holding ``_restores/``); else (a source in another bucket, e.g. a native export)
    in the run's own directory, ``<run_prefix>``: the stack may write nowhere else.
    """
    stack_prefix = run_prefix.rsplit("_restores/", 1)[0] if "_restores/" in run_prefix else run_prefix
    if location.is_s3(beside) and beside.startswith(f"s3://{bucket}/{stack_prefix}"):
        return beside
    return f"s3://{bucket}/{run_prefix}"


def dead_letter_writer(base: str, run_id: str, s3: Any = None) -> Callable[[str, list[Item]], str]:
    """A function ``save(name, items) -> url`` that writes items a restore could not write.

    They go to ``<base>dead-letter/<run_id>/<name>.json.gz`` (S3 or local), as
    gzip ``{"Item": ...}`` lines: ``open_source`` reads such an object back,
    so it can be restored once the cause is fixed.
    """
    directory = location.join(location.as_dir(base) if location.is_s3(base) else base, f"dead-letter/{run_id}/")

    def save(name: str, items: list[Item]) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        # An item still in its backup line (fastwrite.RawItem) is saved as that line, unparsed:
        # a line DynamoDB refused may not parse, and must be kept all the same.
        body = gzip.compress(b"".join(dead_letter_line(i) for i in items), compresslevel=6)
        if location.is_s3(directory):
            url = directory + f"{safe}.json.gz"
            bucket, key = location.split(url)
            location.s3_client(s3).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        else:
            path = Path(directory) / f"{safe}.json.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            url = str(path)
        return url

    return save
