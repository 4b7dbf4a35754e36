"""Read any backup restore understands, verified, streaming, in bounded memory.

``open_source(source)`` takes a local path or an ``s3://bucket/key`` URL and
detects what it points at:

``ddb-backup-v1``
    a backup directory of this tool (``<table>/<backup-id>/``) or its
    ``manifest.json``, or a table's directory (``<table>/``: its latest
    complete backup, with a warning saying which); every part is checked
    against the manifest's sha256 and item count.
``native-export``
    a DynamoDB export to S3 in DYNAMODB_JSON (the ``AWSDynamoDB/<export-id>/``
    directory, its ``manifest-summary.json``, or the prefix holding exactly one
    export); data files are checked against ``manifest-files.json`` (md5 and
    item count), and the manifests against their ``.md5`` files.
``cumulus-api``
    a file of ``cumulus-api backup``: one item per line, typed DynamoDB JSON
    (old versions) or plain JSON (newer ones; converted with boto3's
    ``TypeSerializer``, numbers as ``Decimal`` so no digit is lost).
``local-file``
    the single file ``ddb-backup backup --table T`` writes (see
    :class:`LocalFileWriter`): a header line, ``{"Item": ...}`` lines, an end
    line with the count. A file without the end line, or whose count differs,
    is refused.
``dynamodb-json-lines``
    bare ``{"Item": ...}`` lines (a single data file of an export, or a
    dead-letter object written by a restore).

Files may be gzip (detected by content, not by name). Items come out in
client form (binary as ``bytes``), exactly as saved: nothing is added or
changed. Every error names the file and, where it applies, the line.

A part is verified before any of its items is handed out where the format
gives a checksum (the object is spooled to a temporary file while hashing);
item counts are checked when the part has been read to its end.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, DecimalException
from pathlib import Path
from typing import IO, Any, cast

from botocore.exceptions import ClientError
from isal import igzip, isal_zlib

from ddb_backup import FORMAT_VERSION, __version__
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError, UnknownFormat
from ddb_backup.format import layout
from ddb_backup.format.ddbjson import TYPES, Item, item_from_wire, line_from_client_item
from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL

#: Largest item DynamoDB stores.
MAX_ITEM_BYTES = 400 * 1024
#: Longest line read at all (JSON of a 400 KB item with escapes and base64 stays well below).
MAX_LINE_BYTES = 8 * 1024 * 1024
#: Parts larger than this are spooled to disk (not memory) while their checksum is verified.
SPOOL_IN_MEMORY = 16 * 1024 * 1024
CHUNK = 1024 * 1024
_BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
# isal's stub declares ``error`` as an instance of Exception; it is the class IsalError.
_GZIP_ERROR = cast("type[Exception]", isal_zlib.error)

#: Version of the local single-file format (header ``ddbBackupFile.formatVersion``).
LOCAL_FORMAT_VERSION = 1

PLAIN_JSON_WARNING = (
    "{where}: cumulus-api plain JSON cannot tell sets from lists or binary from strings: "
    "sets are restored as lists (L) and binary values as strings (S); numbers keep every digit"
)


# ------------------------------------------------------------------ locations
def is_s3(url: str) -> bool:
    return url.startswith("s3://")


def _split(url: str) -> tuple[str, str]:
    bucket, _, key = url[5:].partition("/")
    if not bucket:
        raise BadInput(f"{url!r} names no bucket")
    return bucket, key


def _join(base: str, rel: str) -> str:
    if is_s3(base):
        return base + rel if base.endswith("/") else f"{base}/{rel}"
    return str(Path(base) / rel)


def _parent(url: str) -> str:
    """The directory holding ``url`` (with a trailing slash for S3)."""
    if is_s3(url):
        return url.rsplit("/", 1)[0] + "/"
    return str(Path(url).parent)


def _name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _s3_client(s3: Any) -> Any:
    if s3 is not None:
        return s3
    from ddb_backup.aws.clients import client

    return client("s3")


def _exists(url: str, s3: Any) -> bool:
    if not is_s3(url):
        return Path(url).is_file()
    bucket, key = _split(url)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _missing(url: str) -> BackupIncomplete:
    return BackupIncomplete(f"{url} is missing: the backup names it, but it is not there")


def _open_path(url: str) -> IO[bytes]:
    """A local file opened for reading; a missing one is ``BackupIncomplete``, an unreadable one ``BadInput``."""
    try:
        return open(url, "rb")
    except FileNotFoundError:
        raise _missing(url) from None
    except (OSError, ValueError) as exc:  # a directory, a name too long, a NUL byte
        raise BadInput(f"{url}: cannot be read ({exc})") from None


def _s3_body(url: str, s3: Any) -> Any:
    """An object's streaming body; a missing object is ``BackupIncomplete`` naming it."""
    bucket, key = _split(url)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            raise _missing(url) from None
        raise


