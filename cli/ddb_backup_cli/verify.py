"""Compare a table with a backup, item by item."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.errors import TableNotFound
from ddb_backup.format.ddbjson import canonical, item_to_wire
from ddb_backup.format.sources import open_source


def _digest(item: dict[str, Any]) -> bytes:
    return hashlib.blake2b(canonical(item).encode(), digest_size=16).digest()


def verify_table(ddb: Any, s3: Any, table: str, source: str, *, limit: int = 10) -> dict[str, Any]:
    """Items of ``source`` (any format restore reads) against the items of ``table``.

    Memory holds one 16-byte digest per backup item, not the items. Returns
    counts of missing, extra and changed items and up to ``limit`` examples.
    """
    try:
        key_schema = ddb.describe_table(TableName=table)["Table"]["KeySchema"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            raise TableNotFound(f"table {table!r} does not exist") from None
        raise
    names = [k["AttributeName"] for k in key_schema]
    backup = open_source(source, s3)
    expected: dict[str, bytes] = {}
    backup_items = duplicates = 0
    for item in backup.items():
        backup_items += 1
        key = _key(item, names)
        duplicates += key in expected
        expected[key] = _digest(item)
    examples: list[dict[str, Any]] = []
    extra = changed = table_items = 0
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            table_items += 1
            key = _key(item, names)
            want = expected.pop(key, None)
            if want is None:
                extra += 1
                kind = "extra in table"
            elif want != _digest(item):
                changed += 1
                kind = "changed"
            else:
                continue
            if len(examples) < limit:
                examples.append({"kind": kind, "key": json.loads(key)})
    for key in list(expected)[: max(0, limit - len(examples))]:
        examples.append({"kind": "missing from table", "key": json.loads(key)})
    return {
        "table": table,
        "source": source,
        "identical": not (expected or extra or changed or duplicates),
        "backupItems": backup_items,
        "tableItems": table_items,
        "missing": len(expected),
        "extra": extra,
        "changed": changed,
        "duplicateKeysInBackup": duplicates,
        "examples": examples,
    }


def _key(item: dict[str, Any], names: list[str]) -> str:
    return json.dumps(item_to_wire({n: item[n] for n in names if n in item}), sort_keys=True)
