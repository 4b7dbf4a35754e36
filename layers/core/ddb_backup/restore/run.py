"""A restore run as the state machine drives it: plan, (restore every part), finalize.

Bookkeeping lives under ``<prefix>@ddb-backup/restores/<run-id>/``::

    plan.json                 what was asked, every table's source, target and parts
    parts.json                the work list the Distributed Map reads (one entry per part)
    results/<t>-<part>.json   written by a part's restore when it is done
    errors/<t>-<part>.json    written by a part's restore that failed (quoted by finalize)
    report.json               written by finalize

Dead letters go beside the backup: ``<backup dir>dead-letter/<run-id>/``.
Finalize (:mod:`ddb_backup.restore.finalize`) trusts none of the map's own accounting (a child may fail or never
run): it fails, naming the parts, unless every part has a result whose count
matches the manifest.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ddb_backup.aws.ratelimit import segment_share
from ddb_backup.aws.s3io import put_json
from ddb_backup.errors import BadInput, UnknownFormat
from ddb_backup.events import MIRROR_IS_CLI_ONLY
from ddb_backup.format import layout, runs
from ddb_backup.format.location import name as location_name
from ddb_backup.format.sources import Source, key_schema_from_names, open_source
from ddb_backup.names import is_run_id, is_s3_url, new_backup_id
from ddb_backup.restore import capacity, exact
from ddb_backup.restore.importtable import Choice, choose, start_planned
from ddb_backup.restore.preflight import check_parts_present, load_adjuster, resume_hint, write_rate
from ddb_backup.restore.resume import Mark
from ddb_backup.restore.target import map_table_name, prepare_target
from ddb_backup.selection import narrow, selectors

if TYPE_CHECKING:
    from ddb_backup.events import PlanRestoreEvent


@dataclass(frozen=True)
class RestoreSettings:
    bucket: str
    prefix: str = ""
    write_concurrency: int = 8  # BatchWriteItem requests in flight per part
    attempts: int = 12  # tries in a row without progress before a request's items are dead-lettered
    time_budget: float = 600.0  # seconds one invocation writes before handing over
    max_concurrency: int = 100  # parts restored at once (Distributed Map)
    write_percent: float | None = None  # the stack's WritePercent: a share of each provisioned target's capacity
    import_poll: int = 30  # seconds the state machine waits between two looks at the imports it started


def run_prefix(settings: RestoreSettings, run_id: str) -> str:
    return layout.restore_dir(settings.prefix, run_id)


def run_id_from(execution_name: str | None, now: dt.datetime | None = None) -> str:
    """The execution's name (so a retried plan reuses its directory), or a fresh time-sorted id."""
    if execution_name and is_run_id(execution_name):
        return execution_name
    return new_backup_id(now)


def _url(source: str, bucket: str | None) -> str:
    """An ``s3://`` URL as given, or a key in the backup bucket (with no bucket: a local path)."""
    if is_s3_url(source) or bucket is None:
        return source
    return f"s3://{bucket}/{source.lstrip('/')}"


class _Pairs(NamedTuple):
    """(source, target table) for every table a request restores; the backup run of a set; what was skipped."""

    pairs: list[tuple[Source, str]]
    backup_run: str | None = None
    notes: list[str] = []


def _pairs(s3: Any, request: dict[str, Any], bucket: str | None) -> _Pairs:
    """(source, target table) for every table the request restores, and the backup run id for a set."""
    url = _url(request["source"], bucket)
    mapping = [(m["from"], m["to"]) for m in request.get("map") or []]
    target = request.get("table")
    single: Source | None = None
    if not request.get("backupId"):
        try:
            single = open_source(url, s3)
        except UnknownFormat:
            if not mapping:
                raise
    if single is not None:
        if target:
            return _Pairs([(single, target)])
        if single.table is None:
            raise BadInput(f"{url}: this {single.format} backup does not record its table's name: give 'table'")
        return _Pairs([(single, map_table_name(single.table, mapping))])
    if target:
        raise BadInput("'table' names one target: with a set of backups (backupId) give 'map' instead")
    names = request.get("tables") or None

    def wanted(table: str) -> bool:
        return (table in names) if names else any(table.startswith(old) for old, _ in mapping)

    if not is_s3_url(url) and os.path.isdir(url):
        return _local_set(url, s3, mapping, wanted, bool(names or request.get("allowPartial")))
    choice = runs.find_run(
        url, s3, request.get("backupId"), wanted=wanted, tables=names, allow_partial=bool(request.get("allowPartial"))
    )
    pairs = []
    for directory in choice.directories:
        src = open_source(directory, s3)
        assert src.table
        pairs.append((src, map_table_name(src.table, mapping)))
    return _Pairs(pairs, choice.backup_id, [f"restoring backup run {choice.backup_id}", *choice.skipped])


