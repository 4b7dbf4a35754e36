"""Every handler's event, fuzzed: the samples parse, malformed events are refused naming the field, nothing else escapes.

The handlers are found as Lambda finds them, from ``functions/*/app.py``: the
model is the one handed to Powertools (``event_parser(model=...)`` or
``parse(..., model=...)``), so a new handler is fuzzed without editing this
file. Each model is checked three ways:

(a) its sample events in ``events/`` parse (the same files ``sam local invoke
    -e`` uses);
(b) mutations of a sample (a field dropped, of the wrong type, out of range,
    not matching its pattern, a bad table name or prefix, a key or prefix that
    climbs out with ``..``, an unknown field) are refused with a
    ``pydantic.ValidationError`` (or our ``BadInput``) whose message names the
    field;
(c) any JSON value at all ends in a ``ValidationError`` or a valid model,
    never another exception.
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import importlib.util
import json
import math
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from aws_lambda_powertools.utilities.parser import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from ddb_backup import events
from ddb_backup.aws.retry import Retry
from ddb_backup.errors import BadInput
from ddb_backup.native import cfn

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
EVENTS = ROOT / "events"

#: Fixed examples (derandomize) so CI sees the same cases every run; few enough to stay fast.
FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FEW = settings(FUZZ, max_examples=25, suppress_health_check=list(HealthCheck))

REFUSED = (ValidationError, BadInput)


# ------------------------------------------------------------------ the handlers and their models, from the code
def _model_of(app: Path) -> type[BaseModel]:
    """The class given as ``model=`` to ``event_parser``/``parse`` in a handler module, resolved through its imports."""
    tree = ast.parse(app.read_text())
    imported: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("event_parser", "parse"):
            found.extend(kw.value for kw in node.keywords if kw.arg == "model")
    assert found, f"{app}: no event_parser(model=...) or parse(model=...): the handler does not validate its event"
    models = set()
    for expr in found:
        if isinstance(expr, ast.Name):
            module, name = imported[expr.id]
            models.add(getattr(importlib.import_module(module), name))
        elif isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
            package, module = imported[expr.value.id]
            models.add(getattr(importlib.import_module(f"{package}.{module}"), expr.attr))
        else:
            raise AssertionError(f"{app}: cannot resolve model {ast.unparse(expr)}")
    assert len(models) == 1, f"{app}: several models {models}"
    (model,) = models
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model


HANDLERS: dict[str, type[BaseModel]] = {app.parent.name: _model_of(app) for app in sorted(FUNCTIONS.glob("*/app.py"))}

#: State machine inputs: the ASL hands them to the plan function as ``request``.
EXECUTION_INPUTS = {"backup_execution.json": "plan_backup", "restore_execution.json": "plan_restore"}
#: CloudFormation's custom resource events: ensure_pitr reads their ResourceProperties with this model.
CFN = "ensure_pitr (custom resource)"
MODELS: dict[str, type[BaseModel]] = {**HANDLERS, CFN: events.PitrResourceProperties}


def _validate(handler: str, event: Any) -> BaseModel:
    """What the handler does with its event before anything else (the custom resource: properties, then request)."""
    if handler == CFN:
        return events.PitrResourceProperties.model_validate(event).request()
    return MODELS[handler].model_validate(event)


def _samples() -> list[tuple[str, str, dict[str, Any]]]:
    """(handler, file name, event as the model sees it) for every file in events/."""
    out = []
    for path in sorted(EVENTS.glob("*.json")):
        doc = json.loads(path.read_text())
        if path.name in EXECUTION_INPUTS:
            out.append((EXECUTION_INPUTS[path.name], path.name, {"executionName": "fuzz", "request": doc}))
        elif cfn.is_custom_resource_event(doc) and path.stem.startswith("ensure_pitr"):  # its properties, below
            out.append((CFN, path.name, doc["ResourceProperties"]))
        else:
            owner = max((h for h in HANDLERS if path.stem == h or path.stem.startswith(h + "_")), key=len, default=None)
            assert owner, f"events/{path.name} belongs to no handler in functions/"
            out.append((owner, path.name, doc))
    return out


SAMPLES = _samples()


def _sample(handler: str, name: str | None = None) -> dict[str, Any]:
    """The handler's sample: ``name``, else its own ``events/<handler>.json``, else its first."""
    mine = [(n, doc) for h, n, doc in SAMPLES if h == handler]
    wanted = name or f"{handler}.json"
    return next((doc for n, doc in mine if n == wanted), mine[0][1])


