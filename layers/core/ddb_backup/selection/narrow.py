"""A source narrowed to the selected items: read whole (every check a restore makes: checksums, counts), the
matches written to one file that stands in for the source's parts.

Backups are laid out by scan segment, not by key: finding a few items reads every part. The CLI writes the
matches to a local file; the restore machine's plan writes them to S3 under its run (``selected/<n>.json.gz``),
so the Distributed Map restores one small part. A selector that matched nothing (neither an item nor, when
``Selection.also`` holds them, a change to apply after the parts) fails before any table is created.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from ddb_backup.aws.s3io import get_json
from ddb_backup.changes.consistent import backup_changes
from ddb_backup.changes.replay import fold
from ddb_backup.changes.totime import changes_to
from ddb_backup.format import layout
from ddb_backup.format.ddbjson import Item, item_from_wire, item_to_wire, line_from_client_item
from ddb_backup.format.dialects import item_size
from ddb_backup.format.keys import key_value
from ddb_backup.format.lines import PartRef
from ddb_backup.names import split_s3_url, utc_time
from ddb_backup.restore import fastwrite
from ddb_backup.selection import cost
from ddb_backup.selection.selectors import NothingSelected, Selection

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable
    from pathlib import Path

    from ddb_backup.format.sources import Source


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


#: How many unmatched selectors a message names.
NAMED = 10


def write_matches(src: Source, select: Selection, out: _Sink) -> int:
    """Every item of ``src`` that ``select`` matches, as backup lines on ``out``; how many. Each selector counts
    its matches, and the changes of ``select.also`` too."""
    count = 0
    for item in fastwrite.source_items(src):
        if select.match(item):
            raw = isinstance(item, fastwrite.RawItem)
            out.write(item.line + b"\n" if raw else line_from_client_item(item))
            select.sizes.append(item_size(item.item() if raw else item))
            count += 1
    for change in select.also:
        select.match(item_from_wire(change["Keys"]))
    return count


def check_matched(select: Selection, where: str, count: int) -> None:
    """``NothingSelected`` naming every selector that matched nothing (of ``where``)."""
    unmatched = select.unmatched()
    if unmatched:
        raise NothingSelected(
            f"{', '.join(unmatched[:NAMED])}{' ...' if len(unmatched) > NAMED else ''}: matched no item of "
            f"{where} ({count:,} other items matched); nothing was created or written: "
            "check the value and its type (a preview shows what a selection matches)"
        )


def narrow(src: Source, select: Selection, directory: Path, name: str) -> Source:
    """``src`` with only the selected items, written to a local file in ``directory``."""
    path = directory / f"{name}.selected.json"
    with path.open("wb") as out:
        count = write_matches(src, select, out)
    check_matched(select, src.location, count)
    select.cost = restore_cost(src, select)
    part = PartRef(id=path.name, url=str(path), dialect="item", items=count, bytes=path.stat().st_size)
    return replace(src, parts=[part])


def narrow_to_s3(src: Source, select: Selection, s3: Any, bucket: str, key: str) -> Source:
    """``src`` with only the selected items, written gzip to ``s3://bucket/key`` (its sha256 and count in the
    part, checked when the part is read), through a temporary file."""
    with tempfile.TemporaryFile() as spool:
        with gzip.GzipFile(fileobj=spool, mode="wb", mtime=0) as out:
            count = write_matches(src, select, out)
        check_matched(select, src.location, count)
        select.cost = restore_cost(src, select)
        size, digest = spool.tell(), hashlib.sha256()
        spool.seek(0)
        for chunk in iter(lambda: spool.read(1 << 20), b""):
            digest.update(chunk)
        spool.seek(0)
        s3.upload_fileobj(spool, bucket, key)
    part = PartRef(
        id=key.rsplit("/", 1)[-1], url=f"s3://{bucket}/{key}", dialect="item", items=count, sha256=digest.hexdigest()
    )
    return replace(src, parts=[replace(part, bytes=size)])


def restore_cost(src: Source, select: Selection) -> dict[str, Any]:
    """What a restore of ``select``'s items of ``src`` costs: reading every part (and the manifest), writing the
    matches (:mod:`ddb_backup.selection.cost`)."""
    read = cost.read_cost(src.parts, extra_gets=1 if src.format == "ddb-backup-v1" else 0)
    return {"read": read, "items": len(select.sizes), "writeUnits": cost.write_units(select.sizes)}


def overlay(
    items: list[Item], changes: Iterable[dict[str, Any]], until: dt.datetime, key_names: list[str]
) -> list[Item]:
    """``items`` as the ``changes`` up to ``until`` leave them (the last change of each key: put or removed)."""
    by_key = {key_text(item_to_wire({n: i[n] for n in key_names})): i for i in items}
    for change in fold(changes, until).values():
        key = key_text(change["Keys"])
        if change["event"] == "REMOVE":
            by_key.pop(key, None)
        else:
            by_key[key] = item_from_wire(change["NewImage"])
    return list(by_key.values())


def key_text(wire_key: dict[str, Any]) -> str:
    """A key in DynamoDB JSON as comparable text (a number normalised)."""
    return json.dumps({n: key_value(v) for n, v in wire_key.items()}, sort_keys=True, default=str)


def changes_after_parts(s3: Any, src: Source, to_time: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The final change of every key a restore of ``src`` applies after its parts (an exact backup's own, up to
    its ``consistentAt``; with ``to_time``, the archive's up to it): what may bring a selected key too."""
    if src.consistent_at is None or not src.location.startswith("s3://"):
        return []
    bucket, directory = split_s3_url(src.location)
    directory = directory if directory.endswith("/") else directory + "/"
    manifest = get_json(s3, bucket, directory + layout.MANIFEST)
    if to_time:
        until = utc_time(to_time["toTime"])
        changes = changes_to(s3, bucket, to_time["tableDir"], manifest, until)
    else:
        until, changes = utc_time(manifest["consistentAt"]), backup_changes(s3, bucket, directory, manifest)
    return list(fold(changes, until).values())
