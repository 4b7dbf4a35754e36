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
    line with the count and a sha256 of the lines before it. The file is read
    whole when opened: without the end line, a count that differs or a checksum
    that does not match, it is refused before anything is written from it (an
    older file without a checksum is read, with a warning saying so).
``dynamodb-json-lines``
    bare ``{"Item": ...}`` lines (a single data file of an export, or a
    dead-letter object written by a restore).

``cumulus-api`` files and bare ``{"Item"}`` lines carry no count and no
checksum: a file cut at a line boundary cannot be told from a shorter backup,
and the source's warnings say so.

Files may be gzip (detected by content, not by name). Items come out in
client form (binary as ``bytes``), exactly as saved: nothing is added or
changed. Every error names the file and, where it applies, the line.

A part is verified before any of its items is handed out where the format
gives a checksum (the object is spooled to a temporary file while hashing);
item counts are checked when the part has been read to its end.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddb_backup import FORMAT_VERSION, __version__, names
from ddb_backup.errors import BackupIncomplete, BadInput, IntegrityError, UnknownFormat
from ddb_backup.format import layout, location
from ddb_backup.format.dialects import PLAIN_JSON_WARNING, json_line, looks_typed, parse_item
from ddb_backup.format.lines import PartRef, file_lines, local_file_sum, part_lines
from ddb_backup.format.localfile import LOCAL_FORMAT_VERSION

if TYPE_CHECKING:
    from ddb_backup.format.ddbjson import Item

#: Said of a local file written before the end line carried a checksum (read all the same).
LOCAL_NO_CHECKSUM = (
    "{url} has no checksum (written before local files carried one): "
    "a changed item cannot be detected, only a missing end line or a wrong count; "
    "back the table up again for a checked copy"
)
NO_COUNT = (
    "{url} is a {fmt} file: it carries no item count, so a file cut short at a line boundary "
    "cannot be detected; compare the items restored with what you expect (--expect-items N)"
)


def read_part(part: PartRef, s3: Any = None, *, start: int = 0) -> Generator[Item, None, None]:
    """The items of one part in client form, verified, from item number ``start`` (0-based) on.

    A part with a checksum is verified before its first item is yielded
    (``IntegrityError`` naming the part); the item count is checked when the
    part has been read to its end (``IntegrityError``); a local file without
    its end line raises ``BackupIncomplete`` naming the file. Items before
    ``start`` are counted but not parsed, so resuming a part is cheap.
    """
    with closing(part_lines(part, s3, start=start)) as lines:
        for where, line in lines:
            yield parse_item(part.dialect, line, where)


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
    consistent_at: str | None = None  # an exact backup's moment (issue 14): its changes follow the parts
    uncompressed_bytes: int | None = (
        None  # the parts' bytes before gzip, where the manifest says (ImportTable bills them)
    )

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
        """The first item of the first part that has one (None for a source without items)."""
        for part in self.parts:
            for item in read_part(part, self.s3):
                return item
        return None


def open_source(source: str, s3: Any = None) -> Source:  # noqa: C901 (one branch per backup format)
    """Detect the format of ``source`` (a local path or ``s3://bucket/key``) and open it.

    Raises ``UnknownFormat`` when nothing restorable is there, ``BadInput`` for
    a malformed manifest (unknown ``formatVersion``, part keys outside the
    backup, invalid JSON: each naming the file), ``BackupIncomplete`` for a
    backup directory without its manifest or a local file without its end
    line, ``IntegrityError`` when a manifest disagrees with itself.
    """
    if not source:
        raise BadInput("no source given")
    if names.is_s3_url(source):
        s3 = location.s3_client(s3)
        names.split_s3_url(source)
    source = str(source)
    name = location.name(source)
    if name == layout.MANIFEST and location.exists(source, s3):
        return _open_v1(location.parent(source), source, s3)
    if name == "manifest-summary.json" and location.exists(source, s3):
        return _open_native(location.parent(source), s3)
    is_file = (not source.endswith("/")) and location.exists(source, s3)
    if is_file:
        return _open_file(source, s3)
    if not names.is_s3_url(source) and not Path(source).exists():
        raise BadInput(f"{source}: no such file or directory")
    directory = location.as_dir(source)
    if location.exists(location.join(directory, layout.MANIFEST), s3):
        return _open_v1(directory, location.join(directory, layout.MANIFEST), s3)
    if location.exists(location.join(directory, "manifest-summary.json"), s3):
        return _open_native(directory, s3)
    exports = location.list_dirs(
        location.join(directory, "AWSDynamoDB/")
        if names.is_s3_url(directory)
        else location.join(directory, "AWSDynamoDB"),
        s3,
    )
    if len(exports) == 1:
        return _open_native(location.as_dir(location.join(location.join(directory, "AWSDynamoDB"), exports[0])), s3)
    if len(exports) > 1:
        raise BadInput(f"{source} holds {len(exports)} DynamoDB exports ({', '.join(exports[:5])}): name one")
    if location.exists(location.join(directory, layout.PLAN), s3):
        raise BackupIncomplete(f"{source}: the backup has no {layout.MANIFEST}: it did not finish, or is still running")
    latest, newer = _latest_backup(directory, s3)
    if latest:
        opened = _open_v1(latest, location.join(latest, layout.MANIFEST), s3)
        opened.warnings.append(f"{source} holds several backups of one table: restoring the latest, {opened.backup_id}")
        if newer:
            opened.warnings.append(
                f"{source}: the newest backup, {newer[0]}, is incomplete (no {layout.MANIFEST}; "
                f"{len(newer)} incomplete in all): restoring {opened.backup_id}, the newest complete one"
            )
        return opened
    raise UnknownFormat(
        f"{source}: no backup found (neither a ddb-backup manifest.json, a DynamoDB export, "
        "a cumulus-api backup file nor a ddb-backup local file)"
    )


