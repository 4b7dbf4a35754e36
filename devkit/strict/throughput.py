"""Provisioned throughput for the local stack: a PROVISIONED table throttles at its units, as on AWS.

moto never throttles. Here each provisioned table has a token bucket per direction, refilled at its
ReadCapacityUnits / WriteCapacityUnits per second and holding at most ``burst_seconds`` of them.
A request is admitted while its bucket holds any units and is then charged in full, so the bucket may
go into debt (as AWS's burst capacity lets one item of more units than a second's worth through):

- a read (Scan, Query, GetItem, BatchGetItem) with the bucket empty is refused with
  ``ProvisionedThroughputExceededException`` (HTTP 400, which botocore and the core retry); one that
  goes through is charged what it read (4 KiB a unit, half for eventually consistent reads);
- a BatchWriteItem writes its requests in order while the bucket holds units (1 KiB a unit) and
  returns the rest as ``UnprocessedItems``, as botocore's parser gives them; it is refused whole
  when the bucket is empty; PutItem/DeleteItem/UpdateItem likewise. The requests written reach moto
  as they were sent (the request body is rebuilt only when some are held back).

On-demand tables are not limited. Figures are reported by :attr:`Throughput.throttled`.
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

ACCOUNT = "123456789012"
READS = {"Scan", "Query", "GetItem", "BatchGetItem"}
WRITES = {"BatchWriteItem", "PutItem", "DeleteItem", "UpdateItem"}


@dataclass
class Bucket:
    """Units earned at ``rate`` a second, at most ``capacity`` held; ``tokens`` below 0 is debt."""

    rate: float
    capacity: float
    tokens: float
    at: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic

    def refill(self) -> float:
        """The units held now (negative while in debt), after adding those earned since the last look."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens


def _item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it, closely enough: names plus the wire text of the values."""
    return sum(
        len(name.encode()) + len(json.dumps(value, separators=(",", ":")).encode()) for name, value in item.items()
    )


def write_units(item: dict[str, Any]) -> int:
    return max(1, math.ceil(_item_bytes(item) / 1024))


class _Response:
    """The minimal raw response AWSResponse needs."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def throttled_response(table: str) -> AWSResponse:
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": f"The level of configured provisioned throughput for the table {table} was exceeded. "
            "Consider increasing your provisioning level with the UpdateTable API.",
        }
    ).encode()
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/x-amz-json-1.0"
    headers["x-amzn-RequestId"] = "throttled"
    return AWSResponse("https://dynamodb.us-east-1.amazonaws.com/", 400, headers, _Response(body))


def refuse(request: Any, table: str) -> AWSResponse:
    """A throttled answer, and the request made harmless: botocore still hands it to moto's handler.

    botocore's ``before-send`` calls every handler and keeps the first response, so moto would
    otherwise carry out the refused request (write the items it was told were not written).
    """
    request.headers["X-Amz-Target"] = "DynamoDB_20120810.DescribeLimits"
    request.body = b"{}"
    request.headers["Content-Length"] = "2"
    return throttled_response(table)