def _read_bytes(url: str, s3: Any, limit: int = 64 * 1024 * 1024) -> bytes:
    if is_s3(url):
        body: bytes = _s3_body(url, s3).read(limit + 1)
    else:
        with _open_path(url) as fh:
            body = fh.read(limit + 1)
    if len(body) > limit:
        raise BadInput(f"{url}: larger than {limit} bytes, not a manifest")
    return body


def _read_json(url: str, s3: Any) -> Any:
    try:
        return json.loads(_read_bytes(url, s3))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{url}: not valid JSON ({exc})") from None


def _chunks(url: str, s3: Any) -> Iterator[bytes]:
    """The raw bytes of a file or object, in chunks, streaming."""
    if is_s3(url):
        body = _s3_body(url, s3)
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()
    else:
        with _open_path(url) as fh:
            while chunk := fh.read(CHUNK):
                yield chunk


def _file_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


def _list_dirs(url: str, s3: Any) -> list[str]:
    """Immediate sub-directories of an S3 prefix or local directory (names only)."""
    if is_s3(url):
        bucket, key = _split(url)
        names: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
            names.extend(p["Prefix"][len(key) :].rstrip("/") for p in page.get("CommonPrefixes", ()))
        return names
    path = Path(url)
    return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def _as_dir(url: str) -> str:
    if is_s3(url):
        return url if url.endswith("/") else url + "/"
    return url


# ------------------------------------------------------------------ streaming lines
_GZIP_MAGIC = b"\x1f\x8b"


def _decoded(chunks: Iterable[bytes], where: str) -> Iterator[bytes]:
    """Gunzip ``chunks`` if they are gzip (any number of members), else pass them through."""
    it = iter(chunks)
    first = b""
    for chunk in it:
        if chunk:
            first = chunk
            break
    if not first:
        return
    if not first.startswith(_GZIP_MAGIC):
        yield first
        yield from it
        return
    d = isal_zlib.decompressobj(31)
    fed = False  # has the current gzip member been given any bytes?
    pending = first
    full = False  # the last call filled its output: zlib may hold more
    while True:
        while pending or full:
            fed = fed or bool(pending)
            try:
                out = d.decompress(pending, CHUNK)
            except _GZIP_ERROR as exc:
                raise BadInput(f"{where}: corrupt gzip data ({exc})") from None
            full = len(out) == CHUNK
            if out:
                yield out
            if d.eof:
                pending = d.unused_data
                if pending and not _GZIP_MAGIC.startswith(pending[:2]):
                    raise BadInput(f"{where}: corrupt gzip data (bytes after a gzip member are not another one)")
                d = isal_zlib.decompressobj(31)
                fed = full = False  # another member may follow
            else:
                pending = d.unconsumed_tail
        nxt = next(it, None)
        if nxt is None:
            break
        pending = nxt
    if fed and not d.eof:
        raise BadInput(f"{where}: truncated gzip (the file ends before the gzip stream does)")


def _lines(chunks: Iterable[bytes], where: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line without newline) for every non-blank line; refuses lines over MAX_LINE_BYTES."""
    pending: list[bytes] = []
    pending_len = 0
    lineno = 0
    for chunk in chunks:
        pieces = chunk.split(b"\n")
        if len(pieces) == 1:
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len > MAX_LINE_BYTES:
                raise BadInput(f"{where} line {lineno + 1}: longer than {MAX_LINE_BYTES} bytes, not an item")
            continue
        if pending:
            pieces[0] = b"".join(pending) + pieces[0]
            pending, pending_len = [], 0
        for piece in pieces[:-1]:
            lineno += 1
            if len(piece) > MAX_LINE_BYTES:
                raise BadInput(f"{where} line {lineno}: longer than {MAX_LINE_BYTES} bytes, not an item")
            if piece.strip():
                yield lineno, piece
        if pieces[-1]:
            pending, pending_len = [pieces[-1]], len(pieces[-1])
    if pending:
        lineno += 1
        piece = b"".join(pending)
        if piece.strip():
            yield lineno, piece


# ------------------------------------------------------------------ item sizes
def _av_size(av: Any) -> int:
    ((kind, value),) = av.items()
    if kind == "S":
        return len(value.encode("utf-8"))
    if kind == "N":
        return len(value.lstrip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(value)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode("utf-8")) for v in value)
    if kind == "NS":
        return sum(len(v) // 2 + 2 for v in value)
    if kind == "BS":
        return sum(len(v) for v in value)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + 1 + _av_size(v) for k, v in value.items())
    return 3 + sum(1 + _av_size(v) for v in value)  # L


def item_size(item: Item) -> int:
    """DynamoDB's size of an item in client form (names + values), close to its own accounting."""
    return sum(len(name.encode("utf-8")) + _av_size(av) for name, av in item.items())


