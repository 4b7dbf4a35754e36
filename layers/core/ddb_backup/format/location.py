"""Where backup files live: local paths and ``s3://bucket/key`` URLs, read the same way.

Every reader names files by URL; these helpers join, split, test, list and
stream them. A missing file a backup names is ``BackupIncomplete``, an
unreadable one ``BadInput``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError

from ddb_backup.aws.clients import client
from ddb_backup.errors import BackupIncomplete, BadInput
from ddb_backup.names import is_s3_url, split_s3_url

#: Size of the pieces files are read (and decompressed) in.
CHUNK = 1024 * 1024

_NOT_FOUND = ("404", "NoSuchKey", "NotFound")


def join(base: str, rel: str) -> str:
    if is_s3_url(base):
        return base + rel if base.endswith("/") else f"{base}/{rel}"
    return str(Path(base) / rel)


def parent(url: str) -> str:
    """The directory holding ``url`` (with a trailing slash for S3)."""
    if is_s3_url(url):
        return url.rsplit("/", 1)[0] + "/"
    return str(Path(url).parent)


def name(url: str) -> str:
    """The last component of ``url``."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def as_dir(url: str) -> str:
    """``url`` as a directory: S3 prefixes end in a slash."""
    if is_s3_url(url):
        return url if url.endswith("/") else url + "/"
    return url


def s3_client(s3: Any) -> Any:
    """``s3``, or the shared S3 client when it is None."""
    if s3 is not None:
        return s3
    return client("s3")


def exists(url: str, s3: Any) -> bool:
    """True when ``url`` is a file or an object."""
    if not is_s3_url(url):
        return Path(url).is_file()
    bucket, key = split_s3_url(url)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return False
        raise
    return True


def missing(url: str) -> BackupIncomplete:
    return BackupIncomplete(f"{url} is missing: the backup names it, but it is not there")


def open_path(url: str) -> IO[bytes]:
    """A local file opened for reading; a missing one is ``BackupIncomplete``, an unreadable one ``BadInput``."""
    try:
        return open(url, "rb")
    except FileNotFoundError:
        raise missing(url) from None
    except (OSError, ValueError) as exc:  # a directory, a name too long, a NUL byte
        raise BadInput(f"{url}: cannot be read ({exc})") from None


def s3_body(url: str, s3: Any) -> Any:
    """An object's streaming body; a missing object is ``BackupIncomplete`` naming it."""
    bucket, key = split_s3_url(url)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            raise missing(url) from None
        raise


def read_bytes(url: str, s3: Any, limit: int = 64 * 1024 * 1024) -> bytes:
    """A whole (small) file or object; ``BadInput`` when it is larger than ``limit``."""
    if is_s3_url(url):
        body: bytes = s3_body(url, s3).read(limit + 1)
    else:
        with open_path(url) as fh:
            body = fh.read(limit + 1)
    if len(body) > limit:
        raise BadInput(f"{url}: larger than {limit} bytes, not a manifest")
    return body


def read_json(url: str, s3: Any) -> Any:
    """A JSON file or object, parsed; ``BadInput`` naming it when it is not JSON."""
    try:
        return json.loads(read_bytes(url, s3))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{url}: not valid JSON ({exc})") from None


def chunks(url: str, s3: Any) -> Generator[bytes, None, None]:
    """The raw bytes of a file or object, in chunks, streaming."""
    if is_s3_url(url):
        body = s3_body(url, s3)
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()
    else:
        with open_path(url) as fh:
            yield from file_chunks(fh)


def file_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    """The rest of an open file, in chunks."""
    while chunk := fh.read(CHUNK):
        yield chunk


def list_dirs(url: str, s3: Any) -> list[str]:
    """Immediate sub-directories of an S3 prefix or local directory (names only)."""
    if is_s3_url(url):
        bucket, key = split_s3_url(url)
        names: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
            names.extend(p["Prefix"][len(key) :].rstrip("/") for p in page.get("CommonPrefixes", ()))
        return names
    path = Path(url)
    return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def list_files(url: str, s3: Any) -> list[str]:
    """Every file (object) under a local directory or S3 prefix, at any depth, as paths relative to ``url``."""
    base = as_dir(url)
    if is_s3_url(base):
        bucket, key = split_s3_url(base)
        pages = s3_client(s3).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return sorted(o["Key"][len(key) :] for page in pages for o in page.get("Contents", ()) if o["Key"][-1:] != "/")
    path = Path(base)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
