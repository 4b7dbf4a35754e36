"""Two moto DynamoDB Streams behaviours made as AWS has them (moto 5.1), for the local stack and tests.

* ``GetRecords`` sent binary attributes base64-encoded twice (the record holds
  base64 text, which the response encoder encodes again): a client got the
  base64 text as bytes. Here the images carry bytes, so clients get the item.
* After an event-source-mapped Lambda took the records, moto emptied the shard,
  so sequence numbers started over (every record the same number) and
  ``GetRecords`` lost them; and it handed the Lambda every record again. Here
  the shard keeps its records (24 h retention on AWS) and each Lambda call gets
  the new record only.
* A deleted event source mapping still called its Lambda (moto left it on the
  table). Here it calls nothing, as on AWS.
"""

from __future__ import annotations

import base64
from typing import Any
from unittest import mock

_IMAGES = ("Keys", "NewImage", "OldImage")


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


def _record(record: dict[str, Any]) -> dict[str, Any]:
    body = dict(record["dynamodb"])
    for name in _IMAGES:
        if name in body:
            body[name] = {k: _decoded(v) for k, v in body[name].items()}
    return {**record, "dynamodb": body}


def stream_patches() -> list[Any]:
    """Patches (not started) that make moto's streams behave as above."""
    from moto.awslambda.utils import get_backend
    from moto.dynamodb.models.table import StreamRecord, StreamShard
    from moto.dynamodbstreams.models import ShardIterator

    original_get = ShardIterator.get

    def get(self: Any, limit: int = 1000) -> dict[str, Any]:
        result: dict[str, Any] = original_get(self, limit)
        return {**result, "Records": [_record(r) for r in result["Records"]]}

    def add(self: Any, old: Any, new: Any) -> None:
        event = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        seq = len(self.items) + self.starting_sequence_number
        record = StreamRecord(self.table, self.table.stream_specification["StreamViewType"], event, old, new, seq)
        self.items.append(record)
        for arn, esm in self.table.lambda_event_source_mappings.items():
            backend = get_backend(self.account_id, arn.split(":")[3])
            if esm.uuid in backend._event_source_mappings:  # a deleted mapping calls nothing
                backend.send_dynamodb_items(arn, [record], esm.event_source_arn)

    return [mock.patch.object(ShardIterator, "get", get), mock.patch.object(StreamShard, "add", add)]
