"""Checks a restore makes before it creates or writes anything."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ddb_backup import names
from ddb_backup.aws.ratelimit import table_rate
from ddb_backup.aws.retry import error_code
from ddb_backup.aws.tables import describe_table
from ddb_backup.errors import BackupIncomplete, IntegrityError
from ddb_backup.format import location
from ddb_backup.restore import capacity

if TYPE_CHECKING:
    from ddb_backup.format.lines import PartRef
    from ddb_backup.format.sources import Source

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def _size(url: str, s3: Any) -> int | None:
    """The size of a file or object, None when it is not there."""
    if not names.is_s3_url(url):
        return os.path.getsize(url) if os.path.isfile(url) else None
    bucket, key = names.split_s3_url(url)
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
    if any(names.is_s3_url(p.url) for p in parts):
        s3 = location.s3_client(s3)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(parts)))) as pool:
        sizes = list(pool.map(lambda p: _size(p.url, s3), parts))
    missing = [p.url for p, size in zip(parts, sizes, strict=True) if size is None]
    wrong = [
        f"{p.url} is {size} bytes, the manifest says {p.bytes}"
        for p, size in zip(parts, sizes, strict=True)
        if size is not None and p.bytes is not None and size != p.bytes
    ]

    def more(names: list[str]) -> str:
        return "" if len(names) <= 5 else f" (and {len(names) - 5} more)"

    if missing:
        raise BackupIncomplete(
            f"{len(missing)} part(s) the backup names are missing: {', '.join(missing[:5])}{more(missing)}; "
            "nothing was created or written"
        )
    if wrong:
        raise IntegrityError(f"{'; '.join(wrong[:5])}{more(wrong)}: nothing was created or written")


def resume_hint(request: dict[str, Any], target: str, source: str | None = None, mode: str | None = None) -> str:
    """The exact command (and state-machine input) that resumes a restore into ``target``.

    ``source``: the exact backup the restore began (a table's directory names its latest backup, which a newer
    backup would change; a set's run is pinned by ``backupId``). ``mode``: the interrupted run's; a mirror is
    resumed as a mirror (overwrite would keep what the mirror deletes), anything else in mode overwrite.
    """
    words = ["ddb-backup", "restore", source or request["source"]]
    if request.get("map"):
        words += [w for m in request["map"] for w in ("--map", f"{m['from']}={m['to']}")]
        words += ["--backup-id", request["backupId"]] if request.get("backupId") else []
        words += ["--tables", ",".join(request["tables"])] if request.get("tables") else []
    else:
        words += ["--table", target]
    if (mode or request.get("mode")) == "mirror":
        counted = ["--expect-items", str(request["expectItems"])] if request.get("expectItems") is not None else []
        # --yes: the deletes were asked for with the mirror; without it a resume that has no terminal refuses them
        return f"resume it with `{shlex.join([*words, *_repeated(request), *counted, '--mode', 'mirror', '--yes'])}`"
    return (
        f"resume it with `{shlex.join([*words, *_repeated(request), '--mode', 'overwrite'])}` "
        '(restore state machine: the same input with "mode": "overwrite")'
    )


def _repeated(request: dict[str, Any]) -> list[str]:
    """The options of ``request`` a resumed run must repeat: the source allowed, the keys, the pace, partial sets."""
    words = ["--allow-source"] if request.get("allowSource") else []
    words += ["--allow-partial"] if request.get("allowPartial") else []
    words += ["--keys", ",".join(request["keys"])] if request.get("keys") else []
    words += ["--write-rate", f"{float(request['writeRate']):g}"] if request.get("writeRate") else []
    words += ["--write-percent", f"{float(request['writePercent']):g}"] if request.get("writePercent") else []
    words += ["--load-billing", request["loadBilling"]] if request.get("loadBilling") else []
    words += ["--read-rate", f"{float(request['readRate']):g}"] if request.get("readRate") else []
    words += ["--read-percent", f"{float(request['readPercent']):g}"] if request.get("readPercent") else []
    return words


def write_rate(
    ddb: Any, src: Source, target: str, request: dict[str, Any], default_percent: float | None
) -> float | None:
    """Write units a second for ``target`` (None: no limit), from ``writeRate``, ``writePercent`` or the default.

    The percent is of the target's provisioned units: the existing table's, or
    those the backup saved for a table to create. A target loaded on-demand
    (``loadBilling``), or created on-demand, is limited only by ``writeRate``.
    """
    if request.get("loadBilling") == "on-demand":
        return float(request["writeRate"]) if request.get("writeRate") else None
    on_demand = {"TableName": target, "BillingModeSummary": {"BillingMode": capacity.ON_DEMAND}}
    described = describe_table(ddb, target) or (src.description or {}).get("Table") or on_demand
    return table_rate(
        described,
        "write",
        rate=request.get("writeRate"),
        percent=request.get("writePercent"),
        default_percent=default_percent,
    )


def load_adjuster(
    src: Source, request: dict[str, Any], plan: dict[str, Any] | None
) -> tuple[Callable[[dict[str, Any]], dict[str, Any]] | None, list[str]]:
    """How to change the CreateTable of ``src``'s target: on-demand for the load, pre-warmed for ``within``; notes.

    Only a table the restore creates is changed (the adjuster is not called otherwise).
    """
    on_demand = bool(plan and not plan["switch"])
    saved = (src.description or {}).get("Table") or {}
    created_on_demand = on_demand or not saved or capacity.provisioned_spec(saved) is None
    restore = plan["restore"] if plan else None
    if not request.get("within"):
        return (partial(capacity.create_on_demand, warm=None, restore=restore) if on_demand else None), []
    if not created_on_demand:
        return None, [
            "--within pre-warms on-demand tables: this target is created provisioned "
            "(add --load-billing on-demand to load it on-demand and pre-warmed)"
        ]
    size = int(saved.get("TableSizeBytes") or sum(p.bytes or 0 for p in src.parts))
    # No count anywhere (JSON lines, a stale ItemCount of 0): one item of that size, the fewest units it can take.
    items = src.expected_items if src.expected_items is not None else int(saved.get("ItemCount") or 1)
    warm, note = capacity.warm_throughput(items, size, names.parse_duration(request["within"]))
    return partial(capacity.create_on_demand, warm=warm, restore=restore), [note]