class Throughput:
    """Token buckets of the provisioned tables of one local stack, and botocore handlers that apply them."""

    def __init__(self, burst_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_seconds = burst_seconds
        self.clock = clock
        self.buckets: dict[tuple[str, str], Bucket] = {}
        self.throttled: Counter[str] = Counter()
        self.consumed: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._stash = threading.local()

    # -- tables
    def _units(self, table: str, direction: str) -> float | None:
        from moto.dynamodb.models import dynamodb_backends

        found = dynamodb_backends[ACCOUNT]["us-east-1"].tables.get(table)
        if found is None or found.billing_mode == "PAY_PER_REQUEST":
            return None
        units = found.throughput.get("ReadCapacityUnits" if direction == "read" else "WriteCapacityUnits") or 0
        return float(units) or None

    def _bucket(self, table: str, direction: str) -> Bucket | None:
        units = self._units(table, direction)
        if units is None:
            return None
        bucket = self.buckets.get((table, direction))
        if bucket is None or bucket.rate != units:
            capacity = max(units * self.burst_seconds, 1.0)
            bucket = Bucket(units, capacity, capacity, self.clock(), self.clock)
            self.buckets[(table, direction)] = bucket
        return bucket

    def spend(self, table: str, direction: str, units: float) -> bool:
        """Charge ``units`` if the table's bucket holds any (it may go into debt); False, counted, if empty."""
        with self._lock:
            bucket = self._bucket(table, direction)
            if bucket is None:
                return True
            if bucket.refill() <= 0:
                self.throttled[f"{table}:{direction}"] += 1
                return False
            bucket.tokens -= units
            self.consumed[f"{table}:{direction}"] += units
            return True

    def charge(self, table: str, direction: str, units: float) -> None:
        """Charge units already consumed (a read's size is known only after it); the bucket may go negative."""
        with self._lock:
            bucket = self._bucket(table, direction)
            if bucket is not None:
                bucket.refill()
                bucket.tokens -= units
                self.consumed[f"{table}:{direction}"] += units

    # -- botocore handlers
    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        target = (
            (request.headers.get("X-Amz-Target") or b"").decode()
            if isinstance(request.headers.get("X-Amz-Target"), bytes)
            else str(request.headers.get("X-Amz-Target") or "")
        )
        if not target.startswith("DynamoDB_"):
            return None
        operation = target.split(".", 1)[1]
        if operation not in READS and operation not in WRITES:
            return None
        body = json.loads(request.body or b"{}")
        if operation in READS:
            tables = list(body.get("RequestItems", {})) or [body.get("TableName", "")]
            for table in tables:
                if not self.spend(table, "read", 0.0):
                    return refuse(request, table)
            self._stash.read = (tables, body.get("ConsistentRead", False))
            return None
        if operation == "BatchWriteItem":
            return self._batch_write(request, body)
        table = body.get("TableName", "")
        if not self.spend(table, "write", write_units(body.get("Item") or body.get("Key") or {})):
            return refuse(request, table)
        return None

    def _batch_write(self, request: Any, body: dict[str, Any]) -> AWSResponse | None:
        kept: dict[str, list[Any]] = {}
        left: dict[str, list[Any]] = {}
        for table, requests in body.get("RequestItems", {}).items():
            for i, req in enumerate(requests):
                item = (req.get("PutRequest") or {}).get("Item") or (req.get("DeleteRequest") or {}).get("Key") or {}
                if not self.spend(table, "write", write_units(item)):
                    left[table] = requests[i:]
                    break
                kept.setdefault(table, []).append(req)
        if not left:
            return None
        if not kept:
            return refuse(request, next(iter(left)))
        request.body = json.dumps({**body, "RequestItems": kept}).encode()
        request.headers["Content-Length"] = str(len(request.body))
        self._stash.unprocessed = left
        return None

    def after_call(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.service_model.service_name != "dynamodb":
            return
        left = getattr(self._stash, "unprocessed", None)
        if left and model.name == "BatchWriteItem":
            self._stash.unprocessed = None
            if http_response.status_code == 200:
                merged = parsed.setdefault("UnprocessedItems", {})
                for table, requests in left.items():
                    merged.setdefault(table, []).extend(from_wire(requests))
        read = getattr(self._stash, "read", None)
        if read and model.name in READS:
            self._stash.read = None
            tables, consistent = read
            units = math.ceil(len(http_response.content or b"") / 4096) * (1.0 if consistent else 0.5)
            for table in tables:
                self.charge(table, "read", max(units / len(tables), 0.5))


def _value(av: dict[str, Any]) -> dict[str, Any]:
    ((kind, v),) = av.items()
    if kind == "B":
        return {"B": base64.b64decode(v)}
    if kind == "BS":
        return {"BS": [base64.b64decode(x) for x in v]}
    if kind == "M":
        return {"M": {k: _value(x) for k, x in v.items()}}
    if kind == "L":
        return {"L": [_value(x) for x in v]}
    return av


def from_wire(requests: list[Any]) -> list[Any]:
    """Unprocessed requests as botocore's parser gives them: binary values decoded from base64."""
    out = []
    for req in requests:
        ((kind, inner),) = req.items()
        ((field_name, item),) = inner.items()
        out.append({kind: {field_name: {k: _value(v) for k, v in item.items()}}})
    return out
