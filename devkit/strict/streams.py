"""A DynamoDB stream as strict as AWS's, in place of moto's one shard that never splits, trims or pages empty.

What AWS does and this model does too (issue 23), each switchable for a test:

- several shards per table, keys routed by a hash of the partition key; a shard *splits*: it closes
  and two children open (``ParentShardId``), each taking half its keys, so a key's changes run on
  from the parent into one child;
- ``DescribeStream`` pages (``Limit``, ``ExclusiveStartShardId``, ``LastEvaluatedShardId``);
- ``GetRecords`` answers empty pages before and between records (follow ``NextShardIterator``);
  an open shard read to its end answers empty pages, a closed one no iterator;
- records are trimmed 24 h after they were written, closed shards leave the stream 24 h after they
  closed, iterators expire after 15 min (``ExpiredIteratorException``), a position before the trim
  horizon is refused (``TrimmedDataAccessException``);
- more than two readers of one shard at once are throttled (``LimitExceededException``);
- ``ApproximateCreationDateTime`` has whole seconds; sequence numbers grow across a digit boundary
  (compared as strings they sort wrong);
- event source mappings are fed per shard, concurrently across shards, in batches, at least once
  (a batch is sometimes delivered twice), parents before children, with the shard id and window
  that a tumbling window gives (``shardId``, ``window``), by :meth:`StrictStreams.deliver`.

Time is a simulated clock (:class:`SimClock`): real time plus what a test advances it by.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from moto.awslambda.utils import get_backend
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult
from moto.dynamodb.models.table import StreamRecord, StreamShard
from moto.dynamodbstreams.models import DynamoDBStreamsBackend
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.sqs.models import sqs_backends

RETENTION = 24 * 3600.0
ITERATOR_TTL = 15 * 60.0
FIRST_SEQUENCE_NUMBER = 10**21 - 400  # 21 digits (the API's least), then 22: string order differs from number order


class SimClock:
    """Real time, plus the seconds a test advanced it by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Shard:
    stream: str  # the stream's ARN
    id: str
    parent: str | None
    prefix: str  # the bits of the key hash this shard's keys start with
    start_seq: int
    opened: float
    records: list[dict[str, Any]] = field(default_factory=list)  # wire form (binary base64), as moto makes them
    times: list[float] = field(default_factory=list)  # when each record was written (simulated)
    trimmed: int = 0  # records[:trimmed] are past the retention
    closed: float | None = None
    end_seq: int | None = None

    def describe(self) -> dict[str, Any]:
        rng = {"StartingSequenceNumber": str(self.start_seq)}
        if self.end_seq is not None:
            rng["EndingSequenceNumber"] = str(self.end_seq)
        return {
            "ShardId": self.id,
            "SequenceNumberRange": rng,
            **({"ParentShardId": self.parent} if self.parent else {}),
        }


@dataclass
class Stream:
    arn: str
    table: Any
    created: float
    shards: dict[str, Shard] = field(default_factory=dict)
    delivered: dict[tuple[str, str], int] = field(default_factory=dict)  # (mapping uuid, shard) -> records sent
    seq: int = FIRST_SEQUENCE_NUMBER - 1  # the last sequence number given


@dataclass
class Iterator:
    shard: Shard
    position: int  # index into shard.records of the next record
    issued: float
    chain: str  # one reader: a GetShardIterator and the NextShardIterators that follow it
    empty_left: int  # empty pages this reader still gets before records


