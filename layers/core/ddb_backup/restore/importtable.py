"""Restore by DynamoDB ImportTable: which restores can use it, how it is started, and what is checked after.

ImportTable creates a new table from ``{"Item": ...}`` lines under one S3
prefix ($0.15/GB, no write units). It cannot create LSIs, take tags, streams,
TTL, PITR or deletion protection, and it reads every object under the prefix.
So a restore imports only when: the target does not exist, every part is an
``{"Item": ...}`` object in S3 under one prefix that holds nothing else, the
parts share one compression, there are at most 50,000 of them, the backup has
no LSI and promises its item count. After the import the settings are applied
and ``ImportedItemCount`` must equal the backup's count with ``ErrorCount`` 0.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ddb_backup.aws import tables
from ddb_backup.aws.retry import Retry, call_with_backoff
from ddb_backup.aws.s3io import list_keys
from ddb_backup.errors import BadInput, RestoreIncomplete
from ddb_backup.format.location import name as location_name
from ddb_backup.format.sources import Source, open_source
from ddb_backup.names import is_s3_url, split_s3_url
from ddb_backup.restore import resume
from ddb_backup.restore.resume import Mark
from ddb_backup.restore.target import table_args

METHODS = ("auto", "import", "write")
#: Most S3 objects one ImportTable reads (AWS quota).
MAX_OBJECTS = 50_000
#: ImportTable runs at most 50 imports at once in an account and region; a run starts no more than that.
MAX_CONCURRENT_IMPORTS = 50
#: DescribeImport's statuses of an import that has not ended.
RUNNING = ("IN_PROGRESS", "CANCELLING")
#: What ImportTable cannot set and the restore applies after it (tables.RESTORE_DROPS order).
IMPORT_LACKS = ("tags", "ttl", "stream", "pitr")


@dataclass(frozen=True)
class Choice:
    """How one table is restored (``import`` or ``write``) and why, in a sentence naming the table."""

    method: str
    reason: str


def choose(s3: Any, src: Source, target: str, *, exists: bool, method: str, importing: int = 0) -> Choice:
    """The method for restoring ``src`` into ``target``; ``BadInput`` naming the reason when import is forced but impossible.

    ``importing``: the imports this run already plans (at most :data:`MAX_CONCURRENT_IMPORTS` start at once).
    """
    if method not in METHODS:
        raise BadInput(f"method {method!r}: choose auto, import or write")
    if method == "write":
        return Choice("write", f"{target}: written with BatchWriteItem (--method write)")
    why_not = _why_not(s3, src, target, exists=exists)
    if why_not is None and importing >= MAX_CONCURRENT_IMPORTS:
        why_not = f"this run already starts {MAX_CONCURRENT_IMPORTS} imports, as many as ImportTable runs at once"
    if why_not is None:
        return Choice("import", f"{target}: imported with ImportTable (new table, parts importable as they are)")
    if method == "import":
        raise BadInput(f"{target}: cannot restore by ImportTable: {why_not}; use --method write (or auto)")
    return Choice("write", f"{target}: written with BatchWriteItem, not imported: {why_not}")


def _why_not(s3: Any, src: Source, target: str, *, exists: bool) -> str | None:
    """Why ImportTable cannot restore ``src`` into ``target``, or None when it can."""
    if exists:
        return f"table {target} exists and ImportTable only creates new tables"
    if not src.parts:
        return "the backup holds no parts"
    if not all(is_s3_url(p.url) for p in src.parts):
        return "the backup is not in S3 (ImportTable reads only S3)"
    dialects = sorted({p.dialect for p in src.parts} - {"item"})
    if dialects:
        return f'its parts are not {{"Item": ...}} lines ({", ".join(dialects)} dialect)'
    table = (src.description or {}).get("Table") or {}
    if table.get("LocalSecondaryIndexes"):
        return "the table has local secondary indexes, which ImportTable cannot create"
    if src.expected_items is None:
        return "the backup does not record its item count to check the import against"
    if len(src.parts) > MAX_OBJECTS:
        return f"it has {len(src.parts):,} parts, more than the {MAX_OBJECTS:,} objects one import reads"
    if len({p.url.endswith(".gz") for p in src.parts}) > 1:
        return "its parts mix gzip and plain objects (one import takes one compression)"
    return _prefix_problem(s3, src)


def import_prefix(src: Source) -> tuple[str, str]:
    """(bucket, key prefix) holding every part: their common directory."""
    bucket, first = split_s3_url(src.parts[0].url)
    prefix = first.rsplit("/", 1)[0] + "/"
    for part in src.parts:
        other_bucket, key = split_s3_url(part.url)
        while other_bucket == bucket and not key.startswith(prefix) and prefix:
            prefix = prefix[:-1].rsplit("/", 1)[0] + "/" if "/" in prefix[:-1] else ""
        if other_bucket != bucket:
            raise BadInput("the parts are in several buckets")
    return bucket, prefix


def _prefix_problem(s3: Any, src: Source) -> str | None:
    """ImportTable reads every object under the prefix: anything there besides the parts would be imported too."""
    try:
        bucket, prefix = import_prefix(src)
    except BadInput as exc:
        return str(exc)
    if not prefix:
        return "the parts share no directory to import from"
    keys = set(list_keys(s3, bucket, prefix))
    parts = {split_s3_url(p.url)[1] for p in src.parts}
    extra = sorted(keys - parts)
    if extra:
        return f"s3://{bucket}/{prefix} also holds {len(extra)} object(s) that are not its parts (e.g. {extra[0]})"
    return None


def import_args(src: Source, target: str, key_schema: list[dict[str, str]] | None) -> dict[str, Any]:
    """ImportTable's arguments: the parts' prefix and the table as CreateTable would make it (minus what Import lacks)."""
    created = table_args(target, src.description, key_schema)
    allowed = (
        "TableName",
        "AttributeDefinitions",
        "KeySchema",
        "BillingMode",
        "ProvisionedThroughput",
        "OnDemandThroughput",
        "SSESpecification",
        "GlobalSecondaryIndexes",
    )
    bucket, prefix = import_prefix(src)
    return {
        "S3BucketSource": {"S3Bucket": bucket, "S3KeyPrefix": prefix},
        "InputFormat": "DYNAMODB_JSON",
        "InputCompressionType": "GZIP" if src.parts[0].url.endswith(".gz") else "NONE",
        "TableCreationParameters": {k: v for k, v in created.items() if k in allowed},
    }


def start_import(ddb: Any, src: Source, target: str, key_schema: list[dict[str, str]] | None, token: str) -> str:
    """Start ImportTable into ``target`` (``token``: the idempotency token); its ImportArn."""
    args = import_args(src, target, key_schema)
    out = call_with_backoff(ddb.import_table, ClientToken=token[:64], **args)
    return str(out["ImportTableDescription"]["ImportArn"])


def import_status(ddb: Any, arn: str) -> dict[str, Any]:
    """DescribeImport's description of ``arn``."""
    return dict(call_with_backoff(ddb.describe_import, ImportArn=arn)["ImportTableDescription"])


