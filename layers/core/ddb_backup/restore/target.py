"""The restore target: create it from a backup's saved schema, or check that an existing one is safe.

Rules (each refusal is a ``TargetRefused`` whose message names the table and the cause):

* the backup's own source table is refused unless the caller allows it;
* an existing target must have the key schema of the backup (names, key types
  and attribute types);
* an existing target must be empty unless the caller chose ``overwrite``
  (upsert: items of the backup replace items with the same key, other items stay)
  or ``mirror`` (the CLI's: the target is made exactly the backup, see
  ``ddb_backup_cli.files.mirror``);
* a missing target is created from the saved description (keys, attribute
  definitions, GSIs, LSIs, billing mode and capacity, SSE, stream, table class,
  tags; then TTL and PITR as in the source) and waited for until ACTIVE; a
  source without a schema (native export, cumulus-api file) needs the caller
  to give the keys, or an existing target.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ddb_backup import names
from ddb_backup.aws import tables
from ddb_backup.aws.retry import Retry, call_with_backoff, error_code
from ddb_backup.errors import BadInput, TargetRefused
from ddb_backup.restore import resume

if TYPE_CHECKING:
    from ddb_backup.restore.resume import Mark

MODES = ("new", "overwrite", "mirror")


def map_table_name(name: str, mapping: list[tuple[str, str]] | list[list[str]]) -> str:
    """Rename ``name`` by the first prefix swap that applies: ``("prod-", "restore-")`` maps
    ``prod-GranulesTable`` to ``restore-GranulesTable``.

    An empty mapping keeps the name. A name no pair applies to is refused
    (``BadInput``), so a set restore never falls back to the source's own name.
    """
    if not mapping:
        return name
    for old, new in mapping:
        if name.startswith(old):
            return names.check_table_name(new + name[len(old) :])
    raise BadInput(f"table {name}: no name mapping applies to it ({', '.join(f'{o}->{n}' for o, n in mapping)})")


def _keys(key_schema: list[dict[str, Any]], attribute_types: dict[str, str]) -> list[tuple[str, str, str]]:
    order = {"HASH": 0, "RANGE": 1}
    return sorted(
        ((k["AttributeName"], k["KeyType"], attribute_types.get(k["AttributeName"], "?")) for k in key_schema),
        key=lambda t: order.get(t[1], 2),
    )


def _fmt(keys: list[tuple[str, str, str]]) -> str:
    return ", ".join(f"{n} {t} ({a})" for n, t, a in keys)


def normalize_key_schema(key_schema: list[Any]) -> list[dict[str, str]]:
    """Key schema given by a caller: dicts with AttributeName, KeyType and AttributeType."""
    out = []
    for i, k in enumerate(key_schema):
        if not isinstance(k, dict) or not {"AttributeName", "KeyType", "AttributeType"} <= set(k):
            raise BadInput(
                f"keySchema[{i}]: give AttributeName, KeyType (HASH|RANGE) and AttributeType (S|N|B), got {k!r}"
            )
        if k["KeyType"] not in ("HASH", "RANGE") or k["AttributeType"] not in ("S", "N", "B"):
            raise BadInput(f"keySchema[{i}]: KeyType must be HASH or RANGE and AttributeType S, N or B, got {k!r}")
        out.append({"AttributeName": k["AttributeName"], "KeyType": k["KeyType"], "AttributeType": k["AttributeType"]})
    kinds = [k["KeyType"] for k in out]
    if kinds not in (["HASH"], ["HASH", "RANGE"], ["RANGE", "HASH"]):
        raise BadInput(f"keySchema: one HASH key and at most one RANGE key, got {kinds}")
    return out


def _wanted_keys(
    description: dict[str, Any] | None, key_schema: list[dict[str, str]] | None
) -> list[tuple[str, str, str]] | None:
    if description:
        table = description["Table"]
        types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
        return _keys(table["KeySchema"], types)
    if key_schema:
        return _keys(key_schema, {k["AttributeName"]: k["AttributeType"] for k in key_schema})
    return None


def is_empty(ddb: Any, name: str) -> bool:
    """True when ``name`` holds no item (a Scan that stops at the first one)."""
    request: dict[str, Any] = {"TableName": name, "Limit": 1, "Select": "COUNT"}
    for _ in range(1000):  # a Limit=1 page can come back empty with a LastEvaluatedKey
        page = call_with_backoff(ddb.scan, **request)
        if page.get("Count"):
            return False
        if not page.get("LastEvaluatedKey"):
            return True
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return False


def create_table_args(name: str, description: dict[str, Any]) -> dict[str, Any]:  # noqa: C901
    """CreateTable arguments that rebuild the described table under ``name``."""
    table = description["Table"]
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
        "BillingMode": billing,
    }

    def throughput(spec: dict[str, Any] | None) -> dict[str, int]:
        spec = spec or {}
        return {
            "ReadCapacityUnits": max(1, int(spec.get("ReadCapacityUnits") or 1)),
            "WriteCapacityUnits": max(1, int(spec.get("WriteCapacityUnits") or 1)),
        }

    if billing == "PROVISIONED":
        args["ProvisionedThroughput"] = throughput(table.get("ProvisionedThroughput"))
    gsis = []
    for g in table.get("GlobalSecondaryIndexes") or []:
        gsi: dict[str, Any] = {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
        if billing == "PROVISIONED":
            gsi["ProvisionedThroughput"] = throughput(g.get("ProvisionedThroughput"))
        if g.get("OnDemandThroughput"):
            gsi["OnDemandThroughput"] = g["OnDemandThroughput"]
        gsis.append(gsi)
    if gsis:
        args["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
        for i in table.get("LocalSecondaryIndexes") or []
    ]
    if lsis:
        args["LocalSecondaryIndexes"] = lsis
    sse = table.get("SSEDescription") or {}
    if sse.get("Status") in ("ENABLED", "ENABLING", "UPDATING") and sse.get("SSEType") == "KMS":
        args["SSESpecification"] = {"Enabled": True, "SSEType": "KMS"}
        if sse.get("KMSMasterKeyArn"):
            args["SSESpecification"]["KMSMasterKeyId"] = sse["KMSMasterKeyArn"]
    stream = table.get("StreamSpecification") or {}
    if stream.get("StreamEnabled"):
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    table_class = (table.get("TableClassSummary") or {}).get("TableClass")
    if table_class:
        args["TableClass"] = table_class
    if table.get("OnDemandThroughput") and billing == "PAY_PER_REQUEST":
        args["OnDemandThroughput"] = table["OnDemandThroughput"]
    tags = [
        {"Key": t["Key"], "Value": t["Value"]}
        for t in description.get("Tags") or []
        if "Key" in t and t["Key"] != resume.MARK_KEY
    ]
    if tags:
        args["Tags"] = tags
    # Deletion protection is left off: a restored copy is often deleted again after a check.
    return args


def _wait_active(ddb: Any, name: str, timeout: float, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Wait (polling from 0.05 s up to 5 s apart) until ``name`` and its indexes are ACTIVE.

    The first polls come quickly: a small table (or an emulator's) is ACTIVE
    within a second, and every moment spent waiting is a moment nothing is written.
    """
    try:
        return tables.wait_active(ddb, name, Retry.within(timeout, base=0.05, cap=5.0, sleep=sleep))
    except tables.NotActive as exc:
        raise TargetRefused(f"table {name} is not ACTIVE after {timeout:.0f} s (status {exc.status})") from None


