"""The restore target: create it from a backup's saved schema, or check that an existing one is safe.

Rules (each refusal is a ``TargetRefused`` whose message names the table and the cause):

* the backup's own source table is refused unless the caller allows it;
* an existing target must have the key schema of the backup (names, key types
  and attribute types);
* an existing target must be empty unless the caller chose ``overwrite``
  (upsert: items of the backup replace items with the same key, other items stay);
* a missing target is created from the saved description (keys, attribute
  definitions, GSIs, LSIs, billing mode and capacity, SSE, stream, table class,
  tags; then TTL and PITR as in the source) and waited for until ACTIVE; a
  source without a schema (native export, cumulus-api file) needs the caller
  to give the keys, or an existing target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws import tables
from ddb_backup.aws.retry import Retry, call_with_backoff, error_code
from ddb_backup.errors import BadInput, TargetRefused
from ddb_backup.format import layout

MODES = ("new", "overwrite")


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
            return layout.check_table_name(new + name[len(old) :])
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


def create_table_args(name: str, description: dict[str, Any]) -> dict[str, Any]:
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
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in description.get("Tags") or [] if "Key" in t]
    if tags:
        args["Tags"] = tags
    # Deletion protection is left off: a restored copy is often deleted again after a check.
    return args


def _wait_active(ddb: Any, name: str, timeout: float, sleep: Callable[[float], None]) -> dict[str, Any]:
    """Wait (polling from 0.2 s up to 5 s apart) until ``name`` and its indexes are ACTIVE."""
    try:
        return tables.wait_active(ddb, name, Retry.within(timeout, base=0.2, cap=5.0, sleep=sleep))
    except tables.NotActive as exc:
        raise TargetRefused(f"table {name} is not ACTIVE after {timeout:.0f} s (status {exc.status})") from None


def _apply_settings(
    ddb: Any, name: str, description: dict[str, Any], patience: float, sleep: Callable[[float], None]
) -> tuple[list[str], list[str]]:
    """TTL and PITR as in the source (CreateTable cannot take them): (applied, warnings).

    A brand-new table may refuse them for a while; after ``patience`` seconds
    the restore goes on and says so instead of failing or waiting an hour.
    """
    retry = Retry.within(patience, base=1.0, cap=10.0, sleep=sleep)
    out = tables.reapply_settings(ddb, description, name, retry, tables.CREATE_TABLE_LACKS)
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
    layout.check_table_name(name)
    if mode not in MODES:
        raise BadInput(f"mode {mode!r}: choose 'new' or 'overwrite'")
    if source_table and name == source_table and not allow_source:
        raise TargetRefused(
            f"table {name} is the backup's own source table: restore into another table, "
            "or allow the source explicitly (allowSource / --allow-source)"
        )


def _check_existing(
    ddb: Any,
    name: str,
    existing: dict[str, Any],
    wanted: list[tuple[str, str, str]] | None,
    mode: str,
    wait: Callable[[], object],
) -> dict[str, Any]:
    """The result for an existing target, or ``TargetRefused`` (unusable, other keys, not empty in mode new)."""
    if existing.get("TableStatus") not in ("ACTIVE", "UPDATING", "CREATING"):
        raise TargetRefused(f"table {name} is {existing.get('TableStatus')}, not usable as a target")
    types = {a["AttributeName"]: a["AttributeType"] for a in existing.get("AttributeDefinitions", [])}
    have = _keys(existing["KeySchema"], types)
    if wanted is not None and have != wanted:
        raise TargetRefused(f"table {name} has keys {_fmt(have)}, the backup has {_fmt(wanted)}")
    if existing.get("TableStatus") == "CREATING":
        wait()
    if mode == "new" and not is_empty(ddb, name):
        raise TargetRefused(
            f"table {name} is not empty: restore into a new or empty table, "
            "or choose mode 'overwrite' to upsert into it"
        )
    return _result(name, have, exists=True, created=False)


def _create(ddb: Any, name: str, description: dict[str, Any] | None, schema: list[dict[str, str]] | None) -> bool:
    """CreateTable from the description (or the given keys, on demand); False when the table appeared meanwhile."""
    if description is not None:
        args = create_table_args(name, description)
    else:
        assert schema is not None
        args = {
            "TableName": name,
            "KeySchema": [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema],
            "AttributeDefinitions": [
                {"AttributeName": k["AttributeName"], "AttributeType": k["AttributeType"]} for k in schema
            ],
            "BillingMode": "PAY_PER_REQUEST",
        }
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
    timeout: float = 600.0,
    settings_patience: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Create the target table ``name`` or check that the existing one is safe to restore into.

    ``description`` is the backup's saved description (``Source.description``);
    ``key_schema`` (``[{"AttributeName", "KeyType", "AttributeType"}]``) stands
    in for it when the source has no schema. ``mode``: ``new`` (create, or an
    existing empty table) or ``overwrite`` (upsert into an existing table,
    empty or not). ``check_only`` checks everything and creates nothing, so a
    set of tables can be checked before any is created.

    TTL and PITR a new table refuses for ``settings_patience`` seconds are
    left off and named in ``warnings`` rather than failing the restore.

    Returns ``{"table", "exists", "created", "keySchema", "settings", "warnings"}``.
    Raises ``TargetRefused`` with a one-line cause naming the table.
    """
    _check_request(name, mode, source_table, allow_source)
    schema = normalize_key_schema(key_schema) if key_schema else None
    wanted = _wanted_keys(description, schema)
    existing = tables.describe_table(ddb, name)
    if existing is not None:
        return _check_existing(ddb, name, existing, wanted, mode, lambda: _wait_active(ddb, name, timeout, sleep))
    if description is None and schema is None:
        raise TargetRefused(
            f"table {name} does not exist and the backup carries no schema: create it first, or give its keys"
        )
    if check_only:
        return _result(name, wanted or [], exists=False, created=False)
    if not _create(ddb, name, description, schema):
        return prepare_target(
            ddb,
            name,
            description=description,
            key_schema=key_schema,
            mode=mode,
            source_table=source_table,
            allow_source=allow_source,
            timeout=timeout,
            settings_patience=settings_patience,
            sleep=sleep,
        )
    _wait_active(ddb, name, timeout, sleep)
    settings, warnings = _apply_settings(ddb, name, description, settings_patience, sleep) if description else ([], [])
    return _result(name, wanted or [], exists=True, created=True, settings=settings, warnings=warnings)


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
