"""``ddb-backup describe SOURCE`` and ``ddb-backup list --dir DIR``: what a backup holds, without restoring it."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from ddb_backup.aws.clients import client
from ddb_backup.errors import BackupIncomplete, DdbBackupError, UnknownFormat
from ddb_backup.format.sources import Source, open_source
from ddb_backup.names import backup_id_time, is_s3_url
from ddb_backup_cli.common import add_command, mb, print_json, say


def describe_source(source: str, s3: Any = None) -> dict[str, Any]:
    """Table, time, items, size, schema, settings, checksums and completeness of any SOURCE restore reads."""
    try:
        src = open_source(source, s3)
    except BackupIncomplete as exc:
        return {"source": source, "complete": False, "problem": str(exc)}
    table = (src.description or {}).get("Table", {})
    sizes = [p.bytes for p in src.parts]
    if None in sizes and not is_s3_url(src.location) and Path(src.location).is_file():
        sizes = [Path(src.location).stat().st_size]
    return {
        "source": src.location,
        "format": src.format,
        "complete": True,
        "table": src.table or table.get("TableName"),
        "backupId": src.backup_id,
        "time": _time(src),
        "items": src.expected_items,
        "bytes": None if None in sizes else sum(s or 0 for s in sizes),
        "parts": len(src.parts),
        "checksums": _checksums(src),
        "verifiable": src.expected_items is not None or _checksums(src) != "none",
        "keySchema": src.key_schema,
        "settings": _settings(src.description) if src.description else None,
        "warnings": src.warnings,
    }


def _time(src: Source) -> str | None:
    """When the backup was taken, from its id (v1, native export) or a local file's modification time."""
    ident = src.backup_id or ""
    try:
        if src.format == "ddb-backup-v1":
            when = backup_id_time(ident)
        elif src.format == "native-export":
            when = dt.datetime.fromtimestamp(int(ident.split("-")[0]) / 1000, dt.UTC)
        elif not is_s3_url(src.location) and Path(src.location).is_file():
            when = dt.datetime.fromtimestamp(Path(src.location).stat().st_mtime, dt.UTC)
        else:
            return None
    except ValueError:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _checksums(src: Source) -> str:
    """The checksums the source carries: a manifest's of every part, or a local file's end line's of its lines."""
    if src.parts and all(p.lines_sha256 for p in src.parts):
        return "sha256 of its lines (end line)" if len(src.parts) == 1 else "sha256 of every part's lines"
    kinds = [k for k in ("sha256", "md5") if src.parts and all(getattr(p, k) for p in src.parts)]
    return f"{kinds[0]} of every part" if kinds else "none"


#: What ``describe`` says of a source with neither a count nor a checksum: nothing proves it whole.
UNKNOWN = "unknown (no count or checksum)"


def _shown(value: Any) -> Any:
    """A setting as printed: a list joined, nothing recorded (None, empty) as ``-``."""
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else value


def _settings(description: dict[str, Any]) -> dict[str, Any]:
    table = description["Table"]
    ttl = description.get("TimeToLive") or {}
    pitr = (description.get("ContinuousBackups") or {}).get("PointInTimeRecoveryDescription", {})
    return {
        "billingMode": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
        "globalIndexes": [i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])],
        "localIndexes": [i["IndexName"] for i in table.get("LocalSecondaryIndexes", [])],
        "ttlAttribute": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None,
        "stream": (table.get("StreamSpecification") or {}).get("StreamViewType"),
        "pitr": pitr.get("PointInTimeRecoveryStatus"),
        "tags": len(description.get("Tags") or []),
    }


def cmd_describe(args: argparse.Namespace) -> int:
    doc = describe_source(args.source, client("s3") if is_s3_url(args.source) else None)
    if args.json:
        print_json(doc)
    elif not doc["complete"]:
        print(f"{args.source}: INCOMPLETE: {doc['problem']}")
    else:
        keys = ", ".join(f"{k['AttributeName']} ({k['KeyType']}, {k['AttributeType']})" for k in doc["keySchema"] or [])
        for label, value in (
            ("source", doc["source"]),
            ("format", doc["format"]),
            ("table", doc["table"] or "- (not recorded)"),
            ("backup id", doc["backupId"] or "-"),
            ("time", doc["time"] or "-"),
            ("items", "-" if doc["items"] is None else f"{doc['items']:,}"),
            ("size", mb(doc["bytes"])),
            ("parts", doc["parts"]),
            ("checksums", doc["checksums"]),
            ("keys", keys or "- (not recorded: restore needs --keys)"),
            *((name, _shown(value)) for name, value in (doc["settings"] or {}).items()),
            ("complete", "yes" if doc["verifiable"] else UNKNOWN),
        ):
            print(f"{label + ':':16} {value}")
        for text in doc["warnings"]:
            say(args, f"warning: {text}")
    return 0 if doc["complete"] else 1


def list_directory(args: argparse.Namespace, directory: str) -> int:
    """``list --dir DIR``: one row per backup file in a local directory; a file that cannot be read is listed
    too, marked CORRUPT or "not a backup" (one bad file must not hide the others), and the run exits 1."""
    root = Path(directory)
    if not root.is_dir():
        raise DdbBackupError(f"{directory}: no such directory")
    rows = [_listed(str(p)) for p in sorted(root.iterdir()) if p.name.endswith((".json", ".json.gz"))]
    bad = [r for r in rows if r["state"] in BAD]
    if args.json:
        print_json(rows)
    else:
        print(f"{'table':40} {'file':40} {'items':>10} {'MB':>9}  state")
        for r in rows:
            items = "-" if r.get("items") is None else f"{r['items']:,}"
            size = "-" if r.get("bytes") is None else f"{r['bytes'] / 1e6:,.1f}"
            print(f"{r.get('table') or '-':40} {Path(r['source']).name:40} {items:>10} {size:>9}  {r['state']}")
    for r in bad:
        print(f"ddb-backup: {r['source']}: {r['state']}: {r['problem']}", file=sys.stderr)
    return 1 if bad else 0


#: The states of a file ``list --dir`` could not read as a backup.
BAD = ("CORRUPT", "not a backup")


def _listed(path: str) -> dict[str, Any]:
    """One file's row: what ``describe`` says and its ``state``; a file no reader takes, or that breaks, named."""
    try:
        row = describe_source(path)
    except UnknownFormat as exc:
        return {"source": path, "complete": False, "state": BAD[1], "problem": str(exc)}
    except (DdbBackupError, OSError, ValueError, EOFError) as exc:
        return {"source": path, "complete": False, "state": BAD[0], "problem": str(exc) or type(exc).__name__}
    return {**row, "state": "complete" if row["complete"] else "INCOMPLETE"}


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``describe`` to the main parser's subcommands."""
    p = add_command(
        sub,
        parents,
        "describe",
        "what a backup holds: table, time, items, size, schema, settings, checksums, complete or not",
        cmd_describe,
        "  ddb-backup describe backups/mystack-GranulesTable.json\n"
        "  ddb-backup describe s3://bucket/backups/mystack-GranulesTable/20261122T030000Z-1a2b3c4d/\n"
        "  ddb-backup describe s3://bucket/exports/AWSDynamoDB/01763780000000-a1b2c3d4/ --json",
    )
    p.add_argument("source", help="local file, s3:// backup directory or manifest, native export directory")