def _apply_settings(
    ddb: Any,
    name: str,
    description: dict[str, Any],
    patience: float,
    sleep: Callable[[float], None],
    which: tuple[str, ...] = tables.CREATE_TABLE_LACKS,
) -> tuple[list[str], list[str]]:
    """TTL and PITR as in the source (CreateTable cannot take them), or ``which``: (applied, warnings).

    A brand-new table may refuse them for a while; after ``patience`` seconds
    the restore goes on and says so instead of failing or waiting an hour.
    """
    retry = Retry.within(patience, base=1.0, cap=10.0, sleep=sleep)
    source = {**description, "Tags": [t for t in description.get("Tags") or [] if t.get("Key") != resume.MARK_KEY]}
    out = tables.reapply_settings(ddb, source, name, retry, which)
    warnings = []
    ttl = out.pending.get("ttl")
    if ttl is not None:
        attribute = description["TimeToLive"]["AttributeName"]
        warnings.append(f"table {name}: TTL on {attribute} is not on yet ({_why(ttl)}): turn it on later")
    pitr = out.pending.get("pitr")
    if pitr is not None:
        warnings.append(f"table {name}: PITR is not on yet ({_why(pitr)}, usual for a new table): turn it on later")
    return out.done, warnings


def _why(exc: BaseException) -> str:
    return error_code(exc) or str(exc)


