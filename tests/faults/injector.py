"""Faults injected at the HTTP layer of the clients the handlers use.

A ``before-send`` handler registered first answers some requests itself, the
way a throttled or failing service would, so botocore's own retry logic, our
backoff and Step Functions' Retry all meet the fault as they would on AWS.
UnprocessedItems are made by taking items out of a BatchWriteItem request
before the emulator sees it and reporting them back in the response.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from devkit.strict.throughput import refuse

THROTTLE = {
    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message": "The level of configured provisioned throughput for the table was exceeded (injected)",
}
S3_ERRORS = [
    (500, "InternalError", "We encountered an internal error. Please try again. (injected)"),
    (503, "SlowDown", "Please reduce your request rate. (injected)"),
]


class Faults:
    """Throttle ``throttle`` of Scan/BatchWriteItem calls, leave ``unprocessed`` of batches partly
    unprocessed, fail ``s3_errors`` of S3 puts and gets with 500/503. Exact shares, thread-safe, counted."""

    def __init__(self, *, throttle: float = 0.0, unprocessed: float = 0.0, s3_errors: float = 0.0, seed: int = 7):
        self.throttle = throttle
        self.unprocessed = unprocessed
        self.s3_errors = s3_errors
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.held = threading.local()

    def _roll(self, p: float, kind: str) -> bool:
        """True for exactly a share ``p`` of the calls of ``kind``, spread evenly (deterministic)."""
        with self.lock:
            self.calls[kind] += 1
            n = self.calls[kind]
            return int(n * p) > int((n - 1) * p)

    def install(self, ddb: Any, s3: Any) -> None:
        ddb.meta.events.register_first("before-send.dynamodb", self._dynamodb)
        ddb.meta.events.register("after-call.dynamodb.BatchWriteItem", self._report_unprocessed)
        s3.meta.events.register_first("before-send.s3", self._s3)

    @staticmethod
    def _response(request: Any, status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
        return AWSResponse(request.url, status, headers, MockRawResponse(body))

    def _dynamodb(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        operation = target.rsplit(".", 1)[-1]
        self.held.items = None
        if operation not in ("Scan", "BatchWriteItem"):
            return None
        if self._roll(self.throttle, operation):
            self.counts[f"{operation} throttled"] += 1
            body = json.dumps(THROTTLE).encode()
            answer = self._response(request, 400, {"x-amzn-RequestId": "injected"}, body)
            refuse(request, "injected")  # made harmless: moto's handler still runs and would carry it out
            return answer
        if operation == "BatchWriteItem" and self._roll(self.unprocessed, "unprocessed"):
            self._hold_back(request)
        return None

    def _hold_back(self, request: Any) -> None:
        body = json.loads(request.body)
        (table, requests), *rest = body["RequestItems"].items()
        if rest or len(requests) < 2:
            return
        keep = len(requests) // 2
        held = requests[keep:]
        body["RequestItems"][table] = requests[:keep]
        data = json.dumps(body).encode()
        request.body = data
        request.headers["Content-Length"] = str(len(data))
        self.held.items = {table: held}
        self.counts["BatchWriteItem batches partly unprocessed"] += 1
        self.counts["BatchWriteItem items held back"] += len(held)

    def _report_unprocessed(self, parsed: dict[str, Any], **_: Any) -> None:
        held = getattr(self.held, "items", None)
        if held:
            for table, requests in held.items():
                parsed.setdefault("UnprocessedItems", {}).setdefault(table, []).extend(
                    _client_form(r) for r in requests
                )
            self.held.items = None

    def _s3(self, request: Any, **_: Any) -> AWSResponse | None:
        if request.method not in ("PUT", "GET") or "/moto-api" in request.url:
            return None
        if not self._roll(self.s3_errors, f"S3 {request.method}"):
            return None
        status, code, message = self.rng.choice(S3_ERRORS)
        self.counts[f"S3 {request.method} {code}"] += 1
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        return self._response(request, status, {"Content-Type": "application/xml"}, body)


def _client_form(request: dict[str, Any]) -> dict[str, Any]:
    """A wire-form PutRequest, as the low-level client would have parsed it (binary as bytes)."""
    from ddb_backup.format.ddbjson import item_from_wire

    return {"PutRequest": {"Item": item_from_wire(request["PutRequest"]["Item"])}}