def _check_size(item: Item, line: bytes, where: str) -> Item:
    # An item's DynamoDB size never exceeds its JSON line, so only long lines need measuring.
    if len(line) > MAX_ITEM_BYTES and item_size(item) > MAX_ITEM_BYTES:
        raise BadInput(f"{where}: item of {item_size(item)} bytes is larger than DynamoDB's 400 KB limit")
    return item


# ------------------------------------------------------------------ dialects
def _json(line: bytes, where: str, **kwargs: Any) -> Any:
    try:
        return json.loads(line, **kwargs)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{where}: not a JSON line ({exc})") from None


def looks_typed(doc: Any) -> bool:
    """True when every attribute of ``doc`` is a typed DynamoDB value (``{"S": ...}``).

    A plain-JSON item can never look typed: its key attributes are plain strings
    or numbers, never objects.
    """
    return (
        isinstance(doc, dict)
        and bool(doc)
        and all(isinstance(v, dict) and len(v) == 1 and next(iter(v)) in TYPES for v in doc.values())
    )


_serializer: Any = None


def plain_to_item(doc: Any, where: str) -> Item:
    """A plain JSON object (numbers already ``Decimal``) as a client-form item, via boto3's TypeSerializer."""
    global _serializer
    if _serializer is None:
        from boto3.dynamodb.types import TypeSerializer

        _serializer = TypeSerializer()
    if not isinstance(doc, dict):
        raise BadInput(f"{where}: an item must be a JSON object, got {type(doc).__name__}")
    try:
        return {name: _serializer.serialize(value) for name, value in doc.items()}
    except (TypeError, ValueError, DecimalException) as exc:
        raise BadInput(f"{where}: cannot be stored in DynamoDB: {type(exc).__name__} {exc}") from None


def _parse(dialect: str, line: bytes, where: str) -> Item | None:
    """One line in ``dialect`` as a client-form item, or None for a local file's header/end line."""
    if dialect in ("item", "local"):
        doc = _json(line, where)
        if isinstance(doc, dict) and len(doc) == 1 and "Item" in doc:
            return _check_size(item_from_wire(doc["Item"], where), line, where)
        if dialect == "local" and isinstance(doc, dict) and ("ddbBackupEnd" in doc or "ddbBackupFile" in doc):
            return None
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise BadInput(f'{where}: expected {{"Item": {{...}}}}, got {keys}')
    if dialect == "typed":
        return _check_size(item_from_wire(_json(line, where), where), line, where)
    if dialect == "plain":
        doc = _json(line, where, parse_float=Decimal, parse_int=Decimal)
        # {"Item": <typed>} is a backup line: a local file or export whose first line was damaged, not plain JSON
        if looks_typed(doc) or (isinstance(doc, dict) and len(doc) == 1 and looks_typed(doc.get("Item"))):
            raise BadInput(f"{where}: typed DynamoDB JSON in a file whose first line is plain JSON")
        return _check_size(plain_to_item(doc, where), line, where)
    raise UnknownFormat(f"{where}: unknown line dialect {dialect!r}")


def _is_item_line(line: bytes) -> bool:
    return line.lstrip()[:8] == b'{"Item":'


