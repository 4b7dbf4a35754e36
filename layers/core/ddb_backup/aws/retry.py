"""Bounded, jittered exponential backoff for DynamoDB throttling."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")

THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def backoff_delay(attempt: int, base: float = 0.05, cap: float = 20.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))


def is_throttle(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in THROTTLE_CODES


def call_with_backoff(
    fn: Callable[..., T],
    /,
    *args: Any,
    attempts: int = 10,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call ``fn``; on throttling, back off and try again, up to ``attempts`` times, then raise."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            if not is_throttle(exc) or attempt == attempts - 1:
                raise
            sleep(backoff_delay(attempt))
    raise AssertionError("unreachable")