def _latest_backup(table_dir: str, s3: Any) -> tuple[str | None, list[str]]:
    """The newest complete backup in a table's directory (``<table>/<backup-id>/manifest.json``), if any,
    and the ids of the incomplete backups newer than it (newest first)."""
    ids = sorted((d for d in location.list_dirs(table_dir, s3) if names.is_backup_id(d)), reverse=True)
    for n, backup_id in enumerate(ids):
        directory = location.as_dir(location.join(table_dir, backup_id))
        if location.exists(location.join(directory, layout.MANIFEST), s3):
            return directory, ids[:n]
    return None, ids


def _open_v1(directory: str, manifest_url: str, s3: Any) -> Source:
    manifest = location.read_json(manifest_url, s3)
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
    seen: set[str] = set()
    parts = [_v1_part(p, f"{manifest_url} parts[{i}]", directory, seen) for i, p in enumerate(raw_parts)]
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
    _check_listing(directory, manifest_url, parts, s3)
    source = _recorded("ddb-backup-v1", directory, manifest, description, parts, directory, s3)
    moment = manifest.get("consistentAt")
    source.consistent_at = moment if isinstance(moment, str) else None
    raw = totals.get("uncompressedBytes")
    source.uncompressed_bytes = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else None
    return source


_NOT_AS_WRITTEN = (
    "the backup is not as it was written (a manifest edited, or a backup copied in part): copy the whole "
    "backup directory again, or use another backup"
)


def _check_listing(directory: str, manifest_url: str, parts: list[PartRef], s3: Any) -> None:
    """The backup's ``data/`` against its manifest's parts: the same files, else an error naming the difference.

    A backup writes its manifest last, after deleting any part it does not list, so its ``data/`` holds
    exactly the parts listed. A file there the manifest omits is a manifest edited or cut short (its totals
    too, so the counts agree and a restore would lose those items silently); a part listed and absent is lost.
    """
    present = {layout.DATA_DIR + rel for rel in location.list_files(location.join(directory, layout.DATA_DIR), s3)}
    listed = {p.id for p in parts}
    unlisted, absent = sorted(present - listed), sorted(listed - present)
    found = [f"{len(absent)} part(s) it lists are missing from data/: {absent[:5]}"] if absent else []
    found += [f"{len(unlisted)} file(s) in data/ the manifest does not list: {unlisted[:5]}"] if unlisted else []
    if found:
        error = BackupIncomplete if absent else IntegrityError
        raise error(f"{manifest_url}: {'; '.join(found)}: {_NOT_AS_WRITTEN}")


def _recorded(
    fmt: str, where: str, doc: dict[str, Any], description: Any, parts: list[PartRef], base: str, s3: Any
) -> Source:
    """A source of this tool, whose manifest or header (``doc``) records its table and backup id."""
    table = doc.get("table")
    return Source(
        fmt, where, table if isinstance(table, str) else None, description, parts, [], doc.get("backupId"), base, s3
    )


def _v1_part(p: Any, where: str, directory: str, seen: set[str]) -> PartRef:
    """One entry of a ddb-backup manifest's ``parts``, checked (``seen``: the keys of the entries before it)."""
    if not isinstance(p, dict):
        raise BadInput(f"{where}: not an object")
    key = layout.check_relative_key(p.get("key"), where)  # type: ignore[arg-type]
    if key in seen:
        raise BadInput(f"{where}: part {key} is listed twice")
    seen.add(key)
    sha = p.get("sha256")
    items = _count(p.get("items"), "items", where)
    if not isinstance(sha, str) or len(sha) != 64:
        raise BadInput(f"{where}: sha256 must be 64 hex digits, got {sha!r}")
    size = p.get("bytes")
    return _item_part(directory, key, items, sha256=sha.lower(), size=size if isinstance(size, int) else None)


def _count(value: Any, name: str, where: str) -> int:
    """A manifest's item count: a non-negative int, else ``BadInput`` naming the field."""
    if not isinstance(value, int) or value < 0:
        raise BadInput(f"{where}: {name} must be a count, got {value!r}")
    return value


def _item_part(
    directory: str, rel: str, items: int, *, sha256: str | None = None, md5: str | None = None, size: int | None = None
) -> PartRef:
    """A data file of ``{"Item": ...}`` lines at ``rel`` in ``directory``, as its manifest describes it."""
    return PartRef(
        id=rel, url=location.join(directory, rel), dialect="item", items=items, sha256=sha256, md5=md5, bytes=size
    )


