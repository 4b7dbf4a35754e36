"""How the command line talks to endpoints: timeouts, a line while it waits, errors that say what to do next.

Every request (with botocore's retries) gets ``--timeout`` seconds: a connect or read
that takes longer is not retried past it, so an endpoint that accepts and never answers
fails in about that time, not in botocore's 60 s x attempts. After a few seconds without
an answer one line on stderr says what the command is waiting for.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.handlers import BUILTIN_HANDLERS

from ddb_backup.aws.clients import override_config
from ddb_backup.errors import DdbBackupError

DEFAULT_TIMEOUT = 60.0
#: Seconds without an answer before the "waiting for" line.
NOTICE_AFTER = 5.0


class EndpointTimeout(DdbBackupError):
    """An endpoint did not answer within --timeout."""


@dataclass
class _Watch:
    timeout: float | None = None
    notice: Callable[[str], None] | None = None
    notice_after: float = NOTICE_AFTER
    calls: dict[int, list[Any]] = field(default_factory=dict)  # id(context) -> [what, started, noticed]
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None


_WATCH = _Watch()


def configure(
    timeout: float, *, notice: Callable[[str], None] | None = None, notice_after: float = NOTICE_AFTER
) -> None:
    """Give every client made from now on ``timeout`` seconds per request, and say when one is slow."""
    _WATCH.timeout, _WATCH.notice, _WATCH.notice_after = timeout, notice, notice_after
    override_config(Config(connect_timeout=timeout, read_timeout=timeout))
    if not any(entry[1] is _before_call for entry in BUILTIN_HANDLERS):
        BUILTIN_HANDLERS.extend(
            [
                ("before-call", _before_call),
                ("after-call", _after_call),
                ("after-call-error", _after_call),
                ("needs-retry", _needs_retry),
            ]
        )
    if notice and _WATCH.thread is None:
        _WATCH.thread = threading.Thread(target=_watch, name="endpoint-watch", daemon=True)
        _WATCH.thread.start()


def debug_log() -> None:
    """botocore's wire log (requests, responses, retries) on stderr."""
    import boto3

    boto3.set_stream_logger("botocore", logging.DEBUG)


def _before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    what = f"{model.service_model.service_name} {model.name} at {params.get('url', '?').split('?')[0]}"
    context["ddbBackupStarted"] = now = time.monotonic()
    with _WATCH.lock:
        _WATCH.calls[id(context)] = [what, now, False]


def _after_call(context: dict[str, Any], **_: Any) -> None:
    with _WATCH.lock:
        _WATCH.calls.pop(id(context), None)


def _needs_retry(request_dict: dict[str, Any], caught_exception: Exception | None = None, **_: Any) -> None:
    """No retry of a connect or read that failed once the request's time is up."""
    timeout = _WATCH.timeout
    started = request_dict.get("context", {}).get("ddbBackupStarted")
    if timeout is None or started is None or not isinstance(caught_exception, ConnectionError | HTTPClientError):
        return
    if time.monotonic() - started >= timeout:
        url = request_dict.get("url", "?").split("?")[0]
        raise EndpointTimeout(
            f"no answer from {url} within {timeout:g} s ({type(caught_exception).__name__}): "
            "is the endpoint up and reachable? (--endpoint-url / AWS_ENDPOINT_URL; --timeout SECONDS to wait longer)"
        )


def _watch() -> None:
    while True:
        time.sleep(0.5)
        now = time.monotonic()
        with _WATCH.lock:
            due = [c for c in _WATCH.calls.values() if not c[2] and now - c[1] >= _WATCH.notice_after]
            for call in due:
                call[2] = True
        for what, started, _ in due:
            if _WATCH.notice:
                _WATCH.notice(
                    f"waiting for {what}: no answer for {now - started:.0f} s (gives up after {_WATCH.timeout:g} s)"
                )


def describe_failure(exc: Exception) -> str | None:
    """One line for an AWS or OS failure, with the next step where there is one; None for anything else."""
    if isinstance(exc, NoRegionError):
        return "no AWS region: give --region REGION or set AWS_REGION (or use a --profile that has one)"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return f"{exc}: give --profile NAME (or set AWS_PROFILE), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, ProfileNotFound):
        return f"{exc}: check --profile / AWS_PROFILE ('aws configure list-profiles' shows the names)"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{exc.operation_name}: {err.get('Code')}: {err.get('Message')}"
    if isinstance(exc, ConnectionError):  # "Could not connect to the endpoint URL", connect timeouts
        return (
            f"{exc}: check --endpoint-url / AWS_ENDPOINT_URL (is that endpoint up?), the network, "
            "and the region (--region / AWS_REGION: it makes the AWS endpoint's name)"
        )
    if isinstance(exc, BotoCoreError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return None


def stderr_notice(text: str) -> None:
    """Print ``text`` as a note on stderr."""
    print(f"ddb-backup: {text}", file=sys.stderr, flush=True)