class StrictStreams:
    """The strict stream model; :meth:`patches` puts it in place of moto's streams."""

    def __init__(
        self,
        *,
        shards: int = 4,
        split_every: int | None = None,
        describe_page: int = 100,
        empty_before: int = 2,
        empty_between: float = 0.2,
        page: int = 1000,
        duplicates: float = 0.2,
        batch_size: int | None = None,
        readers: int = 2,
        window: int = 60,
        seed: int = 0,
    ) -> None:
        self.clock = SimClock()
        self.initial_shards = shards
        self.split_every = split_every  # a shard splits once it holds this many records
        self.describe_page = describe_page
        self.empty_before = empty_before  # a fresh reader gets up to this many empty pages first
        self.empty_between = empty_between  # chance of an empty page between two pages of records
        self.page = page  # most records a GetRecords answers
        self.duplicates = duplicates  # chance a delivered batch is delivered again
        self.batch_size = batch_size  # None: each mapping's BatchSize
        self.readers = readers
        self.window = window
        self.random = random.Random(seed)
        self.streams: dict[str, Stream] = {}
        self.iterators: dict[str, Iterator] = {}
        self.active: dict[str, dict[str, float]] = {}  # shard -> reader chain -> when it last read (real time)
        self.lock = threading.RLock()
        self.splits = 0
        self.throttled = 0

    # ------------------------------------------------------------------ writing
    def stream_for(self, table: Any) -> Stream:
        arn = f"{table.table_arn}/stream/{table.latest_stream_label}"
        stream = self.streams.get(arn)
        if stream is None:
            now = self.clock.now()
            stream = self.streams[arn] = Stream(arn, table, now)
            bits = max(0, (self.initial_shards - 1).bit_length())
            for n in range(self.initial_shards):
                self._open(stream, None, format(n, f"0{bits}b") if bits else "", now)
        return stream

    def _open(self, stream: Stream, parent: str | None, prefix: str, now: float) -> Shard:
        digest = hashlib.sha256(f"{stream.arn}{prefix}{len(stream.shards)}".encode()).hexdigest()[:8]
        shard = Shard(
            stream.arn, f"shardId-{int(now * 1000):020d}-{digest}", parent, prefix, self._next_seq(stream), now
        )
        stream.shards[shard.id] = shard
        return shard

    @staticmethod
    def _next_seq(stream: Stream) -> int:
        """The stream's next sequence number: one counter, so numbers grow across shards and splits."""
        stream.seq += 1
        return stream.seq

    def add(self, table: Any, record: dict[str, Any]) -> None:
        """A change moto made (its StreamRecord's JSON): stamped, numbered and put on its key's shard."""
        with self.lock:
            stream = self.stream_for(table)
            now = self.clock.now()
            self._trim(stream, now)
            keys = record["dynamodb"]["Keys"]
            bits = _bits(json.dumps(keys[table.hash_key_attr], sort_keys=True))
            shard = next(s for s in stream.shards.values() if s.closed is None and bits.startswith(s.prefix))
            body = dict(record["dynamodb"])
            body["SequenceNumber"] = str(self._next_seq(stream))
            body["ApproximateCreationDateTime"] = float(int(now))  # whole seconds, as AWS stamps them
            shard.records.append({**record, "dynamodb": body, "eventSourceARN": stream.arn})
            shard.times.append(now)
            if self.split_every and len(shard.records) >= self.split_every:
                self._split(stream, shard, now)

    def split(self, table: Any, shard_id: str | None = None) -> list[str]:
        """Close a shard (the oldest open one unless named) and open its two children; their ids."""
        with self.lock:
            stream = self.stream_for(table)
            shard = stream.shards[shard_id] if shard_id else next(s for s in stream.shards.values() if s.closed is None)
            return self._split(stream, shard, self.clock.now())

    def _split(self, stream: Stream, shard: Shard, now: float) -> list[str]:
        shard.closed = now
        shard.end_seq = int(shard.records[-1]["dynamodb"]["SequenceNumber"]) if shard.records else shard.start_seq
        self.splits += 1
        return [self._open(stream, shard.id, shard.prefix + bit, now).id for bit in "01"]

    def _trim(self, stream: Stream, now: float) -> None:
        for shard in list(stream.shards.values()):
            while shard.trimmed < len(shard.times) and shard.times[shard.trimmed] < now - RETENTION:
                shard.trimmed += 1
            if shard.closed is not None and shard.closed < now - RETENTION:
                del stream.shards[shard.id]

    # ------------------------------------------------------------------ reading (the DynamoDB Streams API)
    def _stream(self, arn: str) -> Stream:
        stream = self.streams.get(arn)
        if stream is None:
            raise JsonRESTError("ResourceNotFoundException", f"Requested resource not found: Stream: {arn} not found")
        self._trim(stream, self.clock.now())
        return stream

    def describe_stream(self, backend: Any, arn: str, limit: int | None, start: str | None) -> dict[str, Any]:
        with self.lock:
            table = backend._get_table_from_arn(arn)
            stream = self.stream_for(table) if arn.endswith(str(table.latest_stream_label)) else self._stream(arn)
            self._trim(stream, self.clock.now())  # stream_for does not trim
            shards = list(stream.shards.values())
            if start:
                ids = [s.id for s in shards]
                shards = shards[ids.index(start) + 1 :] if start in ids else []
            size = min(limit or 100, self.describe_page)
            out = {
                "StreamArn": arn,
                "StreamLabel": table.latest_stream_label,
                "StreamStatus": "ENABLED",
                "StreamViewType": table.stream_specification["StreamViewType"],
                "CreationRequestDateTime": dt.datetime.fromtimestamp(stream.created, dt.UTC),
                "TableName": table.name,
                "KeySchema": table.schema,
                "Shards": [s.describe() for s in shards[:size]],
            }
            if len(shards) > size:
                out["LastEvaluatedShardId"] = shards[size - 1].id
            return out

    def get_shard_iterator(self, arn: str, shard_id: str, kind: str, seq: int | None) -> str:
        with self.lock:
            stream = self._stream(arn)
            shard = stream.shards.get(shard_id)
            if shard is None:
                raise JsonRESTError("ResourceNotFoundException", f"Requested resource not found: Shard: {shard_id}")
            numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in shard.records]
            if kind == "TRIM_HORIZON":
                position = shard.trimmed
            elif kind == "LATEST":
                position = len(numbers)
            else:
                assert seq is not None
                position = sum(1 for n in numbers if n < seq) + (kind == "AFTER_SEQUENCE_NUMBER" and seq in numbers)
                if position < shard.trimmed or (seq < shard.start_seq):
                    raise JsonRESTError(
                        "TrimmedDataAccessException", f"{seq} is before the trim horizon of shard {shard_id}"
                    )
            return self._iterator(shard, position, chain=_token(), empty=self.random.randint(0, self.empty_before))

    def _iterator(self, shard: Shard, position: int, *, chain: str, empty: int) -> str:
        token = f"{shard.stream}|1|{_token()}"  # as AWS's: the stream's ARN leads (IAM reads it)
        self.iterators[token] = Iterator(shard, position, self.clock.now(), chain, empty)
        return token

    def get_records(self, token: str, limit: int) -> dict[str, Any]:
        with self.lock:
            it = self.iterators.pop(token, None)
            if it is None or self.clock.now() - it.issued > ITERATOR_TTL:
                raise JsonRESTError("ExpiredIteratorException", "Iterator expired: iterators last 15 minutes")
            self._read_by(it.shard.id, it.chain)
            shard = it.shard
            it.position = max(it.position, shard.trimmed)  # records trimmed under a reader: it skips them, as AWS does
            if it.empty_left > 0 or (it.position < len(shard.records) and self.random.random() < self.empty_between):
                records: list[dict[str, Any]] = []
                empty_left = max(0, it.empty_left - 1)
            else:
                records = shard.records[it.position : it.position + min(limit, self.page)]
                empty_left = 0
            position = it.position + len(records)
            out: dict[str, Any] = {"Records": [_client_record(r) for r in records]}
            if shard.closed is None or position < len(shard.records) or records or empty_left:
                out["NextShardIterator"] = self._iterator(shard, position, chain=it.chain, empty=empty_left)
            return out

    def _read_by(self, shard: str, chain: str) -> None:
        """A third reader of a shard within a second is throttled, as AWS throttles more than two."""
        now = time.monotonic()
        readers = {c: t for c, t in self.active.get(shard, {}).items() if now - t < 1.0}
        if chain not in readers and len(readers) >= self.readers:
            self.throttled += 1
            raise JsonRESTError("LimitExceededException", f"more than {self.readers} readers of shard {shard}")
        readers[chain] = now
        self.active[shard] = readers

    def done_reading(self, chain: str) -> None:
        for readers in self.active.values():
            readers.pop(chain, None)

    # ------------------------------------------------------------------ event source mappings
    def deliver(self, rounds: int = 100) -> int:
        """Feed every mapped stream's records to its Lambda: per shard, shards concurrently, parents first,
        in batches, some twice. Returns the batches sent; a failing invocation raises (the test sees it)."""
        sent = 0
        for _ in range(rounds):
            work = self._pending_batches()
            if not work:
                return sent
            with ThreadPoolExecutor(max_workers=max(1, len(work))) as pool:
                sent += sum(pool.map(lambda w: self._send(*w), work))
        raise AssertionError(f"records still undelivered after {rounds} rounds")

    def _pending_batches(self) -> list[tuple[Stream, Any, Shard, int, int]]:
        work = []
        with self.lock:
            for stream in self.streams.values():
                for esm in list(stream.table.lambda_event_source_mappings.values()):
                    if not esm.enabled or not _mapped(esm):
                        continue
                    size = self.batch_size or int(getattr(esm, "batch_size", 100) or 100)
                    for shard in stream.shards.values():
                        if shard.parent and not self._delivered_to_end(stream, esm, shard.parent):
                            continue  # Lambda finishes a parent before it reads its children
                        start = max(stream.delivered.get((esm.uuid, shard.id), 0), shard.trimmed)
                        if start < len(shard.records):
                            work.append((stream, esm, shard, start, min(len(shard.records), start + size)))
        return work

    def _delivered_to_end(self, stream: Stream, esm: Any, shard_id: str) -> bool:
        shard = stream.shards.get(shard_id)
        if shard is None:  # left the stream: nothing more of it can come
            return True
        return shard.closed is not None and stream.delivered.get((esm.uuid, shard_id), 0) >= len(shard.records)

    def _send(self, stream: Stream, esm: Any, shard: Shard, start: int, end: int) -> int:
        records = shard.records[start:end]
        now = self.clock.now()
        begin = int(now // self.window * self.window)
        event = {
            "Records": [{**r, "awsRegion": stream.arn.split(":")[3]} for r in records],
            "shardId": shard.id,
            "eventSourceARN": stream.arn,
            "window": {"start": _iso(begin), "end": _iso(begin + self.window)},
            "state": {},
            "isFinalInvokeForWindow": False,
            "isWindowTerminatedEarly": False,
        }
        backend = get_backend(stream.table.account_id, stream.arn.split(":")[3])
        function = backend._lambdas.get_arn(esm.function_arn)
        sends = 2 if self.random.random() < self.duplicates else 1
        tries = 0
        while sends:  # at least once: a batch may come again, and a failed one is retried
            tries += 1
            if _invoke(function, event):
                sends -= 1
            elif tries > int(esm.max_retry_attempts if esm.max_retry_attempts is not None else 3):
                self._drop(backend, esm, stream, shard, start, end)
                break
        with self.lock:
            key = (esm.uuid, shard.id)
            stream.delivered[key] = max(stream.delivered.get(key, 0), end)
        return tries

    def _drop(self, backend: Any, esm: Any, stream: Stream, shard: Shard, start: int, end: int) -> None:
        """Retries exhausted: the batch's description goes to the on-failure destination (or the test fails)."""
        destination = ((esm.destination_config or {}).get("OnFailure") or {}).get("Destination")
        if not destination:
            raise AssertionError(f"{esm.function_arn} failed a batch of {shard.id} and has no on-failure destination")
        info = {
            "shardId": shard.id,
            "startSequenceNumber": shard.records[start]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": shard.records[end - 1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso_ms(shard.times[start]),
            "approximateArrivalOfLastRecord": _iso_ms(shard.times[end - 1]),
            "batchSize": end - start,
            "streamArn": stream.arn,
        }
        region, account, name = destination.split(":")[3], destination.split(":")[4], destination.split(":")[5]
        sqs_backends[account][region].send_message(name, json.dumps({"version": "1.0", "DDBStreamBatchInfo": info}))

    # ------------------------------------------------------------------ moto
    def patches(self) -> list[Any]:
        """Patches (not started) that put this model in place of moto's streams."""
        model = self

        def add(shard: Any, old: Any, new: Any) -> None:
            event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
            view = shard.table.stream_specification["StreamViewType"]
            model.add(shard.table, StreamRecord(shard.table, view, event, old, new, 0).to_json())

        def describe_stream(handler: Any) -> Any:
            doc = model.describe_stream(
                handler.backend,
                handler._get_param("StreamArn"),
                handler._get_param("Limit"),
                handler._get_param("ExclusiveStartShardId"),
            )
            return ActionResult({"StreamDescription": doc})

        def get_shard_iterator(backend: Any, arn: str, shard: str, kind: str, seq: Any = None) -> Any:
            return mock.Mock(arn=model.get_shard_iterator(arn, shard, kind, None if seq is None else int(seq)))

        def get_records(backend: Any, token: str, limit: int) -> dict[str, Any]:
            return model.get_records(token, int(limit or 1000))

        return [
            mock.patch.object(StreamShard, "add", add),
            mock.patch.object(DynamoDBStreamsHandler, "describe_stream", describe_stream),
            mock.patch.object(DynamoDBStreamsBackend, "get_shard_iterator", get_shard_iterator),
            mock.patch.object(DynamoDBStreamsBackend, "get_records", get_records),
        ]


def _bits(text: str) -> str:
    return format(int(hashlib.sha256(text.encode()).hexdigest()[:16], 16), "064b")


def _token() -> str:
    return base64.urlsafe_b64encode(random.randbytes(12)).decode()


def _mapped(esm: Any) -> bool:
    """Whether the mapping still exists (moto leaves a deleted one on the table)."""
    return esm.uuid in get_backend(esm.account_id, esm.region)._event_source_mappings


def _invoke(function: Any, event: dict[str, Any]) -> bool:
    """One invocation; False when it failed, or answered a windowed event without ``state`` (Lambda counts that
    as a failure)."""
    headers: dict[str, str] = {}
    body = function.invoke(json.dumps(event), {}, headers)
    if "x-amz-function-error" in headers:
        return False
    result = json.loads(body or b"null")
    return "window" not in event or (isinstance(result, dict) and "state" in result)


def _iso_ms(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decoded(av: dict[str, Any]) -> dict[str, Any]:
    if "B" in av and isinstance(av["B"], str):
        return {"B": base64.b64decode(av["B"])}
    if "BS" in av:
        return {"BS": [base64.b64decode(b) if isinstance(b, str) else b for b in av["BS"]]}
    if "M" in av:
        return {"M": {k: _decoded(v) for k, v in av["M"].items()}}
    if "L" in av:
        return {"L": [_decoded(v) for v in av["L"]]}
    return av


def _client_record(record: dict[str, Any]) -> dict[str, Any]:
    """A record as GetRecords answers it: images with bytes for binary (moto's response encoder encodes them
    once more, so a client gets the item), the time as a timestamp, no ``eventSourceARN``."""
    body = dict(record["dynamodb"])
    for name in ("Keys", "NewImage", "OldImage"):
        if name in body:
            body[name] = {k: _decoded(v) for k, v in body[name].items()}
    body["ApproximateCreationDateTime"] = dt.datetime.fromtimestamp(body["ApproximateCreationDateTime"], dt.UTC)
    out = {**record, "dynamodb": body}
    out.pop("eventSourceARN", None)
    return out