# ------------------------------------------------------------------ parts
@dataclass(frozen=True)
class PartRef:
    """One readable piece of a source: an S3 object or a local file.

    ``id`` is stable and unique within its source (a manifest's part key, a
    file name); ``items``, ``sha256`` (hex), ``md5`` (base64) and ``bytes`` are
    what the source's manifest promises, when it has one. JSON-serializable via
    :meth:`to_json` for the restore work list.
    """

    id: str
    url: str
    dialect: str  # item | local | typed | plain
    items: int | None = None
    sha256: str | None = None
    md5: str | None = None
    bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> PartRef:
        return cls(
            id=str(doc["id"]),
            url=str(doc["url"]),
            dialect=str(doc["dialect"]),
            items=doc.get("items"),
            sha256=doc.get("sha256"),
            md5=doc.get("md5"),
            bytes=doc.get("bytes"),
        )


def _verified_copy(part: PartRef, s3: Any) -> IO[bytes]:
    """The part's bytes, downloaded (spooled) and checked against its sha256/md5/size before use."""
    sha = hashlib.sha256() if part.sha256 else None
    md5 = hashlib.md5(usedforsecurity=False) if part.md5 else None
    size = 0
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        for chunk in _chunks(part.url, s3):
            size += len(chunk)
            if sha:
                sha.update(chunk)
            if md5:
                md5.update(chunk)
            spool.write(chunk)
        problems = []
        if part.bytes is not None and size != part.bytes:
            problems.append(f"{size} bytes, manifest says {part.bytes}")
        if sha and sha.hexdigest() != part.sha256:
            problems.append(f"sha256 {sha.hexdigest()}, manifest says {part.sha256}")
        if md5 and base64.b64encode(md5.digest()).decode() != part.md5:
            problems.append(f"md5 {base64.b64encode(md5.digest()).decode()}, manifest says {part.md5}")
        if problems:
            raise IntegrityError(f"part {part.id} ({part.url}) is corrupt: {'; '.join(problems)}")
        spool.seek(0)
        return spool
    except BaseException:
        spool.close()
        raise


def check_part_count(part: PartRef, where_file: str, end: int | None, count: int) -> None:
    """After reading a part whole: its item count against its end line (local files) and its manifest."""
    if part.dialect == "local":
        if end is None:
            raise BackupIncomplete(f"{where_file} is incomplete: it has no end line (the backup was cut short)")
        if end != count:
            raise BackupIncomplete(f"{where_file} is incomplete: its end line says {end} items, it holds {count}")
    if part.items is not None and count != part.items:
        raise IntegrityError(f"part {part.id} ({part.url}) holds {count} items, manifest says {part.items}")


def read_part(part: PartRef, s3: Any = None, *, start: int = 0) -> Generator[Item, None, None]:
    """The items of one part in client form, verified, from item number ``start`` (0-based) on.

    A part with a checksum is verified before its first item is yielded
    (``IntegrityError`` naming the part); the item count is checked when the
    part has been read to its end (``IntegrityError``); a local file without
    its end line raises ``BackupIncomplete`` naming the file. Items before
    ``start`` are counted but not parsed, so resuming a part is cheap.
    """
    s3 = _s3_client(s3) if is_s3(part.url) else s3
    where_file = part.url
    if part.sha256 or part.md5:
        fh = _verified_copy(part, s3)
        raw: Iterable[bytes] = _file_chunks(fh)
    else:
        fh = None
        raw = _chunks(part.url, s3)
    count = 0
    end: int | None = None
    try:
        for lineno, line in _lines(_decoded(raw, where_file), where_file):
            where = f"{where_file} line {lineno}"
            if end is not None:
                raise BadInput(f"{where}: data after the end line")
            if part.dialect == "local" and not _is_item_line(line):
                doc = _json(line, where)
                if lineno == 1 and isinstance(doc, dict) and "ddbBackupFile" in doc:
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("ddbBackupEnd"), dict):
                    end = end_count(doc["ddbBackupEnd"], where)
                    continue
            if count >= start:
                item = _parse(part.dialect, line, where)
                if item is None:
                    raise BadInput(f"{where}: header or end line out of place")
                count += 1
                yield item
            else:
                count += 1
    finally:
        if fh is not None:
            fh.close()
    check_part_count(part, where_file, end, count)