# ------------------------------------------------------------------ (a) the samples parse
def test_every_handler_has_a_model_and_a_sample_event():
    assert set(HANDLERS) == {p.parent.name for p in FUNCTIONS.glob("*/app.py")}
    assert len(HANDLERS) >= 8
    assert {h for h, _, _ in SAMPLES} == set(MODELS)


@pytest.mark.parametrize(("handler", "name", "event"), SAMPLES, ids=[f"{h}:{n}" for h, n, _ in SAMPLES])
def test_the_sample_events_parse(handler, name, event):
    model = MODELS[handler]
    assert isinstance(parse(event=event, model=model), model)
    # what the model keeps, dumped again, parses again to the same model (the state machine passes results on)
    parsed = model.model_validate(event)
    assert model.model_validate(parsed.model_dump(by_alias=True, exclude_none=True)) == parsed


# ------------------------------------------------------------------ (b) mutations, refused naming the field
TABLE_FIELDS = {"table", "target", "tables", "Tables"}
PREFIX_FIELDS = {"tablePrefix", "cumulusPrefix", "CumulusPrefix", "from", "to"}
KEY_FIELDS = {"backupDir", "runPrefix", "deadLetter", "source", "url"}
PART_KEYS = {"id": "str", "url": "str", "dialect": "str", "items": "int", "sha256": "str", "md5": "str", "bytes": "int"}
REQUIRED_PART_KEYS = {"id", "url", "dialect"}


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) >= 1 else annotation
    return annotation


def _kind(annotation: Any) -> str:
    ann = _strip_optional(annotation)
    origin = typing.get_origin(ann)
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "model"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(ann, "any")


def _submodel(info: FieldInfo | None) -> type[BaseModel] | None:
    if info is None:
        return None
    ann = _strip_optional(info.annotation)
    if typing.get_origin(ann) is list:
        ann = typing.get_args(ann)[0]
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _names(model: type[BaseModel]) -> set[str]:
    """Every key the model reads (aliases, Python names, and the ``target`` alias of a restore request)."""
    return set(_fields(model)) | set(model.model_fields) | {"target"}


class Slot:
    """A place in an event a mutation can change: ``path`` into the document, what the model says of it."""

    def __init__(self, path: tuple[Any, ...], key: str, kind: str, info: FieldInfo | None, *, required: bool):
        self.path, self.key, self.kind, self.info, self.required = path, key, kind, info, required

    def __repr__(self) -> str:
        return f"Slot({'.'.join(map(str, self.path))})"


def _slots(model: type[BaseModel], doc: dict[str, Any], prefix: tuple[Any, ...] = ()) -> list[Slot]:
    """Every field of the model (present in the sample or not), into nested models and the restore part."""
    out = []
    for key, info in _fields(model).items():
        out.append(Slot((*prefix, key), key, _kind(info.annotation), info, required=info.is_required()))
        value = doc.get(key)
        sub = _submodel(info)
        if sub is not None and isinstance(value, dict):
            out.extend(_slots(sub, value, (*prefix, key)))
        elif sub is not None and isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, dict):
                    out.extend(_slots(sub, v, (*prefix, key, i)))
        elif key == "part" and isinstance(value, dict):
            for name, kind in PART_KEYS.items():
                out.append(Slot((*prefix, key, name), name, kind, None, required=name in REQUIRED_PART_KEYS))
    return out


def _get_parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


def _with(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    parent = _get_parent(doc, path)
    if value is _DROP:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return doc


_DROP = object()

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
containers = st.one_of(
    st.lists(json_scalars, max_size=3), st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)
)
not_a_number = st.text(max_size=10).filter(
    lambda s: not re.fullmatch(r"\s*[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?\s*", s)
)


