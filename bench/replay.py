"""A replay endpoint on 127.0.0.1: DynamoDB and S3 answered from memory, as fast as a socket allows.

It answers ``Scan`` with prepared ~1 MiB pages of realistic items (every
attribute type, ~1 KB each, from :mod:`devkit.sample`), ``BatchWriteItem``
with "all processed", S3 ``PutObject`` with 200, and ``DescribeTable`` with a
canned description, so what a benchmark measures is the client pipeline alone.

A table named ``replay-<pages>`` has ``pages`` pages per segment; the page to
send next is read from ``ExclusiveStartKey`` (``{"pk": {"S": "page-000042"}}``),
so the server keeps no per-scan state. Responses carry ``x-amz-crc32`` as
DynamoDB's do, so botocore's checksum check runs as it does on AWS.

Run it as its own process (the client's CPU time is what is measured):
``python -m bench.replay [--port N]`` prints ``port <N>`` when listening and
stops on SIGTERM or when its parent closes stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import zlib
from typing import Any

from ddb_backup.format.ddbjson import item_to_wire
from devkit import sample

PAGE_BYTES = 1024 * 1024
ITEM_SIZE = 580  # sample.make_item's size knob: ~1 KB of wire JSON per item
DISTINCT_PAGES = 4
KEYS = [("pk", "HASH")]


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def build_pages(count: int = DISTINCT_PAGES, page_bytes: int = PAGE_BYTES, seed: int = 7) -> list[tuple[bytes, int]]:
    """``count`` distinct pages: (``{"Items":[...],"Count":n,"ScannedCount":n`` without the closing brace, n)."""
    rng = random.Random(seed)
    pages = []
    i = 0
    for _ in range(count):
        chunks: list[bytes] = []
        size = 0
        while size < page_bytes:
            chunk = _compact(item_to_wire(sample.make_item(KEYS, i, rng, ITEM_SIZE)))
            chunks.append(chunk)
            size += len(chunk) + 1
            i += 1
        n = len(chunks)
        pages.append((b'{"Items":[' + b",".join(chunks) + b'],"Count":%d,"ScannedCount":%d' % (n, n), n))
    return pages


def describe(table: str, pages: list[tuple[bytes, int]]) -> dict[str, Any]:
    n = int(table.rsplit("-", 1)[1]) if table.startswith("replay-") else 1
    per_page = sum(c for _, c in pages) // len(pages)
    return {
        "Table": {
            "TableName": table,
            "TableStatus": "ACTIVE",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "ItemCount": n * per_page,
            "TableSizeBytes": n * PAGE_BYTES,
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
            "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
            "CreationDateTime": 1.7e9,
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0, "NumberOfDecreasesToday": 0},
        }
    }


class Replay(asyncio.Protocol):
    pages: list[tuple[bytes, int]] = []
    stats = {"scan": 0, "scanItems": 0, "batchWrite": 0, "writeItems": 0, "put": 0, "putBytes": 0}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            method, path = head[0].split(" ")[:2]
            self.respond(method, path, headers, body)

    def send(self, status: int, body: bytes, extra: str = "", ctype: str = "application/x-amz-json-1.0") -> None:
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"x-amz-crc32: {zlib.crc32(body) & 0xFFFFFFFF}\r\nx-amzn-RequestId: r\r\n{extra}\r\n"
        )
        self.transport.write(head.encode() + body)

    def respond(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        target = headers.get("x-amz-target", "")
        stats = self.stats
        if method == "POST" and target.endswith(".Scan"):
            req = json.loads(body)
            table = req["TableName"]
            total = int(table.rsplit("-", 1)[1]) if table.startswith("replay-") else 1
            start = req.get("ExclusiveStartKey")
            index = int(start["pk"]["S"].split("-")[1]) + 1 if start else 0
            page, n = self.pages[index % len(self.pages)]
            stats["scan"] += 1
            stats["scanItems"] += n
            tail = b"}" if index + 1 >= total else b',"LastEvaluatedKey":{"pk":{"S":"page-%06d"}}}' % index
            self.send(200, page + tail)
        elif method == "POST" and target.endswith(".BatchWriteItem"):
            stats["batchWrite"] += 1
            stats["writeItems"] += body.count(b'"PutRequest"')
            self.send(200, b'{"UnprocessedItems":{}}')
        elif method == "POST" and target.endswith(".DescribeTable"):
            self.send(200, _compact(describe(json.loads(body)["TableName"], self.pages)))
        elif method == "POST" and target.endswith(".DescribeTimeToLive"):
            self.send(200, b'{"TimeToLiveDescription":{"TimeToLiveStatus":"DISABLED"}}')
        elif method == "POST" and target.endswith(".DescribeContinuousBackups"):
            self.send(200, b'{"ContinuousBackupsDescription":{"ContinuousBackupsStatus":"ENABLED"}}')
        elif method == "POST" and target.endswith(".ListTagsOfResource"):
            self.send(200, b'{"Tags":[]}')
        elif method == "GET" and path == "/__stats":
            self.send(200, _compact(stats), ctype="application/json")
        elif method == "PUT":
            stats["put"] += 1
            stats["putBytes"] += len(body)
            self.send(200, b"", 'ETag: "0"\r\n', ctype="application/xml")
        elif method == "POST" and target:
            name = target.rsplit(".", 1)[-1]
            self.send(400, _compact({"__type": "ValidationException", "message": f"replay: no {name}"}))
        else:
            self.send(404, b"", ctype="application/xml")


async def serve(port: int) -> None:
    Replay.pages = build_pages()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Replay, "127.0.0.1", port)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    # The parent holds our stdin: when it goes away, so do we.
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(1) else None)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
