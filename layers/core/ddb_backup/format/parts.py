"""Gzip JSON Lines parts, streamed to S3 with bounded memory.

Compression is ISA-L's deflate (``isal``), not zlib's: at level 2 it writes a
standard gzip member about 5x faster than zlib at level 3 (310 vs 65 MB/s of
backup lines here) for parts about 5 % larger. Any gunzip reads it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field, fields
from typing import Any

from isal import isal_zlib

#: ISA-L's levels are 0 to 3; 2 is as fast as 1 and compresses a little better.
GZIP_LEVELS = range(4)
DEFAULT_GZIP_LEVEL = 2


def json_fields(record: Any) -> dict[str, Any]:
    """A dataclass's fields in declaration order, named in camelCase, None values left out."""
    doc = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if value is not None:
            head, *rest = f.name.split("_")
            doc[head + "".join(word.title() for word in rest)] = value
    return doc


@dataclass
class Part:
    key: str  # relative to the backup directory
    segment: int
    items: int
    bytes: int  # compressed, as stored
    uncompressed_bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return json_fields(self)


@dataclass
class PartBuffer:
    """One part being built in memory: gzip of the lines appended so far."""

    level: int = DEFAULT_GZIP_LEVEL
    items: int = 0
    uncompressed_bytes: int = 0
    _chunks: list[bytes] = field(default_factory=list)
    _z: Any = None

    def __post_init__(self) -> None:
        self._z = isal_zlib.compressobj(self.level, isal_zlib.DEFLATED, 31)  # 31: gzip container

    def add(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        self.items += len(lines)
        self.uncompressed_bytes += len(data)
        out = self._z.compress(data)
        if out:
            self._chunks.append(out)

    def finish(self) -> bytes:
        self._chunks.append(self._z.flush())
        body = b"".join(self._chunks)
        self._chunks = []
        return body


def upload_part(s3: Any, bucket: str, backup_dir: str, key: str, segment: int, buf: PartBuffer) -> Part:
    """Upload a finished part; S3 checks the SHA-256 we send, so a torn upload cannot pass."""
    body = buf.finish()
    digest = hashlib.sha256(body)
    s3.put_object(
        Bucket=bucket,
        Key=backup_dir + key,
        Body=body,
        ContentType="application/x-ndjson",
        ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
        Metadata={"items": str(buf.items)},
    )
    return Part(key, segment, buf.items, len(body), buf.uncompressed_bytes, digest.hexdigest())