def _wrong_type(kind: str) -> st.SearchStrategy[Any]:
    """Values no lax conversion makes into a ``kind``."""
    if kind in ("str", "bool"):
        return containers
    if kind in ("int", "float"):
        return st.one_of(containers, not_a_number)
    if kind == "list":  # not text: the PITR selections read "a,b" as a list on purpose
        return st.one_of(st.dictionaries(st.text(max_size=5), json_scalars, max_size=3), st.integers(), st.floats())
    if kind in ("dict", "model"):
        return st.one_of(st.lists(json_scalars, max_size=3), st.text(max_size=8), st.integers(), st.booleans())
    return st.nothing()


def _out_of_range(slot: Slot) -> st.SearchStrategy[Any] | None:
    if slot.info is None:
        return st.integers(max_value=-1) if slot.kind == "int" else None
    options = []
    for meta in slot.info.metadata:
        if isinstance(meta, annotated_types.Ge) and slot.kind in ("int", "float"):
            options.append(st.integers(max_value=math.ceil(meta.ge) - 1, min_value=-(2**64)))
        elif isinstance(meta, annotated_types.Le) and slot.kind in ("int", "float"):
            options.append(st.integers(min_value=int(meta.le) + 1, max_value=2**64))
        elif isinstance(meta, annotated_types.MinLen) and meta.min_length > 0 and slot.kind == "str":
            options.append(st.text(alphabet="abc", max_size=meta.min_length - 1))
        elif isinstance(meta, annotated_types.MaxLen) and slot.kind == "list":
            options.append(st.lists(st.just("a"), min_size=meta.max_length + 1, max_size=meta.max_length + 3))
    if slot.kind == "float":
        options.append(st.sampled_from([math.inf, -math.inf, math.nan, -1.0]))
    return st.one_of(options) if options else None


def _pattern(slot: Slot) -> str | None:
    for meta in slot.info.metadata if slot.info else ():
        pattern = getattr(meta, "pattern", None)
        if pattern:
            return str(pattern)
    return None


bad_table_names = st.one_of(
    st.text(alphabet="ab", min_size=1, max_size=2),  # too short (blank ones are dropped, by design)
    st.text(alphabet="ab", min_size=256, max_size=300),  # too long
    st.tuples(st.text(alphabet="ab-", min_size=3, max_size=8), st.sampled_from(" /\\:*?\"'#\n\t\x00é中@%+")).map(
        lambda t: t[0] + t[1] + t[0]
    ),  # a character DynamoDB refuses
    st.text(alphabet="ab-", min_size=3, max_size=8).map(lambda n: n + "\n"),  # which Python's "$" lets through
)
bad_prefixes = st.tuples(st.text(alphabet="ab-", max_size=6), st.sampled_from(" /\\:*?\"'\n\x00é@%")).map(
    lambda t: t[0] + t[1]
)
#: Ways out of a prefix: ``..`` segments, absolute, empty or dot segments, backslashes, control characters.
climbs = st.sampled_from(["../", "../../etc/", "a/../../", "/abs/", "a//b/", "a/./b/", "a\\..\\b/", "a/\x00/", "..\\"])


def _climbing(key: str, sample: Any) -> st.SearchStrategy[str]:
    base = sample if isinstance(sample, str) else "s3://bucket/backups/T/ID/"
    if base.startswith("s3://"):
        bucket, _, rest = base[5:].partition("/")
        return st.tuples(climbs, st.integers(0, 1)).map(
            lambda t: f"s3://{bucket}/{t[0]}{rest}" if t[1] else f"s3://{bucket}/{rest}{t[0]}"
        )
    return st.tuples(climbs, st.integers(0, 1)).map(lambda t: t[0] + base if t[1] else base + t[0])


def _mutations(slot: Slot, sample: dict[str, Any]) -> st.SearchStrategy[tuple[str, Any, bool]]:
    """(what, new value, must the model refuse it) for one slot."""
    current = _get_parent(sample, slot.path).get(slot.path[-1], _DROP) if _reachable(sample, slot.path) else _DROP
    options = [st.tuples(st.just("wrong type"), _wrong_type(slot.kind), st.just(True))]
    if current is not _DROP:
        options.append(st.just(("drop", _DROP, slot.required)))
    if (rng := _out_of_range(slot)) is not None:
        options.append(st.tuples(st.just("out of range"), rng, st.just(True)))
    if (pattern := _pattern(slot)) is not None:
        options.append(
            st.tuples(
                st.just("pattern"), st.text(max_size=8).filter(lambda s: not re.fullmatch(pattern, s)), st.just(True)
            )
        )
    if slot.key in TABLE_FIELDS and slot.kind in ("str", "list"):
        names = bad_table_names.map(lambda n: [n]) if slot.kind == "list" else bad_table_names
        options.append(st.tuples(st.just("table name"), names, st.just(True)))
    if slot.key in PREFIX_FIELDS:
        options.append(st.tuples(st.just("prefix"), bad_prefixes, st.just(True)))
    if slot.key in KEY_FIELDS:
        options.append(st.tuples(st.just("climbs out"), _climbing(slot.key, current), st.just(True)))
    return st.one_of(options)


