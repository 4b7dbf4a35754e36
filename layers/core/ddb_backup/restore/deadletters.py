"""Dead letters: items a restore could not write, saved beside the backup so they can be restored later."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddb_backup import names
from ddb_backup.format import layout, location
from ddb_backup.format.ddbjson import Item, line_from_client_item
from ddb_backup.format.localfile import PRIVATE_FILE_MODE


def dead_letter_line(item: Item) -> bytes:
    """An item as a dead-letter line: its backup line when it still has one, else serialized."""
    raw = getattr(item, "line", None)
    return raw + b"\n" if isinstance(raw, bytes) else line_from_client_item(item)


def _write_private(path: Path, body: bytes) -> Path:
    """Write ``body`` to a new file at ``path`` (or ``<stem>-2``, ``-3``... when taken), mode 0600 whatever the umask.

    Dead letters hold the table's data; an earlier run's are never overwritten.
    """
    base = path.name[: -len(".json.gz")]
    for n in range(1, 10_000):
        candidate = path if n == 1 else path.with_name(f"{base}-{n}.json.gz")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fd, PRIVATE_FILE_MODE)
            fh.write(body)
        return candidate
    raise FileExistsError(f"{path}: no free name for a dead-letter file")


def dead_letter_home(beside: str, bucket: str, run_prefix: str) -> str:
    """Where a state machine restore puts its dead letters: always in the backup bucket.

    Beside the backup (``beside``) when that directory is in the backup bucket under the stack's
    prefix (the one holding the bookkeeping, ``@ddb-backup/restores/``); else (a source in another bucket, e.g. a native export)
    in the run's own directory, ``<run_prefix>``: the stack may write nowhere else.
    """
    marker = layout.BOOKKEEPING + "restores/"
    stack_prefix = run_prefix.rsplit(marker, 1)[0] if marker in run_prefix else run_prefix
    if names.is_s3_url(beside) and beside.startswith(f"s3://{bucket}/{stack_prefix}"):
        return beside
    return f"s3://{bucket}/{run_prefix}"


def dead_letter_writer(base: str, run_id: str, s3: Any = None) -> Callable[[str, list[Item]], str]:
    """A function ``save(name, items) -> url`` that writes items a restore could not write.

    They go to ``<base>dead-letter/<run_id>/<name>.json.gz`` (S3 or local), as
    gzip ``{"Item": ...}`` lines: ``open_source`` reads such an object back,
    so it can be restored once the cause is fixed.
    """
    directory = location.join(location.as_dir(base) if names.is_s3_url(base) else base, f"dead-letter/{run_id}/")

    def save(name: str, items: list[Item]) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        # An item still in its backup line (fastwrite.RawItem) is saved as that line, unparsed:
        # a line DynamoDB refused may not parse, and must be kept all the same.
        body = gzip.compress(b"".join(dead_letter_line(i) for i in items), compresslevel=6)
        if names.is_s3_url(directory):
            url = directory + f"{safe}.json.gz"
            bucket, key = names.split_s3_url(url)
            location.s3_client(s3).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        else:
            path = Path(directory) / f"{safe}.json.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            url = str(_write_private(path, body))
        return url

    return save