def _local_set(
    url: str, s3: Any, mapping: list[tuple[str, str]], wanted: Callable[[str], bool], partial: bool
) -> _Pairs:
    """A local directory of backup files (``ddb-backup backup --prefix P --dir D``): one file a table, one run."""
    files = sorted(os.path.join(url, n) for n in os.listdir(url) if n.endswith((".json", ".json.gz")))
    sources = [src for src in (open_source(f, s3) for f in files) if src.table and wanted(src.table)]
    if not sources:
        raise BadInput(f"{url}: no backup file of a table the name mapping applies to")
    by_table = {src.table: src.location for src in sources if src.table}
    notes = [] if partial else runs.check_local_set(url, by_table, wanted)
    return _Pairs([(src, map_table_name(str(src.table), mapping)) for src in sources], None, notes)


def _key_schema(src: Source, request: dict[str, Any]) -> list[dict[str, str]] | None:
    if src.description:
        return None
    if request.get("keySchema"):
        return list(request["keySchema"])
    if request.get("keys"):
        return key_schema_from_names(list(request["keys"]), src.first_item(), src.location)
    return None


def _check_items_fit(src: Source, target: dict[str, Any]) -> None:
    """A source without a schema: its first item must carry the target's keys, with their types."""
    item = src.first_item()
    if item is None:
        return
    for key in target["keySchema"]:
        av = item.get(key["AttributeName"])
        if not av or next(iter(av)) != key["AttributeType"]:
            have = f"type {next(iter(av))}" if av else "no such attribute"
            raise BadInput(
                f"{src.location}: its items do not fit table {target['table']}: key {key['AttributeName']} "
                f"is {key['AttributeType']} there, the first item has {have}"
            )


class Prepared(NamedTuple):
    """Every table of a restore, prepared: (source, target, ``prepare_target`` result); the run of a set; notes."""

    targets: list[tuple[Source, str, dict[str, Any]]]
    backup_run: str | None
    notes: list[str]