def _reachable(doc: Any, path: tuple[Any, ...]) -> bool:
    try:
        _get_parent(doc, path)
    except (KeyError, IndexError, TypeError):
        return False
    return True


def _assert_refused_naming(handler: str, event: Any, key: str, what: str) -> None:
    with pytest.raises(REFUSED) as info:
        _validate(handler, event)
    message = str(info.value)
    assert key.lower() in message.lower(), f"{what} of {key!r}: the message does not name it:\n{message}"


#: (sample, slot) for every sample of every handler: nested objects are reached where some sample has them.
SLOTS: dict[str, list[tuple[dict[str, Any], Slot]]] = {
    h: [(doc, s) for h2, _, doc in SAMPLES if h2 == h for s in _slots(MODELS[h], doc) if _reachable(doc, s.path)]
    for h in MODELS
}


@pytest.mark.parametrize("handler", sorted(MODELS))
@FUZZ
@given(data=st.data())
def test_a_mutated_event_is_refused_naming_the_field(handler, data):
    sample, slot = data.draw(st.sampled_from(SLOTS[handler]), "slot")
    what, value, must_refuse = data.draw(_mutations(slot, sample), "mutation")
    event = _with(sample, slot.path, value)
    if must_refuse:
        _assert_refused_naming(handler, event, slot.key, what)
    else:
        try:
            _validate(handler, event)
        except REFUSED as exc:
            assert slot.key.lower() in str(exc).lower(), f"{what} of {slot.key!r}: not named:\n{exc}"


@pytest.mark.parametrize("handler", sorted(MODELS))
@FEW
@given(data=st.data())
def test_an_unknown_field_is_refused_naming_it(handler, data):
    model = MODELS[handler]
    # where: the event itself, or any nested object the model reads (a request, a name swap, the restore part)
    places: list[tuple[dict[str, Any], tuple[Any, ...], set[str]]] = [(_sample(handler), (), _names(model))]
    for doc, s in SLOTS[handler]:
        sub = _submodel(s.info)
        known = _names(sub) if sub is not None else set(PART_KEYS) if s.key == "part" and s.info else None
        if known is not None and isinstance(_get_parent(doc, s.path).get(s.path[-1]), dict):
            places.append((doc, s.path, known))
    sample, path, known = data.draw(st.sampled_from(places), "where")
    key = data.draw(
        st.text(alphabet="abcdefghijkXYZ_-0123456789", min_size=1, max_size=12).filter(lambda k: k not in known)
    )
    event = _with(sample, (*path, key), data.draw(json_values, "value"))
    _assert_refused_naming(handler, event, key, "unknown field")


