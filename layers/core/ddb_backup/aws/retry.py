"""Retrying DynamoDB calls: one backoff policy, one list of "not now" answers, one retry engine.

* :func:`backoff_delay` is the jittered exponential backoff every wait uses;
* :func:`call_with_backoff` retries throttling a bounded number of times (data-plane calls);
* :class:`Retry` is a deadline plus that backoff, for table-admin calls that
  wait for a new or busy table (:func:`call_until_ready`, :func:`run_until_done`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from ddb_backup.names import lambda_seconds_left

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
#: "Not yet": the table is new or busy (settings refused for a while), or the account is at a limit.
NOT_READY_CODES = frozenset(
    {
        "ContinuousBackupsUnavailableException",
        "ResourceInUseException",
        "LimitExceededException",
        "BackupInUseException",
    }
)
#: Answers worth trying again later: throttling or "not yet".
RETRYABLE_CODES = THROTTLE_CODES | NOT_READY_CODES


def backoff_delay(attempt: int, base: float = 0.05, cap: float = 20.0, *, floor: float = 0.0) -> float:
    """Jittered exponential backoff: the step is ``min(cap, base * 2**attempt)``.

    ``floor`` is the share of the step always waited, the rest is uniform
    random: 0 is full jitter (the default), 0.5 equal jitter (never nothing).
    """
    step = min(cap, base * 2.0**attempt)
    return step * floor + random.uniform(0, step * (1 - floor))


def is_throttle(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in THROTTLE_CODES


def call_with_backoff(
    fn: Callable[..., T],
    /,
    *args: Any,
    attempts: int = 10,
    sleep: Callable[[float], None] = time.sleep,
    on_throttle: Callable[[], None] | None = None,
    **kwargs: Any,
) -> T:
    """Call ``fn``; on throttling, back off and try again, up to ``attempts`` times, then raise.

    ``on_throttle`` is told of every throttled try (a rate limiter halves its rate).
    """
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            if not is_throttle(exc) or attempt == attempts - 1:
                raise
            if on_throttle is not None:
                on_throttle()
            sleep(backoff_delay(attempt))
    raise AssertionError("unreachable")


class NotReady(Exception):
    """The table (or its continuous backups) is not ready yet; the reason is the message."""


def error_text(exc: BaseException) -> str:
    """``Code: Message`` of a ClientError; the reason of a NotReady; else the type and message."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code')}: {err.get('Message')}"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, NotReady) else str(exc)


def error_code(exc: BaseException) -> str:
    """The error code of a ClientError; empty for anything else."""
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


@dataclass(frozen=True)
class Retry:
    """How long and how often to try again: rounds of equal-jitter exponential backoff until ``deadline``."""

    deadline: float
    base: float = 1.0
    cap: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def within(cls, seconds: float, **kwargs: Any) -> Retry:
        clock: Callable[[], float] = kwargs.get("clock", time.monotonic)
        return cls(deadline=clock() + seconds, **kwargs)

    @classmethod
    def for_lambda(cls, context: Any, *, margin: float = 30.0, budget: float = 600.0, base: float = 1.0) -> Retry:
        """A budget that ends ``margin`` seconds before the invocation would time out, and at ``budget`` seconds
        at most; ``base`` is the first backoff step (``config.retry_for_lambda`` reads both from the environment).
        """
        remaining = lambda_seconds_left(context.get_remaining_time_in_millis, margin)
        return cls.within(max(0.0, min(budget, remaining)), base=base)

    def delay(self, attempt: int) -> float:
        """Equal jitter: half the step plus a random part of the other half, never nothing."""
        return backoff_delay(attempt, self.base, self.cap, floor=0.5)

    def left(self) -> float:
        return self.deadline - self.clock()


def call_until_ready(retry: Retry, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(**kwargs)``, retried while it raises :class:`NotReady` or a retryable error, until ``retry`` runs out."""
    attempt = 0
    while True:
        try:
            return fn(**kwargs)
        except (ClientError, NotReady) as exc:
            pause = retry.delay(attempt)
            retryable = isinstance(exc, NotReady) or error_code(exc) in RETRYABLE_CODES
            if not retryable or pause > retry.left():
                raise
            retry.sleep(pause)
            attempt += 1


def run_until_done(
    names: Iterable[str],
    attempt: Callable[[str], T],
    failed: Callable[[str, str], T],
    retry: Retry,
) -> list[T]:
    """Try ``attempt(name)`` for every name; retry those not ready, in rounds, until done or out of time.

    ``attempt`` returns a final result or raises :class:`NotReady` / a retryable
    ``ClientError``. Other errors end that name with ``failed(name, reason)``;
    names still pending at the deadline end the same way, with the last reason.
    Results come back in the order of ``names``.
    """
    order = list(dict.fromkeys(names))
    results: dict[str, T] = {}
    pending = list(order)
    last: dict[str, str] = {}
    started = retry.clock()
    rounds = 0
    while pending:
        waiting = []
        for name in pending:
            try:
                results[name] = attempt(name)
            except (NotReady, ClientError) as exc:
                if isinstance(exc, ClientError) and error_code(exc) not in RETRYABLE_CODES:
                    results[name] = failed(name, error_text(exc))
                    continue
                last[name] = error_text(exc)
                waiting.append(name)
            except BotoCoreError as exc:
                results[name] = failed(name, error_text(exc))
        pending = waiting
        if not pending:
            break
        pause = retry.delay(rounds)
        if pause > retry.left():
            elapsed = retry.clock() - started
            for name in pending:
                results[name] = failed(name, f"{last[name]} (still so after {elapsed:.0f} s and {rounds + 1} tries)")
            break
        retry.sleep(pause)
        rounds += 1
    return [results[name] for name in order]