# ------------------------------------------------------------------ sources
@dataclass
class Source:
    """A backup in any format restore reads. Build with :func:`open_source`.

    ``format``: ``ddb-backup-v1``, ``native-export``, ``cumulus-api``,
    ``local-file`` or ``dynamodb-json-lines``; ``table``: the source table's
    name where the format records it; ``description``: the saved description
    (``{"Table": DescribeTable, "TimeToLive", "ContinuousBackups", "Tags"}``)
    or None for formats without a schema; ``parts``: what to read;
    ``dead_letter_base``: the directory beside the backup where a restore
    saves items it could not write.
    """

    format: str
    location: str
    table: str | None
    description: dict[str, Any] | None
    parts: list[PartRef]
    warnings: list[str] = field(default_factory=list)
    backup_id: str | None = None
    dead_letter_base: str = ""
    s3: Any = None

    @property
    def expected_items(self) -> int | None:
        """Total items the source promises, or None when a part's count is unknown."""
        counts = [p.items for p in self.parts]
        return None if any(c is None for c in counts) else sum(c for c in counts if c is not None)

    @property
    def key_schema(self) -> list[dict[str, str]] | None:
        """KeySchema with each key's AttributeType, from the saved description (None without one)."""
        if not self.description:
            return None
        table = self.description["Table"]
        types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
        return [{**k, "AttributeType": types.get(k["AttributeName"], "S")} for k in table["KeySchema"]]

    def read_part(self, part: PartRef, *, start: int = 0) -> Iterator[Item]:
        """See :func:`read_part`."""
        return read_part(part, self.s3, start=start)

    def items(self) -> Iterator[Item]:
        """Every item of every part, verified, in order."""
        for part in self.parts:
            yield from self.read_part(part)

    def first_item(self) -> Item | None:
        for part in self.parts:
            for item in read_part(part, self.s3):
                return item
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "source": self.location,
            "table": self.table,
            "backupId": self.backup_id,
            "parts": len(self.parts),
            "items": self.expected_items,
            "warnings": list(self.warnings),
        }


def open_source(source: str, s3: Any = None) -> Source:
    """Detect the format of ``source`` (a local path or ``s3://bucket/key``) and open it.

    Raises ``UnknownFormat`` when nothing restorable is there, ``BadInput`` for
    a malformed manifest (unknown ``formatVersion``, part keys outside the
    backup, invalid JSON: each naming the file), ``BackupIncomplete`` for a
    backup directory without its manifest or a local file without its end
    line, ``IntegrityError`` when a manifest disagrees with itself.
    """
    if not source:
        raise BadInput("no source given")
    if is_s3(source):
        s3 = _s3_client(s3)
        _split(source)
    source = str(source)
    name = _name(source)
    if name == layout.MANIFEST and _exists(source, s3):
        return _open_v1(_parent(source), source, s3)
    if name == "manifest-summary.json" and _exists(source, s3):
        return _open_native(_parent(source), s3)
    is_file = (not source.endswith("/")) and _exists(source, s3)
    if is_file:
        return _open_file(source, s3)
    if not is_s3(source) and not Path(source).exists():
        raise BadInput(f"{source}: no such file or directory")
    directory = _as_dir(source)
    if _exists(_join(directory, layout.MANIFEST), s3):
        return _open_v1(directory, _join(directory, layout.MANIFEST), s3)
    if _exists(_join(directory, "manifest-summary.json"), s3):
        return _open_native(directory, s3)
    exports = _list_dirs(_join(directory, "AWSDynamoDB/") if is_s3(directory) else _join(directory, "AWSDynamoDB"), s3)
    if len(exports) == 1:
        return _open_native(_as_dir(_join(_join(directory, "AWSDynamoDB"), exports[0])), s3)
    if len(exports) > 1:
        raise BadInput(f"{source} holds {len(exports)} DynamoDB exports ({', '.join(exports[:5])}): name one")
    if _exists(_join(directory, layout.PLAN), s3):
        raise BackupIncomplete(f"{source}: the backup has no {layout.MANIFEST}: it did not finish, or is still running")
    latest = _latest_backup(directory, s3)
    if latest:
        opened = _open_v1(latest, _join(latest, layout.MANIFEST), s3)
        opened.warnings.append(f"{source} holds several backups of one table: restoring the latest, {opened.backup_id}")
        return opened
    raise UnknownFormat(
        f"{source}: no backup found (neither a ddb-backup manifest.json, a DynamoDB export, "
        "a cumulus-api backup file nor a ddb-backup local file)"
    )


def _latest_backup(table_dir: str, s3: Any) -> str | None:
    """The newest complete backup in a table's directory (``<table>/<backup-id>/manifest.json``), if any."""
    ids = sorted((d for d in _list_dirs(table_dir, s3) if _BACKUP_ID.fullmatch(d)), reverse=True)
    for backup_id in ids:
        directory = _as_dir(_join(table_dir, backup_id))
        if _exists(_join(directory, layout.MANIFEST), s3):
            return directory
    return None