def _check_request(name: str, mode: str, source_table: str | None, allow_source: bool) -> None:
    names.check_table_name(name)
    if mode not in MODES:
        raise BadInput(f"mode {mode!r}: choose 'new', 'overwrite' or 'mirror'")
    if source_table and name == source_table and not allow_source:
        raise TargetRefused(
            f"table {name} is the backup's own source table: restore into another table, "
            "or allow the source explicitly (allowSource / --allow-source)"
        )


def _check_identity(name: str, existing: dict[str, Any], description: dict[str, Any] | None) -> None:
    """Refuse the backup's own source table by its ARN, whatever name the manifest gives it."""
    saved = (description or {}).get("Table") or {}
    if not saved.get("TableArn") or saved["TableArn"] != existing.get("TableArn"):
        return
    created = str(existing.get("CreationDateTime", ""))
    same = "and creation time" if _same_time(saved.get("CreationDateTime"), existing.get("CreationDateTime")) else ""
    raise TargetRefused(
        f"table {name} is the table this backup was taken from (same ARN {saved['TableArn']} {same}, created "
        f"{created}), whatever table name the backup records: restore into another table, "
        "or allow the source explicitly (allowSource / --allow-source)"
    )


def _same_time(saved: Any, actual: Any) -> bool:
    try:
        have = actual if isinstance(actual, dt.datetime) else dt.datetime.fromisoformat(str(actual))
        return dt.datetime.fromisoformat(str(saved)) == have
    except ValueError:
        return False


@dataclass(frozen=True)
class _Ask:
    """What one target is prepared for: the table, the backup's schema, the mode, and this run's mark."""

    ddb: Any
    name: str
    description: dict[str, Any] | None
    schema: list[dict[str, str]] | None
    mode: str
    check_only: bool
    mark: Mark | None
    resume_hint: str | Callable[[Mark], str]
    timeout: float
    patience: float
    sleep: Callable[[float], None]
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def wait(self) -> dict[str, Any]:
        return _wait_active(self.ddb, self.name, self.timeout, self.sleep)

    def settings(self, which: tuple[str, ...]) -> tuple[list[str], list[str]]:
        if self.description is None:
            return [], []
        return _apply_settings(self.ddb, self.name, self.description, self.patience, self.sleep, which)