# A few cases spelled out, so that each kind of refusal is certainly exercised whatever the draws.
@pytest.mark.parametrize(
    ("handler", "path", "value", "named"),
    [
        ("scan_segment", ("backupDir",), "../../etc/", "backupDir"),
        ("scan_segment", ("backupDir",), "/backups/T/ID/", "backupDir"),
        ("scan_segment", ("segment",), 1, "segment"),  # not below totalSegments 1
        ("scan_segment", ("totalSegments",), 1_000_001, "totalSegments"),
        ("finalize_backup", ("backupDir",), "backups/T/ID", "backupDir"),  # no trailing slash: a sibling's prefix
        ("finalize_backup", ("backupDir",), "backups/../ID/", "backupDir"),
        ("finalize_backup", ("table",), "my table", "table"),
        ("plan_backup", ("request", "tablePrefix"), "my stack-", "tablePrefix"),
        ("plan_backup", ("request", "tables"), ["ok-table", "x"], "tables"),
        ("plan_backup", ("request", "segments"), 0, "segments"),
        ("plan_backup", ("request", "backupId"), "../20261122T030000Z-1a2b3c4d", "backupId"),
        ("plan_backup", ("request", "backupId"), "20261122T030000Z-1a2b3c4d\n", "backupId"),
        ("plan_backup", ("request", "tables"), ["mystack-GranulesTable\n"], "tables"),
        ("restore_part", ("part", "url"), "s3://bucket\n/data/x.json.gz", "url"),
        ("plan_restore", ("request", "source"), "backups/../../other/", "source"),
        ("plan_restore", ("request", "source"), "s3://bucket/a/../b/", "source"),
        ("plan_restore", ("request", "mode"), "upsert", "mode"),
        ("plan_restore", ("request", "keys"), ["a", "b", "c"], "keys"),
        ("plan_restore", ("request", "map"), [{"from": "prod-", "to": "bad name/"}], "to"),
        ("plan_restore", ("request", "map"), [{"from": "../", "to": "x-"}], "from"),
        ("restore_part", ("runPrefix",), "backups/_restores/../../x/", "runPrefix"),
        ("restore_part", ("runId",), "../x", "runId"),
        ("restore_part", ("bucket",), "Not A Bucket", "bucket"),
        ("restore_part", ("deadLetter",), "/tmp/", "deadLetter"),
        ("restore_part", ("deadLetter",), "s3://b/backups/../../", "deadLetter"),
        ("restore_part", ("part", "url"), "/etc/passwd", "url"),
        ("restore_part", ("part", "url"), "s3://b/backups/T/ID/../../data/x.json.gz", "url"),
        ("restore_part", ("part", "dialect"), "xml", "dialect"),
        ("restore_part", ("part", "items"), -1, "items"),
        ("restore_part", ("part", "items"), "40", "items"),
        ("restore_part", ("part", "sha256"), "not hex", "sha256"),
        ("restore_part", ("part", "bytes"), [1], "bytes"),
        ("restore_part", ("seconds",), math.inf, "seconds"),
        ("restore_part", ("target",), "x", "target"),
        ("finalize_restore", ("runPrefix",), "/_restores/x/", "runPrefix"),
        ("ensure_pitr", ("tables",), [5], "tables"),
        ("ensure_pitr", ("cumulusTables",), [None], "cumulusTables"),
        ("ensure_pitr", ("cumulusPrefix",), "my stack-", "cumulusPrefix"),
        ("ensure_pitr", ("recoveryPeriodInDays",), 36, "recoveryPeriodInDays"),
        ("on_demand_backups", ("retentionDays",), 10**6, "retentionDays"),  # past year 1: OverflowError when pruning
        ("on_demand_backups", ("minIntervalMinutes",), 10**12, "minIntervalMinutes"),
        ("on_demand_backups", ("retentionDays",), 0, "retentionDays"),
    ],
)
def test_each_kind_of_bad_field_is_refused_naming_it(handler, path, value, named):
    # the sample that already holds this kind of field (a list of tables, name swaps), so nothing else is refused
    sample = _sample(handler, {"map": "restore_execution.json", "tables": "backup_execution.json"}.get(path[-1]))
    _assert_refused_naming(handler, _with(sample, path, value), named, f"{value!r}")


# ------------------------------------------------------------------ (c) anything at all: a clean refusal or a model
def _known_keys(model: type[BaseModel]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(sorted(_fields(model))), st.text(max_size=10))


@pytest.mark.parametrize("handler", sorted(MODELS))
@FUZZ
@given(data=st.data())
def test_no_model_lets_another_exception_out_of_arbitrary_json(handler, data):
    model, sample = MODELS[handler], _sample(handler)
    event = data.draw(
        st.one_of(
            st.dictionaries(_known_keys(model), json_values, max_size=8),
            # near misses: the sample with some fields replaced by anything, nested objects included
            st.dictionaries(_known_keys(model), json_values, max_size=4).map(lambda d: {**sample, **d}),
            st.sampled_from(SLOTS[handler]).flatmap(
                lambda ds: json_values.map(lambda v, ds=ds: _with(ds[0], ds[1].path, v))
            ),
            json_values,
        ),
        "event",
    )
    try:
        parsed = parse(event=event, model=model)
    except ValidationError as exc:
        assert exc.errors(), "a refusal that names nothing"
        return
    assert isinstance(parsed, model)


