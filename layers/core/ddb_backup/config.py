"""Settings from the environment (set by template.yaml, or by the local stack).

The only reader of ``os.environ`` in the layer and the functions; only the handlers and the CLI import it.
"""

from __future__ import annotations

import os
from typing import Any

from ddb_backup.aws.retry import Retry
from ddb_backup.backup.plan import Settings
from ddb_backup.backup.scan import ScanSettings
from ddb_backup.errors import BadInput
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL, GZIP_LEVELS
from ddb_backup.native import snapshots
from ddb_backup.restore.run import RestoreSettings


def env_int(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"environment variable {name}={raw!r} is not an integer") from None
    if value < low:
        raise BadInput(f"environment variable {name}={value} is below {low}")
    if high is not None and value > high:
        raise BadInput(f"environment variable {name}={value} is above {high}")
    return value


def bucket() -> str:
    name = os.environ.get("BACKUP_BUCKET")
    if not name:
        raise BadInput("environment variable BACKUP_BUCKET is not set")
    return name


def prefix() -> str:
    return os.environ.get("BACKUP_PREFIX", "")


def plan_settings() -> Settings:
    return Settings(
        bucket=bucket(),
        prefix=prefix(),
        bytes_per_segment=env_int("BYTES_PER_SEGMENT", 512 * 1024**2, 1),
        max_segments=env_int("MAX_SEGMENTS", 1000, 1),
        read_percent=env_int("READ_PERCENT", 0, 0, 100) or None,
        concurrency=max_concurrency(),
    )


def scan_settings() -> ScanSettings:
    return ScanSettings(
        bucket=bucket(),
        part_bytes=env_int("PART_BYTES", 64 * 1024**2, 1),
        gzip_level=env_int("GZIP_LEVEL", DEFAULT_GZIP_LEVEL, GZIP_LEVELS.start, GZIP_LEVELS.stop - 1),
        page_limit=env_int("SCAN_PAGE_LIMIT", 0) or None,
    )


def scan_time_budget() -> float:
    """Seconds one scan invocation may run before handing over (SCAN_TIME_BUDGET_SECONDS)."""
    return float(env_int("SCAN_TIME_BUDGET_SECONDS", 600))


def max_concurrency() -> int:
    """Segments scanned at once by the Distributed Map (MAX_CONCURRENCY)."""
    return env_int("MAX_CONCURRENCY", 100, 1)


def restore_settings() -> RestoreSettings:
    """From the environment template.yaml sets (BACKUP_BUCKET, BACKUP_PREFIX, RESTORE_*, MAX_CONCURRENCY)."""
    return RestoreSettings(
        bucket=bucket(),
        prefix=prefix(),
        write_concurrency=env_int("RESTORE_WRITE_CONCURRENCY", 8, 1),
        attempts=env_int("RESTORE_ATTEMPTS", 12, 1),
        time_budget=float(env_int("RESTORE_TIME_BUDGET_SECONDS", 600)),
        max_concurrency=max_concurrency(),
        write_percent=float(env_int("WRITE_PERCENT", 0, 0)) or None,
        import_poll=env_int("IMPORT_POLL_SECONDS", 30, 1),
    )


def retry_for_lambda(context: Any) -> Retry:
    """``Retry.for_lambda`` with the budget TIME_BUDGET_SECONDS caps (default 600) and the first backoff step
    RETRY_BASE_SECONDS sets (default 1)."""
    budget = float(os.environ.get("TIME_BUDGET_SECONDS") or 600)
    base = float(os.environ.get("RETRY_BASE_SECONDS") or 1.0)
    return Retry.for_lambda(context, budget=budget, base=base)


def stack_marker() -> str:
    """The marker of this stack's own on-demand backups, from STACK_NAME."""
    return snapshots.stack_marker(os.environ.get("STACK_NAME", ""))