def wait_import(
    ddb: Any, arn: str, *, timeout: float = 86_400.0, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    """Poll DescribeImport (1 s, growing to 30 s apart) until the import ends; its last description."""
    deadline = time.monotonic() + timeout
    pause = 1.0
    while True:
        desc = import_status(ddb, arn)
        if desc["ImportStatus"] not in RUNNING:
            return desc
        if time.monotonic() > deadline:
            raise RestoreIncomplete(f"import {arn} still {desc['ImportStatus']} after {timeout:.0f} s")
        sleep(pause)
        pause = min(30.0, pause * 2)


def finish_import(
    ddb: Any,
    desc: dict[str, Any],
    src: Source,
    target: str,
    mark: Mark,
    *,
    patience: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """After the import: mark the table, apply what ImportTable cannot set, check its counts against the backup.

    Raises ``RestoreIncomplete`` naming the table, the counts and the import
    (the mark stays, so the table says it holds a partial restore). Returns
    ``{"imported", "errors", "processed", "settings", "warnings"}``.
    """
    status = desc["ImportStatus"]
    if status != "COMPLETED" and tables.describe_table(ddb, target) is None:
        raise RestoreIncomplete(
            f"{target}: ImportTable {status}: {desc.get('FailureCode')}: {desc.get('FailureMessage')} "
            f"({desc['ImportArn']}); no table was left"
        )
    table_arn = tables.wait_active(ddb, target, Retry.within(600.0, base=0.2, cap=5.0, sleep=sleep))["TableArn"]
    resume.set_mark(ddb, table_arn, Mark(mark.backup, mark.run, created=True))
    applied, warnings = [], []
    if src.description is not None:
        source = {
            **src.description,
            "Tags": [t for t in src.description.get("Tags") or [] if t.get("Key") != resume.MARK_KEY],
        }
        out = tables.reapply_settings(
            ddb, source, target, Retry.within(patience, base=1.0, cap=10.0, sleep=sleep), IMPORT_LACKS
        )
        applied = out.done
        warnings = [
            f"table {target}: {name} is not on yet ({exc}): turn it on later" for name, exc in out.pending.items()
        ]
    expected = src.expected_items
    imported, errors = int(desc.get("ImportedItemCount") or 0), int(desc.get("ErrorCount") or 0)
    if status != "COMPLETED" or errors or imported != expected:
        raise RestoreIncomplete(
            f"{target}: ImportTable {status} imported {imported:,} of the backup's {expected:,} items with "
            f"{errors:,} error(s) ({desc.get('FailureCode') or 'see the import CloudWatch log group'}; "
            f"{desc['ImportArn']}); the table is marked as a partial restore ({resume.MARK_KEY}): delete it "
            "and restore again with --method write"
        )
    return {
        "imported": imported,
        "errors": errors,
        "processed": int(desc.get("ProcessedItemCount") or 0),
        "settings": applied,
        "warnings": warnings,
    }


# ------------------------------------------------------------------ the state machine's imports
def start_planned(ddb: Any, prepared: list[tuple[Source, str, dict[str, Any]]], run_id: str) -> dict[str, str]:
    """Start ImportTable for every prepared target whose method is ``import``; their ImportArns by target.

    The token is the run and target, so a retried plan gets the same import back instead of a second one.
    """
    return {
        target: start_import(ddb, src, target, info.get("keySchema"), f"{run_id}-{target}")
        for src, target, info in prepared
        if info.get("method") == "import"
    }


def running(ddb: Any, planned: list[dict[str, Any]]) -> int:
    """How many of a plan's imports (its tables' ``importArn``) have not ended yet."""
    return sum(
        1 for t in planned if t.get("importArn") and import_status(ddb, t["importArn"])["ImportStatus"] in RUNNING
    )


def finish_planned(ddb: Any, s3: Any, table: dict[str, Any], run_id: str) -> dict[str, Any]:
    """One imported table of a plan (``source``, ``target``, ``importArn``) after the wait: :func:`finish_import`.

    Raises ``RestoreIncomplete`` naming the table, the counts and the import, or that it has not ended.
    """
    desc = import_status(ddb, table["importArn"])
    if desc["ImportStatus"] in RUNNING:
        raise RestoreIncomplete(
            f"{table['target']}: ImportTable is still {desc['ImportStatus']} ({table['importArn']}): "
            "the restore stopped before it ended; check the import with aws dynamodb describe-import"
        )
    src = open_source(table["source"], s3)
    return finish_import(ddb, desc, src, table["target"], Mark(src.backup_id or location_name(src.location), run_id))
