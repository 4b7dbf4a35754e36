"""Settings from the environment (set by template.yaml, or by the local stack)."""

from __future__ import annotations

import os

from ddb_backup.backup.plan import Settings
from ddb_backup.backup.scan import ScanSettings
from ddb_backup.errors import BadInput
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL, GZIP_LEVELS


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
