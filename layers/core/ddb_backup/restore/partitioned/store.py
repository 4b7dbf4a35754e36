"""Where partitions live: S3 under a run's prefix (the machine) or a local directory (the CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError


class Store(Protocol):
    """Named objects: write, read, read if present."""

    def put(self, name: str, body: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def where(self, name: str) -> str: ...


class S3Store:
    """Objects under ``s3://bucket/prefix``."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self.s3, self.bucket, self.prefix = s3, bucket, prefix

    def put(self, name: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=body)

    def get(self, name: str) -> bytes | None:
        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + name)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return body

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"


class DirStore:
    """Files under a local directory (a restore from this machine spools its partitions to disk)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, name: str, body: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    def get(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def where(self, name: str) -> str:
        return str(self.root / name)


def put_doc(store: Store, name: str, doc: Any) -> None:
    store.put(name, json.dumps(doc, separators=(",", ":")).encode())


def get_doc(store: Store, name: str) -> Any:
    body = store.get(name)
    return None if body is None else json.loads(body)
