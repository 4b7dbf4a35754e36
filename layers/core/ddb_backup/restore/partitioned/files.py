"""The change files a restore reads: an exact backup's own, and the archive's up to a time; read as a stream.

A file is read line by line through a streaming gunzip, never whole, and
its sha256 (when the manifest gives one) is checked as its last line is
read: a file that does not match fails the restore before its partitions
are used.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ddb_backup.aws.s3io import get_json
from ddb_backup.changes import archive
from ddb_backup.changes.consistent import change_files
from ddb_backup.errors import IntegrityError
from ddb_backup.format import layout
from ddb_backup.names import split_s3_url, utc_time

if TYPE_CHECKING:
    from ddb_backup.changes.stream import Change


@dataclass(frozen=True)
class ChangeFile:
    """One change file: ``s3://bucket/key`` or a local path, its sha256 if known, its size in bytes."""

    location: str
    sha256: str | None = None
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ChangeFile:
        return cls(str(doc["location"]), doc.get("sha256"), int(doc.get("size") or 0))


def backup_files(s3: Any, url: str) -> tuple[str, list[ChangeFile]] | None:
    """An exact backup's ``consistentAt`` and change files, in S3 or copied to a local directory (None: not exact)."""
    if url.startswith("s3://"):
        bucket, directory = split_s3_url(url)
        directory = directory if not directory or directory.endswith("/") else directory + "/"
        manifest = get_json(s3, bucket, directory + layout.MANIFEST)
        where = f"s3://{bucket}/{directory}"
    else:
        directory = url.rstrip("/") + "/"
        manifest = json.loads((Path(url) / layout.MANIFEST).read_text())
        where = directory
    if "consistentAt" not in manifest:
        return None
    return manifest["consistentAt"], _listed(manifest, where)


def _listed(manifest: dict[str, Any], where: str) -> list[ChangeFile]:
    sizes = {e.get("key"): int(e.get("bytes") or 0) for e in manifest.get("changes") or [] if isinstance(e, dict)}
    return [ChangeFile(where + key, sha, sizes.get(key, 0)) for key, sha in change_files(manifest, where)]


def to_time_files(
    s3: Any, bucket: str, table_dir: str, manifest: dict[str, Any], when: dt.datetime
) -> list[ChangeFile]:
    """The files holding the changes from the backup's ``consistentAt`` to ``when`` (``totime.check_reach`` proves
    the archive holds them all): the backup's own, then the archive's with a change in that span."""
    files = _listed(manifest, f"s3://{bucket}/{table_dir}{manifest['backupId']}/")
    if when == utc_time(manifest["consistentAt"]):
        return files
    since = utc_time(manifest.get("changesFrom", manifest["consistentAt"]))
    found = archive.sized_files_between(s3, bucket, table_dir, since, when)
    return files + [ChangeFile(f"s3://{bucket}/{key}", None, size) for key, size in found]


class _Hashing:
    """A readable that hashes what passes through it."""

    def __init__(self, raw: IO[bytes] | Any) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.digest.update(data)
        return data


def _open(s3: Any, location: str) -> Any:
    if location.startswith("s3://"):
        bucket, key = split_s3_url(location)
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    path = Path(location)
    if not path.is_file():
        raise IntegrityError(
            f"{path}: missing; this exact backup's changes must be copied with it (aws s3 cp --recursive)"
        )
    return path.open("rb")


def read_lines(s3: Any, change_file: ChangeFile) -> Iterator[tuple[bytes, Change]]:
    """Each line of a change file and the change it holds, streamed; the sha256 checked after the last."""
    raw = _open(s3, change_file.location)
    hashing = _Hashing(raw)
    try:
        with gzip.GzipFile(fileobj=hashing, mode="rb") as lines:  # type: ignore[call-overload]
            for n, text in enumerate(lines, 1):
                line = text.rstrip(b"\n")
                if line:
                    yield line, archive.parse_line(line, change_file.location, n)
        while hashing.read(1 << 20):  # anything after the gzip stream still counts
            pass
    finally:
        raw.close()
    if change_file.sha256 is not None and hashing.digest.hexdigest() != change_file.sha256:
        raise IntegrityError(f"{change_file.location}: sha256 differs from the manifest's")