@FEW
@given(
    props=st.one_of(st.dictionaries(_known_keys(events.PitrResourceProperties), json_values, max_size=5), json_values)
)
def test_the_custom_resource_answers_failed_naming_the_field_and_never_raises(props):
    event = {**json.loads((EVENTS / "ensure_pitr_cfn_create.json").read_text()), "ResourceProperties": props}

    class NoDynamoDB:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"{name} called with properties the model refused")

    try:
        events.PitrResourceProperties.model_validate(props or {}).request()
    except ValidationError as exc:
        outcome = cfn.custom_resource_outcome(NoDynamoDB(), event, Retry.within(0))
        assert outcome.status == cfn.FAILURE
        # Each refused field is named, JSON-escaped (a newline in a name stays visible on one line).
        for error in exc.errors():
            assert cfn.field_text(error["loc"]) in outcome.reason
        assert "AssertionError" not in outcome.reason


# ------------------------------------------------------------------ through the real handlers
class _Context:
    function_name = "fuzz"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fuzz"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/fuzz"
    log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


@pytest.fixture
def handler_module() -> Iterator[Any]:
    loaded: list[str] = []

    def load(name: str) -> types.ModuleType:
        spec = importlib.util.spec_from_file_location(f"fuzz_handler_{name}", FUNCTIONS / name / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        loaded.append(spec.name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


#: Handlers CloudFormation alone invokes: a refusal must be answered (FAILED), not raised (CloudFormation would wait).
ANSWERED = {"archive_streams"}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
@pytest.mark.parametrize("handler", sorted(set(HANDLERS) - ANSWERED))
def test_every_handler_refuses_a_malformed_event_at_the_door(handler, handler_module, aws, monkeypatch):
    """The decorator is wired: the handler raises the refusal before it calls anything."""
    monkeypatch.setenv("BACKUP_BUCKET", "no-such-bucket")
    monkeypatch.setenv("STACK_NAME", "fuzz")
    module = handler_module(handler)
    sample = _sample(handler)
    required = next((k for k, info in _fields(HANDLERS[handler]).items() if info.is_required()), None)
    for event, named in [({**sample, "unexpectedField": 1}, "unexpectedField")] + (
        [({k: v for k, v in sample.items() if k != required}, required)] if required else []
    ):
        with pytest.raises(REFUSED) as info:
            module.lambda_handler(event, _Context())
        assert named in str(info.value)


@pytest.mark.parametrize("handler", sorted(ANSWERED))
def test_a_custom_resource_answers_a_malformed_request_failed_naming_the_field(
    handler, handler_module, aws, monkeypatch
):
    """Before it calls anything else, the handler answers CloudFormation FAILED, the field named in the reason."""
    module = handler_module(handler)
    sample = _sample(handler)
    answers: list[tuple[str, str]] = []
    monkeypatch.setattr(cfn, "send_cfn_response", lambda event, status, reason, *rest: answers.append((status, reason)))
    monkeypatch.setattr(module, "client", lambda name: pytest.fail(f"called {name} with a malformed request"))
    properties = {k: v for k, v in sample["ResourceProperties"].items() if k != "Tables"}
    for event, named in [
        ({**sample, "unexpectedField": 1}, "unexpectedField"),
        ({k: v for k, v in sample.items() if k != "StackId"}, "StackId"),
        ({**sample, "ResourceProperties": properties}, "Tables"),
    ]:
        answers.clear()
        result = module.lambda_handler(event, _Context())
        assert result["Status"] == answers[0][0] == cfn.FAILURE
        assert named in answers[0][1]


def test_the_longest_retention_and_interval_allowed_still_name_a_date():
    """What bounds retentionDays and minIntervalMinutes: pruning computes now minus them."""

    fields = events.OnDemandBackupEvent.model_fields
    days = next(m.le for m in fields["retention_days"].metadata if isinstance(m, annotated_types.Le))
    minutes = next(m.le for m in fields["min_interval_minutes"].metadata if isinstance(m, annotated_types.Le))
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(days=days) < now - dt.timedelta(minutes=minutes) < now