def prepare_targets(
    ddb: Any,
    s3: Any,
    request: dict[str, Any],
    *,
    bucket: str | None,
    run_id: str,
    write_percent: float | None = None,
    check_only: bool = False,
) -> Prepared:
    """Open every source of ``request``, check every part and target, then create the missing targets.

    Every part (present, its manifest's size) and target is checked, its write rate worked out (``writeRate``,
    ``writePercent``, else ``write_percent`` of a provisioned target) and its method chosen (``method``:
    write/import/auto) before any is created, marked or switched to on-demand for the load (``loadBilling``): a
    refusal leaves nothing behind. Each result carries ``writeRate`` (0: no limit), ``loadBilling`` (the units
    to put back, or None), ``capacity`` (notes), ``method`` and ``reason``. ``bucket``: where a bare key lives.
    ``run_id`` names the mark on every target until its restore is complete (:mod:`ddb_backup.restore.resume`).
    ``check_only`` (a dry run): nothing is created or marked; each result says whether its target ``exists``.
    """
    found = _pairs(s3, request, bucket)
    if found.backup_run and not request.get("backupId"):  # a resume finishes this run, not a newer one
        request = {**request, "backupId": found.backup_run}
    targets = [t for _, t in found.pairs]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise BadInput(f"several sources would be restored into {', '.join(twice)}")
    if not check_only:
        _check_counted([src for src, _ in found.pairs], request)
    check_parts_present([p for src, _ in found.pairs for p in src.parts], s3)
    schemas = [_key_schema(src, request) for src, _ in found.pairs]
    load = request.get("loadBilling") == "on-demand"
    plans: dict[str, dict[str, Any] | None] = {}
    rates: dict[str, float | None] = {}
    checks: list[tuple[Source, str, dict[str, Any]]] = []
    for (src, target), schema in zip(found.pairs, schemas, strict=True):
        checked = _prepare(ddb, src, target, schema, request, run_id, check_only=True)
        if src.description is None and checked["exists"]:
            _check_items_fit(src, checked)
        choice = _choice(s3, (src, target, checked), request, checks)
        checked.update(method=choice.method, reason=choice.reason)
        imported = choice.method == "import"  # ImportTable creates the table as the backup had it: no switch
        plans[target] = capacity.load_plan(ddb, target, src.description, load=load and not imported)
        rates[target] = write_rate(ddb, src, target, request, write_percent)
        checks.append((src, target, checked))
    if check_only:
        return Prepared(checks, found.backup_run, found.notes)
    capacity.switch_to_on_demand(ddb, plans)  # before any table is created: a refusal leaves nothing behind
    try:
        prepared = [
            _create_one(ddb, request, run_id, check, schema, plans, rates)
            for check, schema in zip(checks, schemas, strict=True)
        ]
    except BaseException as exc:
        raise capacity.put_back_after(ddb, plans, exc) from None
    return Prepared(prepared, found.backup_run, found.notes)


def _choice(s3: Any, pair: tuple[Source, str, dict[str, Any]], request: dict[str, Any], checks: list[Any]) -> Choice:
    """The method of one target, counting the imports the targets before it already take (50 run at once)."""
    src, target, checked = pair
    importing = sum(1 for *_, c in checks if c["method"] == "import")
    method = request.get("method") or "write"
    return choose(s3, src, target, exists=checked["exists"], method=method, importing=importing)


def _create_one(
    ddb: Any,
    request: dict[str, Any],
    run_id: str,
    check: tuple[Source, str, dict[str, Any]],
    schema: list[dict[str, str]] | None,
    plans: dict[str, dict[str, Any] | None],
    rates: dict[str, float | None],
) -> tuple[Source, str, dict[str, Any]]:
    """One checked target created (or marked), with its write rate, the units to put back and its method."""
    src, target, checked = check
    how = {"method": checked["method"], "reason": checked["reason"]}
    if how["method"] == "import":
        return (src, target, {**checked, "created": True, "writeRate": 0, "loadBilling": None})
    adjust, notes = load_adjuster(src, request, plans[target])
    info = _prepare(ddb, src, target, schema, request, run_id, check_only=False, adjust=adjust)
    plan = plans[target]
    if request.get("within") and not info["created"]:
        notes = [f"table {target} exists: --within pre-warms only a table the restore creates"]
    info.update(writeRate=rates[target] or 0, loadBilling=plan["restore"] if plan else None, capacity=notes, **how)
    return (src, target, info)


def _check_counted(sources: list[Source], request: dict[str, Any]) -> None:
    """A mirror deletes what its source lacks: a source cut short would delete items, so its count must be checked."""
    if request.get("mode") != "mirror" or request.get("expectItems") is not None:
        return
    for src in sources:
        if src.expected_items is None:
            raise BadInput(
                f"{src.location} carries no count of its items, and a mirror deletes every item the source lacks: "
                "a file cut short would delete items: give --expect-items N (the items it must hold), or restore "
                "with --mode overwrite (which deletes nothing); nothing was changed"
            )