def _check_existing(ask: _Ask, existing: dict[str, Any], wanted: list[tuple[str, str, str]] | None) -> dict[str, Any]:
    """The result for an existing target, or ``TargetRefused`` (unusable, other keys, not empty in mode new)."""
    name = ask.name
    if existing.get("TableStatus") not in ("ACTIVE", "UPDATING", "CREATING"):
        raise TargetRefused(f"table {name} is {existing.get('TableStatus')}, not usable as a target")
    types = {a["AttributeName"]: a["AttributeType"] for a in existing.get("AttributeDefinitions", [])}
    have = _keys(existing["KeySchema"], types)
    if wanted is not None and have != wanted:
        raise TargetRefused(f"table {name} has keys {_fmt(have)}, the backup has {_fmt(wanted)}")
    found = resume.read_mark(ask.ddb, existing["TableArn"]) if ask.mark else None
    if found is not None:
        return _resume(ask, existing, found, have)
    if existing.get("TableStatus") == "CREATING":
        ask.wait()
    if ask.mode == "new" and not is_empty(ask.ddb, name):
        raise TargetRefused(
            f"table {name} is not empty: restore into a new or empty table, "
            "or choose mode 'overwrite' to upsert into it"
        )
    if ask.mark and not ask.check_only:
        resume.set_mark(ask.ddb, existing["TableArn"], ask.mark)
    return _result(name, have, exists=True, created=False)


