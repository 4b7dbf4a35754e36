"""The local single-file format, written: what ``ddb-backup backup --table T`` saves (read back by ``open_source``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from isal import igzip

from ddb_backup import __version__
from ddb_backup.format import layout
from ddb_backup.format.ddbjson import Item, line_from_client_item
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL

#: Version of the local single-file format (header ``ddbBackupFile.formatVersion``).
LOCAL_FORMAT_VERSION = 1


class LocalFileWriter:
    """Write the local single-file format (gzip when the name ends in ``.gz``)::

        {"ddbBackupFile": {"formatVersion": 1, "toolVersion": ..., "table": "T",
                           "backupId": ..., "startedAt": ..., "description": {...}}}
        {"Item": {...wire DynamoDB JSON...}}     one per item
        {"ddbBackupEnd": {"items": N}}

    The file is written under ``<name>.partial`` and renamed when
    :meth:`close` writes the end line, so a reader never sees a half file
    under the real name. Used as a context manager: leaving it with an
    exception removes the partial file and writes nothing.
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
    ) -> None:
        import datetime as dt

        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        self.header = {
            "formatVersion": LOCAL_FORMAT_VERSION,
            "toolVersion": __version__,
            "table": table,
            "backupId": backup_id or layout.new_backup_id(now),
            "startedAt": started_at or now.isoformat(),
            **(extra or {}),
            "description": description,
        }
        self.items = 0
        gz = self.path.name.endswith(".gz")
        self._fh: Any = igzip.open(self.tmp, "wb", compresslevel=DEFAULT_GZIP_LEVEL) if gz else open(self.tmp, "wb")  # noqa: SIM115
        self._fh.write(json.dumps({"ddbBackupFile": self.header}, separators=(",", ":"), default=str).encode() + b"\n")
        self._closed = False

    def write(self, item: Item) -> None:
        """Append one client-form item."""
        self._fh.write(line_from_client_item(item))
        self.items += 1

    def write_lines(self, lines: list[bytes], count: int) -> None:
        """Append ready-made backup lines (``ddbjson.line_from_client_item``), ``count`` of them."""
        self._fh.write(b"".join(lines))
        self.items += count

    def close(self) -> int:
        """Write the end line, move the file into place; returns the item count."""
        if not self._closed:
            self._fh.write(json.dumps({"ddbBackupEnd": {"items": self.items}}).encode() + b"\n")
            self._fh.close()
            os.replace(self.tmp, self.path)
            self._closed = True
        return self.items

    def abort(self) -> None:
        if not self._closed:
            self._fh.close()
            self.tmp.unlink(missing_ok=True)
            self._closed = True

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
) -> int:
    """Write ``items`` to ``path`` in the local file format; returns the count."""
    with LocalFileWriter(path, table=table, description=description, backup_id=backup_id) as writer:
        for item in items:
            writer.write(item)
    return writer.items
