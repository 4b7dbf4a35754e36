"""The local stack's provisioned-throughput throttle (devkit.strict.throughput), on plain moto with its handlers."""

from __future__ import annotations

import base64
import json
import random
import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from ddb_backup.format.ddbjson import compact_json, item_to_wire
from ddb_backup.restore import fastwrite
from ddb_backup.restore.write import write_items
from devkit import sample
from devkit.strict.throughput import Bucket, Throughput, from_wire
from tests.conftest import canonical, table_items


class Clock:
    """A clock that moves only when told, or slept on (so what a bucket holds is exact, and waits take no time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def _client(throughput: Throughput) -> Any:
    """A DynamoDB client that meets ``throughput`` (no botocore retries: every refusal is seen)."""
    ddb = boto3.session.Session().client(
        "dynamodb", region_name="us-east-1", config=Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    ddb.meta.events.register_first("before-send.dynamodb", throughput.before_send)
    ddb.meta.events.register("after-call.dynamodb", throughput.after_call)
    return ddb


def _provisioned(ddb: Any, name: str, rcu: int, wcu: int, key_type: str = "S") -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": key_type}],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu},
    )


def _binary_keyed(count: int, size: int = 600) -> list[dict[str, Any]]:
    """Items with every attribute type and a binary key (bytes with every value of a byte somewhere)."""
    rng = random.Random(7)
    out = []
    for i, item in enumerate(sample.items([("k", "HASH")], count, seed=3, size=size)):
        item["k"] = {"B": bytes([i % 256, 255 - i % 256, 0, 10, 13]) + rng.randbytes(8)}
        out.append(item)
    return out


# ------------------------------------------------------------------ the bucket
def test_a_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    clock = Clock()
    bucket = Bucket(rate=10.0, capacity=10.0, tokens=-5.0, at=clock.now, clock=clock)
    clock.now += 0.2
    assert bucket.refill() == pytest.approx(-3.0)
    clock.now += 100
    assert bucket.refill() == 10.0


def test_a_request_is_admitted_while_units_remain_and_charged_in_full(aws: None) -> None:
    throughput = Throughput(clock=Clock())
    _provisioned(boto3.client("dynamodb", region_name="us-east-1"), "t", 1, 2)
    assert throughput.spend("t", "write", 5.0)  # 2 held: admitted, 3 in debt
    assert not throughput.spend("t", "write", 1.0)
    assert throughput.throttled["t:write"] == 1
    assert throughput.consumed["t:write"] == 5.0


def test_an_on_demand_table_is_never_limited(aws: None) -> None:
    throughput = Throughput()
    sample.create_table(boto3.client("dynamodb", region_name="us-east-1"), "free", [("k", "HASH")])
    assert all(throughput.spend("free", "write", 1000.0) for _ in range(50))
    assert not throughput.throttled


# ------------------------------------------------------------------ UnprocessedItems as botocore parses them
def test_unprocessed_items_are_what_botocores_parser_gives_for_the_same_wire_form() -> None:
    wire = [{"PutRequest": {"Item": item_to_wire(item)}} for item in _binary_keyed(6)]
    wire.append({"DeleteRequest": {"Key": {"k": {"B": base64.b64encode(b"\x00\xff").decode()}}}})
    operation = boto3.client("dynamodb", region_name="us-east-1").meta.service_model.operation_model("BatchWriteItem")
    body = json.dumps({"UnprocessedItems": {"t": wire}}).encode()
    parsed = create_parser("json").parse({"status_code": 200, "headers": {}, "body": body}, operation.output_shape)
    assert from_wire(json.loads(json.dumps(wire))) == parsed["UnprocessedItems"]["t"]


# ------------------------------------------------------------------ through a client
def test_a_batch_is_split_into_what_the_bucket_pays_for_and_unprocessed_items(aws: None) -> None:
    clock = Clock()
    throughput = Throughput(clock=clock)
    ddb = _client(throughput)
    _provisioned(ddb, "t", 100, 5, "B")
    items = _binary_keyed(25, size=300)  # one unit each
    out = ddb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": i}} for i in items]})
    unprocessed = out["UnprocessedItems"]["t"]
    assert unprocessed == [{"PutRequest": {"Item": i}} for i in items[5:]]  # 5 units held
    assert sorted(map(canonical, table_items(ddb, "t"))) == sorted(map(canonical, items[:5]))
    assert throughput.throttled["t:write"] == 1
    with pytest.raises(ClientError, match="ProvisionedThroughputExceededException"):
        ddb.batch_write_item(RequestItems={"t": unprocessed})  # the bucket is empty: refused whole
    assert len(table_items(ddb, "t")) == 5  # and nothing of it written
    clock.now += 0.5  # 2.5 units earned: three 1-unit items go (the third into debt)
    out = ddb.batch_write_item(RequestItems={"t": unprocessed})
    assert out["UnprocessedItems"]["t"] == unprocessed[3:]
    assert len(table_items(ddb, "t")) == 8 and throughput.throttled["t:write"] == 3


def test_an_item_of_more_units_than_a_second_holds_is_written(aws: None) -> None:
    """A 1-unit table and a 3 KiB item: the bucket goes into debt rather than starving the item forever."""
    throughput = Throughput()
    ddb = _client(throughput)
    _provisioned(ddb, "t", 1, 1)
    item = {"k": {"S": "big"}, "blob": {"S": "x" * 3000}}
    out = ddb.batch_write_item(RequestItems={"t": [{"PutRequest": {"Item": item}}]})
    assert out["UnprocessedItems"] == {}
    assert table_items(ddb, "t") == [item]


def test_the_fast_write_path_through_the_throttle_stores_every_line_exactly(aws: None) -> None:
    """Raw lines (binary keys, every type) sent by write_items, split and resent by the throttle: all land exact."""
    clock = Clock()  # the throttle refills as write_items' backoff sleeps on it
    throughput = Throughput(clock=clock)
    ddb = _client(throughput)
    _provisioned(ddb, "t", 1000, 40, "B")
    items = _binary_keyed(120)
    lines = [compact_json({"Item": item_to_wire(item)}).encode() for item in items]
    raw = [fastwrite.RawItem(line, f"line {n}") for n, line in enumerate(lines)]
    fastwrite.install(ddb)
    counts = write_items(
        ddb, "t", raw, dead_letter=lambda xs: pytest.fail(f"{len(xs)} dead letters"), key_names=["k"], sleep=clock.sleep
    )
    assert counts["written"] == 120 and counts["unprocessedRetries"] + counts["throttleRetries"] > 0
    assert throughput.throttled["t:write"] > 0
    assert sorted(map(canonical, table_items(ddb, "t"))) == sorted(map(canonical, items))


def test_a_read_with_the_bucket_in_debt_is_refused_then_admitted_once_refilled(aws: None) -> None:
    clock = Clock()
    throughput = Throughput(clock=clock)
    ddb = _client(throughput)
    _provisioned(ddb, "t", 10, 1000)
    sample.fill(ddb, "t", iter({"k": {"S": f"{i}"}, "pad": {"S": "p" * 4000}} for i in range(30)))
    assert len(ddb.scan(TableName="t", ConsistentRead=True)["Items"]) == 30  # ~30 units: 20 in debt
    assert throughput.consumed["t:read"] >= 29
    with pytest.raises(ClientError, match="ProvisionedThroughputExceededException"):
        ddb.get_item(TableName="t", Key={"k": {"S": "1"}})
    assert throughput.throttled["t:read"] == 1
    clock.now += 2.2
    assert ddb.get_item(TableName="t", Key={"k": {"S": "1"}})["Item"]["k"] == {"S": "1"}


def test_a_mirror_restore_through_the_throttle_writes_and_deletes_every_item(
    aws: None, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: a mirror's puts and its deletes are both split and resent by the throttle; the table ends exact."""
    from ddb_backup.format.localfile import write_local_file
    from ddb_backup_cli.files import cancel
    from ddb_backup_cli.files.restore import restore_sources

    clock = Clock()  # the throttle refills as the restore's backoff sleeps on it
    monkeypatch.setattr(cancel, "sleep", clock.sleep)
    throughput = Throughput(clock=clock)
    ddb = _client(throughput)
    _provisioned(ddb, "mirror-t", 200, 20)
    items = [{"k": {"S": f"k{i:03d}"}, "v": {"N": str(i)}} for i in range(40)]
    write_local_file(tmp_path / "t.json", iter(items), table="mirror-t", description=None)
    held = items[:20] + [{**i, "v": {"N": "-1"}} for i in items[20:30]] + [{"k": {"S": f"x{i}"}} for i in range(30)]
    plain = boto3.client("dynamodb", region_name="us-east-1")
    for item in held:
        plain.put_item(TableName="mirror-t", Item=item)
    deletes_sent: list[int] = []

    def count_deletes(params: dict[str, Any], **_: Any) -> None:
        deletes_sent.append(sum("DeleteRequest" in r for r in params["RequestItems"]["mirror-t"]))

    ddb.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", count_deletes)
    (row,) = restore_sources(
        ddb,
        None,
        str(tmp_path / "t.json"),
        table="mirror-t",
        mode="mirror",
        allow_source=True,
        confirm=lambda target, count: True,
    )
    assert (row["added"], row["changed"], row["unchanged"], row["deleted"]) == (10, 10, 20, 30)
    assert throughput.throttled["mirror-t:write"] > 0
    assert sum(deletes_sent) > 30  # some deletes were held back by the throttle and sent again
    assert sorted(map(canonical, table_items(plain, "mirror-t"))) == sorted(map(canonical, items))
