"""The local single-file format, written: what ``ddb-backup backup --table T`` saves (read back by ``open_source``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from isal import igzip

from ddb_backup import __version__, names
from ddb_backup.errors import BadInput
from ddb_backup.format.ddbjson import Item, line_from_client_item
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL

#: Version of the local single-file format (header ``ddbBackupFile.formatVersion``).
LOCAL_FORMAT_VERSION = 1


#: isal's gzip writer (isal has no type hints: typed here once).
_GZIP_FILE: Callable[..., Any] = igzip.IGzipFile

#: Mode of every file this tool writes locally (backups, their temporary files, dead letters), whatever the umask.
PRIVATE_FILE_MODE = 0o600


def create_private(path: Path) -> int:
    """Create ``path`` exclusively (``O_EXCL``: never an existing file), mode 0600 whatever the umask; its fd."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken bits from it
    return fd


def publish(tmp: Path, path: Path, *, replace: bool) -> None:
    """Move the finished ``tmp`` to ``path``; an existing ``path`` is replaced only when ``replace``.

    Without ``replace`` the move is a hard link, which fails if ``path``
    exists, even one made a moment ago by another run (``BadInput``, ``tmp``
    removed); on a file system without hard links, an existence check and a rename.
    """
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise BadInput(f"{path} was written by another run while this one ran: kept that one, not this one") from None
    except OSError:
        if path.exists():
            tmp.unlink(missing_ok=True)
            raise BadInput(f"{path} was written by another run while this one ran: kept that one") from None
        os.rename(tmp, path)
        return
    tmp.unlink()


class LocalFileWriter:
    """Write the local single-file format (gzip when the name ends in ``.gz``)::

        {"ddbBackupFile": {"formatVersion": 1, "toolVersion": ..., "table": "T",
                           "backupId": ..., "startedAt": ..., "description": {...}}}
        {"Item": {...wire DynamoDB JSON...}}     one per item
        {"ddbBackupEnd": {"items": N, "sha256": "<64 hex digits>"}}

    ``sha256`` is the SHA-256 of every line before the end line (the header
    and the item lines, each with its newline, uncompressed), so a changed
    byte, or a line removed and the count lowered, is refused before a
    restore writes anything. Files of older versions have no ``sha256``.

    The file is written under a temporary name of its own (``.<name>.<random>.partial``
    beside it, created exclusively, mode 0600) and moved into place when
    :meth:`close` writes the end line, so a reader never sees a half file under
    the real name and two runs never share one. An existing file is never
    replaced unless ``replace`` (``BadInput`` when the writer is made, and
    again if one appears while it writes). Used as a context manager: leaving
    it with an exception removes the temporary file and writes nothing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str,
        description: dict[str, Any] | None,
        backup_id: str | None = None,
        started_at: str | None = None,
        extra: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> None:
        self.path = Path(path)
        self.replace = replace
        if not replace and self.path.exists():
            raise BadInput(f"{self.path} already exists: a backup never replaces another unless asked to")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.partial")
        now = dt.datetime.now(dt.UTC)
        self.header = {
            "formatVersion": LOCAL_FORMAT_VERSION,
            "toolVersion": __version__,
            "table": table,
            "backupId": backup_id or names.new_backup_id(now),
            "startedAt": started_at or now.isoformat(),
            **(extra or {}),
            "description": description,
        }
        self.items = 0
        self._sum = hashlib.sha256()
        self._raw: Any = os.fdopen(create_private(self.tmp), "wb")
        gz = self.path.name.endswith(".gz")
        self._fh: Any = _GZIP_FILE(fileobj=self._raw, mode="wb", compresslevel=DEFAULT_GZIP_LEVEL) if gz else None
        self._closed = False
        self._put(json.dumps({"ddbBackupFile": self.header}, separators=(",", ":"), default=str).encode() + b"\n")

    def _put(self, data: bytes) -> None:
        self._sum.update(data)
        (self._fh or self._raw).write(data)

    def write(self, item: Item) -> None:
        """Append one client-form item."""
        self._put(line_from_client_item(item))
        self.items += 1

    def write_lines(self, lines: list[bytes], count: int) -> None:
        """Append ready-made backup lines (``ddbjson.line_from_client_item``), ``count`` of them."""
        self._put(b"".join(lines))
        self.items += count

    def close(self) -> int:
        """Write the end line, move the file into place; returns the item count."""
        if not self._closed:
            end = {"ddbBackupEnd": {"items": self.items, "sha256": self._sum.hexdigest()}}
            (self._fh or self._raw).write(json.dumps(end).encode() + b"\n")
            self._close_files()
            try:
                publish(self.tmp, self.path, replace=self.replace)
            finally:
                self.tmp.unlink(missing_ok=True)
        return self.items

    def _close_files(self) -> None:
        self._closed = True
        try:
            if self._fh is not None:
                self._fh.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
        finally:
            self._raw.close()

    def abort(self) -> None:
        if not self._closed:
            try:
                self._close_files()
            finally:
                self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> LocalFileWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_local_file(
    path: str | os.PathLike[str],
    items: Iterable[Item],
    *,
    table: str,
    description: dict[str, Any] | None,
    backup_id: str | None = None,
    replace: bool = False,
) -> int:
    """Write ``items`` to ``path`` in the local file format; returns the count (see :class:`LocalFileWriter`)."""
    with LocalFileWriter(path, table=table, description=description, backup_id=backup_id, replace=replace) as writer:
        for item in items:
            writer.write(item)
    return writer.items
