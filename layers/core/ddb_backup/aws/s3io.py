"""Small S3 helpers shared by backup and restore."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.errors import BadInput


def put_json(s3: Any, bucket: str, key: str, doc: Any) -> None:
    body = json.dumps(doc, indent=1, sort_keys=True, default=str).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def get_json(s3: Any, bucket: str, key: str) -> Any:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadInput(f"s3://{bucket}/{key} is not valid JSON: {exc}") from None


def get_json_or_none(s3: Any, bucket: str, key: str) -> Any:
    try:
        return get_json(s3, bucket, key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def get_json_many(s3: Any, bucket: str, keys: list[str], *, workers: int = 32) -> dict[str, Any]:
    """The JSON objects at ``keys`` (None where one is missing), fetched ``workers`` at a time."""
    if not keys:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
        return dict(zip(keys, pool.map(lambda key: get_json_or_none(s3, bucket, key), keys), strict=True))


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", ()))
    return keys