def _check_md5_file(url: str, s3: Any) -> None:
    """Compare ``url`` with its ``.md5`` sibling (hex), when that exists."""
    md5_url = url[: -len(".json")] + ".md5"
    if not location.exists(md5_url, s3):
        return
    want = location.read_bytes(md5_url, s3, 1024).decode("ascii", "replace").strip().lower()
    got = hashlib.md5(location.read_bytes(url, s3), usedforsecurity=False).hexdigest()
    if want != got:
        raise IntegrityError(f"{url} is corrupt: md5 {got}, {location.name(md5_url)} says {want}")


def _open_native(directory: str, s3: Any) -> Source:
    summary_url = location.join(directory, "manifest-summary.json")
    _check_md5_file(summary_url, s3)
    summary = location.read_json(summary_url, s3)
    if not isinstance(summary, dict) or "manifestFilesS3Key" not in summary:
        raise UnknownFormat(f"{summary_url}: not a DynamoDB export summary")
    if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
        raise UnknownFormat(f"{summary_url}: outputFormat {summary.get('outputFormat')!r}: only DYNAMODB_JSON is read")
    if summary.get("exportType", "FULL_EXPORT") != "FULL_EXPORT":
        raise UnknownFormat(f"{summary_url}: exportType {summary.get('exportType')!r}: only full exports are read")
    export_id = location.name(directory)
    marker = f"AWSDynamoDB/{export_id}/"
    files_url = location.join(directory, "manifest-files.json")
    _check_md5_file(files_url, s3)
    parts: list[PartRef] = []
    lines = location.read_bytes(files_url, s3).splitlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{files_url} line {lineno}"
        entry = json_line(line, where)
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: not an object")
        key = entry.get("dataFileS3Key")
        if not isinstance(key, str) or marker not in key:
            raise BadInput(f"{where}: dataFileS3Key {key!r} is not inside {marker}")
        rel = layout.check_relative_key(key.split(marker, 1)[1], where)
        count = _count(entry.get("itemCount"), "itemCount", where)
        md5 = entry.get("md5Checksum")
        if md5 is not None and not isinstance(md5, str):
            raise BadInput(f"{where}: md5Checksum must be a string, got {md5!r}")
        parts.append(_item_part(directory, rel, count, md5=md5))
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
    for numbered in file_lines(url, s3):
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
    base = location.parent(url)
    if isinstance(doc, dict) and "ddbBackupFile" in doc:
        return _open_local(url, doc["ddbBackupFile"], where, base, s3)
    if isinstance(doc, dict) and len(doc) == 1 and "Item" in doc:
        return _uncounted("dynamodb-json-lines", url, "item", [], base, s3)
    if looks_typed(doc):
        return _uncounted("cumulus-api", url, "typed", [], base, s3)
    if isinstance(doc, dict) and doc:
        return _uncounted("cumulus-api", url, "plain", [PLAIN_JSON_WARNING.format(where=url)], base, s3)
    raise UnknownFormat(f"{where}: a JSON {type(doc).__name__}, not an item: not a backup this tool reads")


def _uncounted(fmt: str, url: str, dialect: str, warnings: list[str], base: str, s3: Any) -> Source:
    """A file of item lines and nothing else: no count, no checksum (said in its warnings)."""
    part = PartRef(location.name(url), url, dialect)
    shown = 'bare {"Item": ...} lines' if fmt == "dynamodb-json-lines" else fmt
    warnings = [*warnings, NO_COUNT.format(url=url, fmt=shown)]
    return Source(fmt, url, None, None, [part], warnings, None, base, s3)


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
    part, warnings = _check_local(url, s3)
    opened = _recorded("local-file", url, header, description, [part], base, s3)
    opened.warnings.extend(warnings)
    return opened


def _check_local(url: str, s3: Any) -> tuple[PartRef, list[str]]:
    """Read a local file whole before anything is written from it: end line present and last, count and checksum.

    Streams the file (bounded memory): hashed as it stands when its bytes prove it
    (:func:`local_file_sum`), else line by line. Returns the part, with its count and
    verified checksum, and a warning for a file too old to carry a checksum.
    """
    part = PartRef(location.name(url), url, "local")
    proved = local_file_sum(url, s3)
    if proved is not None:
        return replace(part, items=proved[0], lines_sha256=proved[1]), []
    lines = part_lines(part, s3)
    count = 0
    while True:
        try:
            next(lines)
        except StopIteration as done:
            checksum: str | None = done.value
            break
        count += 1
    if checksum is None:
        return replace(part, items=count), [LOCAL_NO_CHECKSUM.format(url=url)]
    return replace(part, items=count, lines_sha256=checksum), []


# ------------------------------------------------------------------ key schema for foreign formats
def key_schema_from_names(names: list[str], item: Item | None, where: str) -> list[dict[str, str]]:
    """KeySchema (with AttributeType) for ``names`` (hash[, range]), the types taken from a sample item.

    ``where`` names the source in the messages.
    """
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