def _resume(ask: _Ask, existing: dict[str, Any], found: Mark, have: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A target a restore left marked: this run's own (a retried plan), or another's to finish in mode overwrite.

    Finishing another backup's restore with this one would leave items of both: refused, naming both, unless this
    run is a mirror (which makes the table exactly this backup).
    """
    assert ask.mark is not None
    ours = found.run == ask.mark.run
    hint = ask.resume_hint(found) if callable(ask.resume_hint) else ask.resume_hint
    if not ours and ask.mode == "new":
        raise TargetRefused(f"{found.partial(ask.name)}; it did not finish{_billing_note(ask.name, found)}: {hint}")
    if not ours and ask.mode == "overwrite" and not found.same_backup(ask.mark):
        raise TargetRefused(
            f"{found.partial(ask.name)}; this run restores backup {ask.mark.backup}: finishing one with the other "
            f"would leave items of both, nothing was written: {hint}, or make the table exactly the other backup "
            "with --mode mirror"
        )
    if ask.check_only:
        return _result(ask.name, have, exists=True, created=False)
    if not ours:
        resume.set_mark(ask.ddb, existing["TableArn"], replace(ask.mark, created=found.created))
    ask.wait()
    # A table the first run created gets what CreateTable could not give it; tags again if it died before.
    which = (tables.CREATE_TABLE_LACKS if ours else tables.RESTORE_DROPS) if found.created else ()
    settings, warnings = ask.settings(which)
    if not ours:
        done = f" (settings applied: {', '.join(settings)})" if settings else ""
        warnings.insert(0, f"{found.partial(ask.name)}: resuming it{done}; every item is written again")
    return _result(ask.name, have, exists=True, created=found.created, settings=settings, warnings=warnings)


def _billing_note(name: str, found: Mark) -> str:
    """What a marked target's recorded billing says: on-demand for the load, and the units the resume puts back."""
    if found.billing is None:
        return ""
    units = found.billing["ProvisionedThroughput"]
    return (
        f"; table {name} is on-demand for a restore's load; it was PROVISIONED ({units['ReadCapacityUnits']} read, "
        f"{units['WriteCapacityUnits']} write units), which the resume puts back"
    )


def table_args(name: str, description: dict[str, Any] | None, schema: list[dict[str, str]] | None) -> dict[str, Any]:
    """CreateTable arguments from the description, or (a source without one) from the given keys, on demand."""
    if description is not None:
        return create_table_args(name, description)
    assert schema is not None
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema],
        "AttributeDefinitions": [
            {"AttributeName": k["AttributeName"], "AttributeType": k["AttributeType"]} for k in schema
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def _create(
    ddb: Any,
    name: str,
    description: dict[str, Any] | None,
    schema: list[dict[str, str]] | None,
    mark: Mark | None = None,
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> bool:
    """CreateTable from the description (or the given keys, on demand); False when the table appeared meanwhile."""
    args = table_args(name, description, schema)
    if adjust is not None:
        args = adjust(args)
    if mark is not None:  # with CreateTable itself: a run killed after it still leaves a marked table
        args["Tags"] = [*args.get("Tags", []), *mark.tags()]
    try:
        call_with_backoff(ddb.create_table, **args)
    except ClientError as exc:
        code = error_code(exc)
        if code != "ResourceInUseException":  # created meanwhile (a retried plan): checked by the caller
            raise TargetRefused(
                f"table {name} could not be created: {code}: {exc.response['Error']['Message']}"
            ) from None
        return False
    return True


def prepare_target(
    ddb: Any,
    name: str,
    *,
    description: dict[str, Any] | None = None,
    key_schema: list[dict[str, str]] | None = None,
    mode: str = "new",
    source_table: str | None = None,
    allow_source: bool = False,
    check_only: bool = False,
    mark: Mark | None = None,
    resume_hint: str | Callable[[Mark], str] = "rerun the restore with mode 'overwrite' to finish it",
    timeout: float = 600.0,
    settings_patience: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Create the target table ``name`` or check that the existing one is safe to restore into.

    ``description`` is the backup's saved description (``Source.description``);
    ``key_schema`` (``[{"AttributeName", "KeyType", "AttributeType"}]``) stands
    in for it when the source has no schema. ``mode``: ``new`` (create, or an
    existing empty table) or ``overwrite`` (upsert into an existing table,
    empty or not), or ``mirror`` (checked as ``overwrite``; its caller deletes
    what the backup does not hold). ``check_only`` checks everything and creates nothing, so a
    set of tables can be checked before any is created. ``mark``: this run's
    mark, put on the target (see :mod:`ddb_backup.restore.resume`); a target
    another run left marked is refused in mode ``new`` (``resume_hint``, or
    a function of the mark found, says how to resume) and finished in mode
    ``overwrite`` when it restored the same backup.

    ``adjust`` changes the CreateTable arguments of a target to create (billing mode, warm throughput).

    TTL and PITR a new table refuses for ``settings_patience`` seconds are
    left off and named in ``warnings`` rather than failing the restore.

    Returns ``{"table", "exists", "created", "keySchema", "settings", "warnings"}``.
    Raises ``TargetRefused`` with a one-line cause naming the table.
    """
    _check_request(name, mode, source_table, allow_source)
    schema = normalize_key_schema(key_schema) if key_schema else None
    ask = _Ask(
        ddb, name, description, schema, mode, check_only, mark, resume_hint, timeout, settings_patience, sleep, adjust
    )
    return _prepare(ask, _wanted_keys(description, schema), allow_source)


def _prepare(ask: _Ask, wanted: list[tuple[str, str, str]] | None, allow_source: bool) -> dict[str, Any]:
    existing = tables.describe_table(ask.ddb, ask.name)
    if existing is not None:
        if not allow_source:
            _check_identity(ask.name, existing, ask.description)
        return _check_existing(ask, existing, wanted)
    if ask.description is None and ask.schema is None:
        raise TargetRefused(
            f"table {ask.name} does not exist and the backup carries no schema: create it first, or give its keys"
        )
    if ask.check_only:
        return _result(ask.name, wanted or [], exists=False, created=False)
    mark = replace(ask.mark, created=True) if ask.mark else None
    if not _create(ask.ddb, ask.name, ask.description, ask.schema, mark, ask.adjust):
        return _prepare(ask, wanted, allow_source)  # created meanwhile (a retried plan): checked as existing
    ask.wait()
    settings, warnings = ask.settings(tables.CREATE_TABLE_LACKS)
    return _result(ask.name, wanted or [], exists=True, created=True, settings=settings, warnings=warnings)


def _result(
    name: str,
    keys: list[tuple[str, str, str]],
    *,
    exists: bool,
    created: bool,
    settings: list[str] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "table": name,
        "exists": exists,
        "created": created,
        "keySchema": [{"AttributeName": n, "KeyType": t, "AttributeType": a} for n, t, a in keys],
        "settings": settings or [],
        "warnings": warnings or [],
    }