def _open_v1(directory: str, manifest_url: str, s3: Any) -> Source:
    manifest = _read_json(manifest_url, s3)
    if not isinstance(manifest, dict) or manifest.get("format") != "ddb-backup":
        raise UnknownFormat(f'{manifest_url}: not a ddb-backup manifest (no "format": "ddb-backup")')
    version = manifest.get("formatVersion")
    if version != FORMAT_VERSION:
        raise BadInput(
            f"{manifest_url}: formatVersion {version!r} is not one this tool reads ({FORMAT_VERSION}); "
            f"ddb-backup {__version__} may be too old for this backup"
        )
    if manifest.get("itemFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
        raise BadInput(f"{manifest_url}: itemFormat {manifest.get('itemFormat')!r} is not DYNAMODB_JSON")
    raw_parts = manifest.get("parts")
    if not isinstance(raw_parts, list):
        raise BadInput(f"{manifest_url}: has no list of parts")
    parts: list[PartRef] = []
    seen: set[str] = set()
    for i, p in enumerate(raw_parts):
        where = f"{manifest_url} parts[{i}]"
        if not isinstance(p, dict):
            raise BadInput(f"{where}: not an object")
        key = layout.check_relative_key(p.get("key"), where)  # type: ignore[arg-type]
        if key in seen:
            raise BadInput(f"{where}: part {key} is listed twice")
        seen.add(key)
        items, sha = p.get("items"), p.get("sha256")
        if not isinstance(items, int) or items < 0:
            raise BadInput(f"{where}: items must be a count, got {items!r}")
        if not isinstance(sha, str) or len(sha) != 64:
            raise BadInput(f"{where}: sha256 must be 64 hex digits, got {sha!r}")
        size = p.get("bytes")
        parts.append(
            PartRef(
                id=key,
                url=_join(directory, key),
                dialect="item",
                items=items,
                sha256=sha.lower(),
                bytes=size if isinstance(size, int) else None,
            )
        )
    totals = manifest.get("totals") or {}
    if not isinstance(totals, dict):
        raise BadInput(f"{manifest_url}: totals must be an object, got {type(totals).__name__}")
    if "items" in totals and totals["items"] != sum(p.items or 0 for p in parts):
        raise IntegrityError(
            f"{manifest_url}: totals say {totals['items']} items, the parts add up to {sum(p.items or 0 for p in parts)}"
        )
    description = manifest.get("description")
    if not isinstance(description, dict) or "Table" not in description:
        raise BadInput(f"{manifest_url}: has no table description")
    table = manifest.get("table")
    return Source(
        format="ddb-backup-v1",
        location=directory,
        table=table if isinstance(table, str) else None,
        description=description,
        parts=parts,
        backup_id=manifest.get("backupId"),
        dead_letter_base=directory,
        s3=s3,
    )


def _check_md5_file(url: str, s3: Any) -> None:
    """Compare ``url`` with its ``.md5`` sibling (hex), when that exists."""
    md5_url = url[: -len(".json")] + ".md5"
    if not _exists(md5_url, s3):
        return
    want = _read_bytes(md5_url, s3, 1024).decode("ascii", "replace").strip().lower()
    got = hashlib.md5(_read_bytes(url, s3), usedforsecurity=False).hexdigest()
    if want != got:
        raise IntegrityError(f"{url} is corrupt: md5 {got}, {_name(md5_url)} says {want}")


def _open_native(directory: str, s3: Any) -> Source:
    summary_url = _join(directory, "manifest-summary.json")
    _check_md5_file(summary_url, s3)
    summary = _read_json(summary_url, s3)
    if not isinstance(summary, dict) or "manifestFilesS3Key" not in summary:
        raise UnknownFormat(f"{summary_url}: not a DynamoDB export summary")
    if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
        raise UnknownFormat(f"{summary_url}: outputFormat {summary.get('outputFormat')!r}: only DYNAMODB_JSON is read")
    if summary.get("exportType", "FULL_EXPORT") != "FULL_EXPORT":
        raise UnknownFormat(f"{summary_url}: exportType {summary.get('exportType')!r}: only full exports are read")
    export_id = _name(directory)
    marker = f"AWSDynamoDB/{export_id}/"
    files_url = _join(directory, "manifest-files.json")
    _check_md5_file(files_url, s3)
    parts: list[PartRef] = []
    lines = _read_bytes(files_url, s3).splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{files_url} line {lineno}"
        entry = _json(line, where)
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: not an object")
        key = entry.get("dataFileS3Key")
        if not isinstance(key, str) or marker not in key:
            raise BadInput(f"{where}: dataFileS3Key {key!r} is not inside {marker}")
        rel = layout.check_relative_key(key.split(marker, 1)[1], where)
        count = entry.get("itemCount")
        if not isinstance(count, int) or count < 0:
            raise BadInput(f"{where}: itemCount must be a count, got {count!r}")
        md5 = entry.get("md5Checksum")
        parts.append(
            PartRef(
                id=rel,
                url=_join(directory, rel),
                dialect="item",
                items=count,
                md5=md5 if isinstance(md5, str) else None,
            )
        )
    total = summary.get("itemCount")
    if isinstance(total, int) and total != sum(p.items or 0 for p in parts):
        raise IntegrityError(
            f"{summary_url}: itemCount {total}, manifest-files.json adds up to {sum(p.items or 0 for p in parts)}"
        )
    table_arn = str(summary.get("tableArn") or "")
    table = table_arn.split(":table/", 1)[1].split("/", 1)[0] if ":table/" in table_arn else None
    return Source(
        format="native-export",
        location=directory,
        table=table,
        description=None,
        parts=parts,
        backup_id=export_id,
        dead_letter_base=directory,
        s3=s3,
    )


def _first_line(url: str, s3: Any) -> tuple[int, bytes] | None:
    for numbered in _lines(_decoded(_chunks(url, s3), url), url):
        return numbered
    return None


def _open_file(url: str, s3: Any) -> Source:
    first = _first_line(url, s3)
    if first is None:
        raise UnknownFormat(f"{url}: empty file, no backup in it")
    lineno, line = first
    where = f"{url} line {lineno}"
    try:
        doc = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise UnknownFormat(f"{where}: not JSON lines: not a backup this tool reads") from None
    base = _parent(url)
    if isinstance(doc, dict) and "ddbBackupFile" in doc:
        return _open_local(url, doc["ddbBackupFile"], where, base, s3)
    if isinstance(doc, dict) and len(doc) == 1 and "Item" in doc:
        return Source("dynamodb-json-lines", url, None, None, [PartRef(_name(url), url, "item")], [], None, base, s3)
    if looks_typed(doc):
        return Source("cumulus-api", url, None, None, [PartRef(_name(url), url, "typed")], [], None, base, s3)
    if isinstance(doc, dict) and doc:
        warning = PLAIN_JSON_WARNING.format(where=url)
        return Source("cumulus-api", url, None, None, [PartRef(_name(url), url, "plain")], [warning], None, base, s3)
    raise UnknownFormat(f"{where}: a JSON {type(doc).__name__}, not an item: not a backup this tool reads")


def _open_local(url: str, header: Any, where: str, base: str, s3: Any) -> Source:
    if not isinstance(header, dict):
        raise BadInput(f"{where}: ddbBackupFile must be an object")
    version = header.get("formatVersion")
    if version != LOCAL_FORMAT_VERSION:
        raise BadInput(
            f"{where}: local file formatVersion {version!r} is not one this tool reads ({LOCAL_FORMAT_VERSION})"
        )
    description = header.get("description")
    if description is not None and (not isinstance(description, dict) or "Table" not in description):
        raise BadInput(f"{where}: description must be the saved table description")
    count = _local_count(url, s3)
    table = header.get("table")
    return Source(
        format="local-file",
        location=url,
        table=table if isinstance(table, str) else None,
        description=description,
        parts=[PartRef(_name(url), url, "local", items=count)],
        backup_id=header.get("backupId"),
        dead_letter_base=base,
        s3=s3,
    )


def end_count(end: dict[str, Any], where: str) -> int:
    """The count of a local file's end line (``{"ddbBackupEnd": {"items": N}}``); ``BadInput`` without one."""
    items = end.get("items")
    if not isinstance(items, int) or isinstance(items, bool) or items < 0:
        raise BadInput(f"{where}: end line without an item count")
    return items


def _local_count(url: str, s3: Any) -> int:
    """Check a local file is complete (end line present and last, count matching); return its count."""
    count = 0
    end: int | None = None
    for lineno, line in _lines(_decoded(_chunks(url, s3), url), url):
        if end is not None:
            raise BadInput(f"{url} line {lineno}: data after the end line")
        if _is_item_line(line) or lineno == 1:
            count += lineno != 1
            continue
        doc = _json(line, f"{url} line {lineno}")
        if isinstance(doc, dict) and isinstance(doc.get("ddbBackupEnd"), dict):
            end = end_count(doc["ddbBackupEnd"], f"{url} line {lineno}")
            continue
        count += 1  # not an item line: reported with its line number when read
    if end is None:
        raise BackupIncomplete(f"{url} is incomplete: it has no end line (the backup was cut short)")
    if end != count:
        raise BackupIncomplete(f"{url} is incomplete: its end line says {end} items, it holds {count}")
    return count


# ------------------------------------------------------------------ backup runs (table sets)
def find_run(root: str, s3: Any = None, backup_id: str | None = None) -> tuple[str, list[str]]:
    """The backups of one run under ``root`` (``s3://bucket/<prefix>``): (backup id, backup directories).

    ``root`` holds ``<table>/<backup-id>/manifest.json``. Without
    ``backup_id`` the latest id with at least one manifest is chosen. Only
    complete backups (with a manifest) are returned.
    """
    if is_s3(root):
        s3 = _s3_client(s3)
    root = _as_dir(root)
    tables = [t for t in _list_dirs(root, s3) if not t.startswith("_")]
    by_id: dict[str, list[str]] = {}
    for table in tables:
        table_dir = _as_dir(_join(root, table))
        ids = [backup_id] if backup_id else _list_dirs(table_dir, s3)
        for bid in ids:
            directory = _as_dir(_join(table_dir, bid))
            if _exists(_join(directory, layout.MANIFEST), s3):
                by_id.setdefault(bid, []).append(directory)
    if not by_id:
        which = f"backup {backup_id}" if backup_id else "complete backup"
        raise UnknownFormat(f"{root}: no {which} found (expected <table>/<backup-id>/manifest.json under it)")
    chosen = backup_id or max(by_id)
    return chosen, sorted(by_id[chosen])


# ------------------------------------------------------------------ key schema for foreign formats
def key_schema_from_names(names: list[str], item: Item | None, where: str = "source") -> list[dict[str, str]]:
    """KeySchema (with AttributeType) for ``names`` (hash[, range]), the types taken from a sample item."""
    if not 1 <= len(names) <= 2:
        raise BadInput(f"give one or two key attribute names (hash[,range]), got {names!r}")
    schema = []
    for name, kind in zip(names, ("HASH", "RANGE"), strict=False):
        if item is None:
            raise BadInput(f"{where} has no items to take the type of key {name!r} from: give it with its type")
        av = item.get(name)
        if not av:
            raise BadInput(f"{where}: the first item has no attribute {name!r}, so it cannot be a key")
        ((t, _),) = av.items()
        if t not in ("S", "N", "B"):
            raise BadInput(f"{where}: key {name!r} is of type {t} in the first item; keys are S, N or B")
        schema.append({"AttributeName": name, "KeyType": kind, "AttributeType": t})
    return schema


# ------------------------------------------------------------------ the local file format, written
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


# ------------------------------------------------------------------ dead letters
def _dead_letter_line(item: Item) -> bytes:
    raw = getattr(item, "line", None)
    return raw + b"\n" if isinstance(raw, bytes) else line_from_client_item(item)


def dead_letter_writer(base: str, run_id: str, s3: Any = None) -> Callable[[str, list[Item]], str]:
    """A function ``save(name, items) -> url`` that writes items a restore could not write.

    They go to ``<base>dead-letter/<run_id>/<name>.json.gz`` (S3 or local), as
    gzip ``{"Item": ...}`` lines: ``open_source`` reads such an object back,
    so it can be restored once the cause is fixed.
    """
    directory = _join(_as_dir(base) if is_s3(base) else base, f"dead-letter/{run_id}/")

    def save(name: str, items: list[Item]) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        # An item still in its backup line (fastwrite.RawItem) is saved as that line, unparsed:
        # a line DynamoDB refused may not parse, and must be kept all the same.
        body = gzip.compress(b"".join(_dead_letter_line(i) for i in items), compresslevel=6)
        if is_s3(directory):
            url = directory + f"{safe}.json.gz"
            bucket, key = _split(url)
            _s3_client(s3).put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        else:
            path = Path(directory) / f"{safe}.json.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            url = str(path)
        return url

    return save
