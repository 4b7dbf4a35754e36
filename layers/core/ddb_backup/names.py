"""The rules every layer shares, each in one place: ids, table names, keys, S3 URLs, times, durations, deadlines.

A leaf: it imports nothing of ddb_backup but ``errors`` (itself a leaf), so every
other module, the handlers, the CLI and devkit can import it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from collections.abc import Callable

from ddb_backup.errors import BadInput

#: A backup id: when it started (UTC) and 8 random hex digits, so ids sort by time.
BACKUP_ID = r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"
#: The time at the start of a backup id (its first 16 characters).
BACKUP_ID_STAMP = "%Y%m%dT%H%M%SZ"
TABLE_NAME = r"^[A-Za-z0-9_.-]{3,255}$"
#: The start of a table name: the same characters, any length.
NAME_PREFIX = r"^[A-Za-z0-9_.-]{0,255}$"
BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
#: A restore run's id (the execution name, or a backup id): one path segment (not "." or "..", see check_key).
RUN_ID = r"^[A-Za-z0-9_.-]{1,80}$"
S3_SCHEME = "s3://"

_BACKUP_ID = re.compile(BACKUP_ID)
_TABLE = re.compile(TABLE_NAME)
_RUN_ID = re.compile(RUN_ID)
_BUCKET = re.compile(BUCKET)
#: What no key may hold: control characters and backslashes.
UNSAFE_IN_KEY = re.compile(r"[\x00-\x1f\x7f\\]")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")


# --- backup ids, run ids, table names ---


def new_backup_id(now: dt.datetime | None = None) -> str:
    """A backup id that sorts by time: ``20261122T030000Z-1a2b3c4d`` (UTC)."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.astimezone(dt.UTC):{BACKUP_ID_STAMP}}-{secrets.token_hex(4)}"


def check_backup_id(backup_id: str) -> str:
    if not _BACKUP_ID.fullmatch(backup_id):
        raise BadInput(f"backupId {backup_id!r} is not of the form 20261122T030000Z-1a2b3c4d")
    return backup_id


def is_backup_id(name: str) -> bool:
    """True when ``name`` is a backup id (a table directory's ``changes/`` is not)."""
    return bool(_BACKUP_ID.fullmatch(name))


def backup_id_time(backup_id: str) -> dt.datetime:
    """When a backup (or a run named like one) started, from its id; ``ValueError`` for another name."""
    return dt.datetime.strptime(backup_id[:16], BACKUP_ID_STAMP).replace(tzinfo=dt.UTC)


def is_run_id(name: str | None) -> bool:
    """True when ``name`` can name a restore run's directory (an execution name, or a backup id)."""
    return bool(name and _RUN_ID.fullmatch(name))


def check_table_name(name: str) -> str:
    if not isinstance(name, str) or not _TABLE.fullmatch(name):
        raise BadInput(f"table name {name!r} is not a valid DynamoDB table name")
    return name


def is_table_name(name: str) -> bool:
    """True when ``name`` could be a DynamoDB table's (so its directory holds backups, not bookkeeping)."""
    return bool(_TABLE.fullmatch(name))


# --- keys and S3 URLs ---


def check_key(key: str, field: str, *, prefix: bool) -> str:
    """A key (``prefix``: a key prefix ending in '/') that stays where it is put (``ValueError`` otherwise).

    Refused: a leading '/', an empty, '.' or '..' segment, a backslash or a
    control character. The empty prefix (a bucket's root) is allowed.
    """
    body = key[:-1] if prefix and key.endswith("/") else key
    if (
        (prefix and key and not key.endswith("/"))
        or UNSAFE_IN_KEY.search(key)
        or (key and any(segment in ("", ".", "..") for segment in body.split("/")))
    ):
        shape = "a key prefix ending in '/'" if prefix else "a key"
        raise ValueError(f"{field} {key!r:.200} must be {shape} without '..', '.' or empty segments")
    return key


def check_s3_url(url: str, field: str, *, prefix: bool) -> str:
    """An ``s3://bucket/key`` URL whose key passes :func:`check_key` (``ValueError`` otherwise)."""
    if not isinstance(url, str) or not is_s3_url(url):
        raise ValueError(f"{field} must be an s3:// URL, got {url!r:.200}")
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{field}: {bucket!r:.100} is not an S3 bucket name")
    check_key(key, field, prefix=prefix)
    return url


def is_s3_url(url: str) -> bool:
    return url.startswith(S3_SCHEME)


def s3_url_key(url: str) -> str:
    """The key of an ``s3://bucket/key`` URL, with no check of the bucket ('' for the bucket's root)."""
    return url[len(S3_SCHEME) :].partition("/")[2]


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``); ``BadInput`` for another URL or no bucket."""
    if not is_s3_url(url):
        raise BadInput(f"{url!r} is not an s3:// URL")
    bucket, _, key = url[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise BadInput(f"{url!r} names no bucket")
    return bucket, key


# --- times, durations, deadlines ---


def utc_time(text: str) -> dt.datetime:
    """An ISO 8601 time (``Z`` or any offset) as aware UTC-comparable time; naive means UTC. ``ValueError``
    for another text."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_time(text: str, option: str) -> dt.datetime:
    """``utc_time`` for a person's input: ``BadInput`` naming ``option`` (e.g. ``--to-time``) when not ISO 8601."""
    try:
        return utc_time(text)
    except ValueError:
        raise BadInput(f"{option} {text!r} is not an ISO 8601 time such as 2026-12-01T10:00:00Z") from None


def parse_duration(text: str | int) -> int:
    """``90m``, ``2h``, ``1h30m``, ``1d``, ``3600`` or ``3600s`` -> seconds (at least 1)."""
    m = _DURATION.fullmatch(str(text).strip().lower())
    if not m or not any(m.groups()):
        raise BadInput(f"duration {text!r}: expected e.g. 90m, 2h, 1h30m, 1d or 3600s")
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total < 1:
        raise BadInput(f"duration {text!r} must be at least one second")
    return total


def lambda_seconds_left(remaining_ms: Callable[[], int], reserve_s: float = 30.0) -> float:
    """Seconds a Lambda invocation has before ``reserve_s`` before its timeout (``context.get_remaining_time_in_millis``)."""
    return remaining_ms() / 1000 - reserve_s


def deadline_from(remaining_ms: Callable[[], int], budget_s: float, reserve_s: float = 30.0) -> Callable[[], float]:
    """``time_left`` for a Lambda: stop at the budget, or ``reserve_s`` before the timeout, whichever is first."""
    end = time.monotonic() + budget_s
    return lambda: min(end - time.monotonic(), lambda_seconds_left(remaining_ms, reserve_s))