def _prepare(
    ddb: Any,
    src: Source,
    target: str,
    schema: list[dict[str, str]] | None,
    request: dict[str, Any],
    run_id: str,
    *,
    check_only: bool,
    adjust: Any = None,
) -> dict[str, Any]:
    """``prepare_target`` for one source's target, as ``request`` asks (mode, allowSource), marked for ``run_id``.

    The mark names the exact backup and the mode; the resume command of a target another run left marked names
    that run's backup and mode (a set's by its pinned ``backupId``).
    """
    mode = request.get("mode") or "new"
    exact_source = None if request.get("map") else src.location
    return prepare_target(
        ddb,
        target,
        description=src.description,
        key_schema=schema,
        mode=mode,
        source_table=src.table,
        allow_source=bool(request.get("allowSource")),
        check_only=check_only,
        mark=Mark(src.backup_id or location_name(src.location), run_id, source=src.location, mode=mode),
        resume_hint=lambda found: resume_hint(
            request, target, exact_source and (found.source or exact_source), found.mode or mode
        ),
        adjust=adjust,
    )


def plan_restore(
    ddb: Any,
    s3: Any,
    settings: RestoreSettings,
    request: dict[str, Any],
    *,
    run_id: str,
    now: dt.datetime | None = None,
    streams: Any = None,
) -> dict[str, Any]:
    """Open and verify every source, check every target, then create the missing ones, and write the work list.

    ``request`` (the state machine's input): ``source`` (``s3://`` URL or key in
    the backup bucket: a backup directory or manifest, a native export, a
    cumulus-api or local file, or, with ``backupId`` or ``map``, the prefix
    holding a backup run), ``table`` (the target) or ``map``
    (``[{"from": "prod-", "to": "restore-"}]``), ``mode`` (``new`` |
    ``overwrite``), ``allowSource``, ``method`` (``write`` | ``import`` |
    ``auto``), and for sources without a schema ``keys`` (names) or
    ``keySchema``. Every target is checked before any is created, so a refusal
    leaves nothing behind. A target restored by ImportTable has its import
    started here (``importArn`` in plan.json) and no parts in parts.json.
    """
    if request.get("mode") == "mirror":
        raise BadInput(MIRROR_IS_CLI_ONLY)
    now, to_time = now or dt.datetime.now(dt.UTC), None
    if request.get("toTime"):  # the newest exact backup before it, and the archive's changes up to it (issue 14)
        request, to_time = exact.resolve_to_time(s3, streams, _url(request["source"], settings.bucket), request)
    selected = _selected(ddb, s3, settings, request, run_id, to_time) if request.get("select") else None
    prepared_targets, backup_run, notes = prepare_targets(
        ddb, s3, request, bucket=settings.bucket, run_id=run_id, write_percent=settings.write_percent
    )
    if selected is not None:  # the selected items stand in for the source's parts (issue 28)
        prepared_targets = [(selected[0], t, {**info, "select": selected[1]}) for _, t, info in prepared_targets]
    prefix = run_prefix(settings, run_id)
    imports = start_planned(ddb, prepared_targets, run_id)
    tables, work = _work(settings, prepared_targets, run_id, imports, to_time)
    work_key = prefix + "parts.json"
    put_json(s3, settings.bucket, work_key, work)
    mode = request.get("mode") or "new"
    plan = {"runId": run_id, "startedAt": now.isoformat(), "request": request, "backupRun": backup_run}
    put_json(s3, settings.bucket, prefix + "plan.json", {**plan, "notes": notes, "mode": mode, "tables": tables})
    return {
        "runId": run_id,
        "bucket": settings.bucket,
        "runPrefix": prefix,
        "workKey": work_key,
        "parts": len(work),
        "maxConcurrency": settings.max_concurrency,
        "imports": len(imports),
        "importPoll": settings.import_poll,
        "tables": [
            {k: t[k] for k in ("source", "format", "target", "created", "expectedItems", "method")} for t in tables
        ],
        "backupRun": backup_run,
        "warnings": notes + [w for t in tables for w in t["warnings"]],
    }


