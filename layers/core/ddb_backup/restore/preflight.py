"""Checks a restore makes before it creates or writes anything."""

from __future__ import annotations

import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import error_code
from ddb_backup.errors import BackupIncomplete, IntegrityError
from ddb_backup.format import location
from ddb_backup.format.lines import PartRef

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def _size(url: str, s3: Any) -> int | None:
    """The size of a file or object, None when it is not there."""
    if not location.is_s3(url):
        return os.path.getsize(url) if os.path.isfile(url) else None
    bucket, key = location.split(url)
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        if error_code(exc) in _NOT_FOUND:
            return None
        raise


def check_parts_present(parts: list[PartRef], s3: Any, workers: int = 32) -> None:
    """Every part exists, with the size its manifest gives (HEAD, side by side), or raise naming each that is not.

    ``BackupIncomplete`` for missing parts, ``IntegrityError`` for a size that
    differs (a truncated or replaced object). The checksums are still checked
    where each part is read.
    """
    if not parts:
        return
    if any(location.is_s3(p.url) for p in parts):
        s3 = location.s3_client(s3)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(parts)))) as pool:
        sizes = list(pool.map(lambda p: _size(p.url, s3), parts))
    missing = [p.url for p, size in zip(parts, sizes, strict=True) if size is None]
    wrong = [
        f"{p.url} is {size} bytes, the manifest says {p.bytes}"
        for p, size in zip(parts, sizes, strict=True)
        if size is not None and p.bytes is not None and size != p.bytes
    ]
    more = lambda names: "" if len(names) <= 5 else f" (and {len(names) - 5} more)"  # noqa: E731
    if missing:
        raise BackupIncomplete(
            f"{len(missing)} part(s) the backup names are missing: {', '.join(missing[:5])}{more(missing)}; "
            "nothing was created or written"
        )
    if wrong:
        raise IntegrityError(f"{'; '.join(wrong[:5])}{more(wrong)}: nothing was created or written")


def resume_hint(request: dict[str, Any], target: str) -> str:
    """The exact command (and state-machine input) that resumes a restore into ``target``."""
    words = ["ddb-backup", "restore", request["source"]]
    if request.get("map"):
        words += [w for m in request["map"] for w in ("--map", f"{m['from']}={m['to']}")]
        words += ["--backup-id", request["backupId"]] if request.get("backupId") else []
        words += ["--tables", ",".join(request["tables"])] if request.get("tables") else []
    else:
        words += ["--table", target]
    return (
        f"resume it with `{shlex.join([*words, '--mode', 'overwrite'])}` "
        '(restore state machine: the same input with "mode": "overwrite")'
    )