def _selected(
    ddb: Any, s3: Any, settings: RestoreSettings, request: dict[str, Any], run_id: str, to_time: dict[str, Any] | None
) -> tuple[Source, dict[str, Any]]:
    """The request's one source narrowed to its selected items, written to ``selected/`` under the run (checked:
    nothing is created or marked before), and the selection as plan.json records it for finalize. Refused,
    naming the selector, when one matches neither an item nor a change to apply after the parts."""
    select = selectors.from_request(request["select"], s3)
    assert select is not None
    checked, _, _ = prepare_targets(ddb, s3, request, bucket=settings.bucket, run_id=run_id, check_only=True)
    ((src, target, info),) = checked
    select.bind(info["keySchema"], target)
    select.also = narrow.changes_after_parts(s3, src, to_time)
    where = f"{run_prefix(settings, run_id)}selected/{target}"
    narrowed = narrow.narrow_to_s3(src, select, s3, settings.bucket, f"{where}.json.gz")
    copy = None
    if select.file_text is not None:  # finalize reads the keys as the plan did (and may not read the original)
        s3.put_object(Bucket=settings.bucket, Key=f"{where}.keys.jsonl", Body=select.file_text.encode("utf-8"))
        copy = f"s3://{settings.bucket}/{where}.keys.jsonl"
    return narrowed, selectors.plan_note(select, target, copy)


def _work(
    settings: RestoreSettings,
    prepared_targets: list[tuple[Source, str, dict[str, Any]]],
    run_id: str,
    imports: dict[str, str],
    to_time: dict[str, Any] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """plan.json's tables and parts.json's parts; a table being imported (``imports``) has its ImportArn, no parts."""
    prefix = run_prefix(settings, run_id)
    tables: list[dict[str, Any]] = []
    work: list[dict[str, Any]] = []
    for index, (src, target, prepared) in enumerate(prepared_targets):
        tables.append(_plan_entry(index, src, target, prepared, exact.note(src.location, src.consistent_at, to_time)))
        if target in imports:  # ImportTable reads the parts itself: none for the Map
            tables[-1]["importArn"] = imports[target]
            continue
        base = {"runId": run_id, "bucket": settings.bucket, "runPrefix": prefix, "table": index, "target": target}
        base["writeRate"] = segment_share(prepared["writeRate"] or None, len(src.parts), settings.max_concurrency)
        work.extend({**base, "part": part.to_json(), "deadLetter": src.dead_letter_base} for part in src.parts)
    return tables, work


def for_the_state(run: dict[str, Any], report_key: str | None = None) -> dict[str, Any]:
    """A restore's plan or report as the state machine carries it: counts and keys, no list that grows with tables.

    The lists stay in S3 (the run's ``plan.json``, ``report.json``), so a set of any size fits the 256 KiB state.
    """
    state = {k: v for k, v in run.items() if k not in ("tables", "warnings")}
    state.update(tableCount=len(run.get("tables", [])), warningCount=len(run.get("warnings", [])))
    if report_key:
        state["report"] = report_key
    return state


def plan_restore_event(
    ddb: Any, s3: Any, streams: Any, settings: RestoreSettings, event: PlanRestoreEvent
) -> dict[str, Any]:
    """:func:`plan_restore` of the state machine's validated input; the run id is the execution's name."""
    request = event.request.to_request()
    return plan_restore(ddb, s3, settings, request, run_id=run_id_from(event.execution_name), streams=streams)


def _plan_entry(
    index: int, src: Source, target: str, prepared: dict[str, Any], changes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One table of ``plan.json``: its source, its target as prepared, the parts the backup promises, and for an
    exact backup the changes to apply after them (``exact``)."""
    return {
        "index": index,
        "source": src.location,
        "format": src.format,
        "sourceTable": src.table,
        "backupId": src.backup_id,
        "target": target,
        "created": prepared["created"],
        "settings": prepared["settings"],
        "expectedItems": src.expected_items,
        "parts": [{"id": p.id, "items": p.items} for p in src.parts],
        "warnings": src.warnings + prepared["warnings"],
        "writeRate": prepared.get("writeRate", 0),
        "loadBilling": prepared.get("loadBilling"),
        "capacity": prepared.get("capacity", []),
        "method": prepared.get("method", "write"),
        "reason": prepared.get("reason"),
        **({"exact": changes} if changes else {}),
        **({"select": prepared["select"]} if prepared.get("select") else {}),
    }
