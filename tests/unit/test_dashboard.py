"""The stack's CloudWatch dashboard shows only metrics that exist: the functions' own (read from their code)
and the ones AWS publishes for the resources it names."""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from typing import Any

import pytest

from devkit.cfn import CfnLoader, Resolver
from devkit.emulator import LOCAL_PARAMETERS, ROOT

TEMPLATE_TEXT = (ROOT / "template.yaml").read_text()

#: What each AWS namespace the dashboard reads publishes: metric names, the dimension naming the resource,
#: and the template type of that resource (None: not a resource of the stack, e.g. a table it backs up).
PUBLISHED: dict[str, tuple[set[str], str, str | None]] = {
    "AWS/Lambda": (
        {"Invocations", "Errors", "Throttles", "Duration", "IteratorAge"},
        "FunctionName",
        "AWS::Serverless::Function",
    ),
    "AWS/States": (
        {
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsTimedOut",
            "ExecutionsAborted",
            "ExecutionTime",
        },
        "StateMachineArn",
        "AWS::Serverless::StateMachine",
    ),
    "AWS/DynamoDB": ({"ReadThrottleEvents", "WriteThrottleEvents"}, "TableName", None),
}
SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}([^']*)',\s*'(\w+)'")


# ------------------------------------------------------------------ what the code emits
def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Calls of ``name`` or ``<anything>.name``."""
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and (
            (isinstance(n.func, ast.Attribute) and n.func.attr == name)
            or (isinstance(n.func, ast.Name) and n.func.id == name)
        )
    ]


def _loop_values(func: ast.AST, var: str) -> set[str]:
    """The strings ``var`` takes in ``for ... in (literal tuples)`` loops of ``func`` (``for key, name in ((..), ..)``)."""
    out: set[str] = set()
    for loop in (n for n in ast.walk(func) if isinstance(n, ast.For) and isinstance(n.iter, ast.Tuple | ast.List)):
        targets = loop.target.elts if isinstance(loop.target, ast.Tuple) else [loop.target]
        for i, target in enumerate(targets):
            if isinstance(target, ast.Name) and target.id == var:
                for elt in loop.iter.elts:  # type: ignore[attr-defined]
                    value = elt.elts[i] if isinstance(elt, ast.Tuple) else elt
                    out.add(ast.literal_eval(value))
    return out


def _metric_names(func: ast.AST, call: ast.Call) -> set[str]:
    arg = next((k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None)
    if isinstance(arg, ast.Constant):
        return {arg.value}
    if isinstance(arg, ast.Name) and (values := _loop_values(func, arg.id)):
        return values
    raise AssertionError(f"add_metric(name={ast.unparse(arg) if arg else None}): the test cannot read this name")


@cache
def _observability() -> tuple[str, str, set[str]]:
    """The core's namespace and service (its shared ``Metrics``), and the dimensions ``table_metrics`` adds."""
    tree = ast.parse((ROOT / "layers/core/ddb_backup/observability.py").read_text())
    consts = {
        n.targets[0].id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)
    }
    [made] = _calls(tree, "Metrics")
    kw = {k.arg: k.value for k in made.keywords}
    namespace = ast.literal_eval(kw["namespace"])
    service = consts[kw["service"].id] if isinstance(kw["service"], ast.Name) else ast.literal_eval(kw["service"])
    [table_metrics] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "table_metrics"]
    dims = {
        ast.literal_eval(next(k.value for k in c.keywords if k.arg == "name"))
        for c in _calls(table_metrics, "add_dimension")
    }
    return namespace, service, dims


@cache
def emitted() -> dict[tuple[str, str], frozenset[str]]:
    """(namespace, metric name) -> the dimension names it carries, for every metric the functions publish."""
    namespace, _, table_dims = _observability()
    out: dict[tuple[str, str], frozenset[str]] = {}
    for path in sorted([*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers").rglob("*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        shared_dims = {"service"} | {  # the shared Metrics object: its service, and any dimension a module adds
            ast.literal_eval(c.args[0] if c.args else next(k.value for k in c.keywords if k.arg == "name"))
            for c in _calls(tree, "add_dimension")
            if isinstance(c.func, ast.Attribute) and isinstance(c.func.value, ast.Name) and c.func.value.id == "metrics"
        }
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for call in _calls(func, "add_metric"):
                for name in _metric_names(func, call):
                    out[(namespace, name)] = frozenset(shared_dims)
            for call in _calls(func, "table_metrics"):
                if len(call.args) == 2 and isinstance(call.args[1], ast.Dict):
                    for key in call.args[1].keys:
                        out[(namespace, ast.literal_eval(key))] = frozenset(table_dims)  # type: ignore[arg-type]
    return out


def test_the_code_is_read_for_what_it_emits():
    """The reader finds every kind of call: a literal name, a name from a loop, a table_metrics dict."""
    metrics = emitted()
    assert metrics[("DdbBackup", "MaxNewestBackupAgeHours")] == {"service"}
    assert metrics[("DdbBackup", "BackupsCreated")] == {"service"}  # for key, name in ((..., "BackupsCreated"), ...)
    assert metrics[("DdbBackup", "BackupItems")] == {"service", "table"}
    assert len(metrics) >= 15


def test_the_template_names_the_namespace_and_service_the_code_uses():
    env = CfnLoader.load(TEMPLATE_TEXT)["Globals"]["Function"]["Environment"]["Variables"]
    namespace, service, _ = _observability()
    assert (env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]) == (namespace, service)


# ------------------------------------------------------------------ what the dashboard shows
def dashboard(
    text: str = TEMPLATE_TEXT, *, archives: bool = True, **parameters: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The template's dashboard body as deployed (every resource's Ref as ``ref:<LogicalId>``), and the template."""
    template = CfnLoader.load(text)
    resolver = Resolver(template, {**LOCAL_PARAMETERS, **parameters}, "ddb-backup", "us-east-1")
    resolver.refs = {name: f"ref:{name}" for name in template["Resources"]}
    resolver.conditions["ArchivesChanges"] = archives
    [body] = [
        r["Properties"]["DashboardBody"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    return json.loads(resolver(body)), {**template, "_conditions": resolver.conditions}


def _rows(body: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    return [(w["properties"]["title"], row) for w in body["widgets"] for row in w["properties"].get("metrics", [])]


def _stream_consumers(resources: dict[str, Any]) -> set[str]:
    """Functions a stream is mapped to: by an event of their own, or by a custom resource's FunctionArn."""
    out = {
        name
        for name, r in resources.items()
        for event in r.get("Properties", {}).get("Events", {}).values()
        if event.get("Type") in ("DynamoDB", "Kinesis")
    }
    for r in resources.values():
        arn = r.get("Properties", {}).get("FunctionArn", {})
        if r["Type"].startswith("Custom::") and isinstance(arn, dict) and "Fn::GetAtt" in arn:
            out.add(arn["Fn::GetAtt"][0])
    return out


def problems(body: dict[str, Any], template: dict[str, Any]) -> list[str]:  # noqa: C901 (one check per widget kind)
    """Every dashboard metric that the functions do not emit, or AWS does not publish for the resource named."""
    metrics, (_, service, _) = emitted(), _observability()
    resources, conditions = template["Resources"], template["_conditions"]
    found: list[str] = []

    def check(title: str, namespace: str, name: str, dims: dict[str, str | None]) -> None:
        what = f"{title!r}: {namespace} {name} {sorted(dims)}"
        if namespace in PUBLISHED:
            names, dim, kind = PUBLISHED[namespace]
            value = dims.get(dim)
            if name not in names or set(dims) != {dim}:
                found.append(f"{what}: {namespace} publishes no such metric (dimension {dim})")
            elif kind is not None:
                logical = (value or "").removeprefix("ref:")
                resource = resources.get(logical, {})
                if resource.get("Type") != kind:
                    found.append(f"{what}: {value} is not a {kind} of the stack")
                elif "Condition" in resource and not conditions[resource["Condition"]]:
                    found.append(f"{what}: {logical} exists only when {resource['Condition']} holds")
                elif name == "IteratorAge" and logical not in _stream_consumers(resources):
                    found.append(f"{what}: Lambda publishes IteratorAge only for a function a stream is mapped to")
            return
        if (namespace, name) not in metrics:
            found.append(f"{what}: no function emits it")
        elif set(dims) != metrics[(namespace, name)]:
            found.append(f"{what}: emitted with the dimensions {sorted(metrics[(namespace, name)])}")
        elif dims.get("service") not in (None, service):
            found.append(f"{what}: the service dimension is {service!r}")

    for title, row in _rows(body):
        if isinstance(row[0], dict):  # an expression: a SEARCH names metrics; math uses the widget's own ids
            expression = row[0]["expression"]
            for schema, terms, _ in SEARCH.findall(expression):
                namespace, *dim_names = [p.strip() for p in schema.split(",")]
                for name in re.findall(r'MetricName="([^"]+)"', terms) or [""]:
                    check(title, namespace, name, dict.fromkeys(dim_names))
            continue
        namespace, name, *rest = row
        pairs = [x for x in rest if not isinstance(x, dict)]
        check(title, namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))
    return found


@pytest.mark.parametrize("archives", [True, False], ids=["archives changes", "no change archive"])
def test_every_dashboard_metric_is_one_that_is_published(archives):
    body, template = dashboard(archives=archives)
    assert problems(body, template) == []


def test_the_dashboard_shows_what_the_operator_needs():
    body, _ = dashboard(MaxBackupAgeHours="37")
    shown = json.dumps(body)
    for name in ("MaxNewestBackupAgeHours", "BackupItems", "BackupBytes", "ExecutionTime", "ReadThrottleEvents"):
        assert name in shown
    [age] = [w for w in body["widgets"] if "MaxNewestBackupAgeHours" in json.dumps(w)]
    assert age["properties"]["annotations"]["horizontal"][0]["value"] == 37  # the MaxBackupAgeHours parameter
    restores = [
        row
        for _, row in _rows(body)
        if row[:2] in (["AWS/States", "ExecutionsSucceeded"], ["AWS/States", "ExecutionsFailed"])
    ]
    assert {row[3] for row in restores} == {"ref:RestoreStateMachine"} and len(restores) == 2


def test_the_change_archive_widgets_only_when_changes_are_archived():
    with_archive, _ = dashboard(archives=True)
    without, _ = dashboard(archives=False)
    assert "ref:ArchiveChangesFunction" in json.dumps(with_archive) and "ChangeArchiveGaps" in json.dumps(with_archive)
    assert "ArchiveChanges" not in json.dumps(without) and "ChangeArchiveGaps" not in json.dumps(without)


def test_the_search_terms_are_the_table_patterns_before_their_wildcard():
    body, _ = dashboard(TableNamePattern="mystack-*", RestoreTableNamePattern="*")
    searches = [row[0]["expression"] for _, row in _rows(body) if isinstance(row[0], dict)]
    assert any('"ReadThrottleEvents" mystack-\'' in s for s in searches)
    assert any('"WriteThrottleEvents" \'' in s for s in searches)  # "*": every table


@pytest.mark.parametrize(
    "right, wrong",
    [
        ('"MaxNewestBackupAgeHours", "service"', '"MaxNewestBackupAgeHour", "service"'),
        ('MetricName=\\"BackupItems\\"', 'MetricName=\\"BackupItem\\"'),
        ('{DdbBackup,service,table} MetricName=\\"BackupBytes', '{DdbBackup,table} MetricName=\\"BackupBytes'),
        ('"ChangeArchiveGaps", "service"', '"ChangeArchiveGap", "service"'),
        ('"ExecutionsFailed", "StateMachineArn"', '"ExecutionFailed", "StateMachineArn"'),
        (
            '"IteratorAge", "FunctionName", "${ArchiveChangesFunction}"',
            '"IteratorAge", "FunctionName", "${ChangeArchiveStreamsFunction}"',
        ),
        (
            '"ExecutionTime", "StateMachineArn", "${BackupStateMachine}"',
            '"ExecutionTime", "StateMachineArn", "${BackupBucket}"',
        ),
        (
            '"DdbBackup", "ChangeArchiveGaps", "service", "ddb-backup"',
            '"DdbBackup", "ChangeArchiveGaps", "service", "ddb-backups"',
        ),
    ],
    ids=[
        "misspelt",
        "misspelt in a search",
        "dimension left out",
        "misspelt gaps",
        "AWS metric misspelt",
        "another function",
        "not a state machine",
        "other service",
    ],
)
def test_a_wrong_metric_is_caught(right, wrong):
    assert TEMPLATE_TEXT.count(right) == 1, right
    text = TEMPLATE_TEXT.replace(right, wrong)
    body, template = dashboard(text, archives=True)
    assert problems(body, template), f"{wrong} was not caught"


def test_a_widget_naming_a_conditional_resource_outside_its_condition_is_caught():
    text = TEMPLATE_TEXT.replace(
        '"Throttles", "FunctionName", "${ScanSegmentFunction}"',
        '"Throttles", "FunctionName", "${ArchiveChangesFunction}"',
    )
    body, template = dashboard(text, archives=False)
    assert any("only when ArchivesChanges holds" in p for p in problems(body, template))


def test_the_stack_points_at_its_dashboard():
    outputs = CfnLoader.load(TEMPLATE_TEXT)["Outputs"]
    assert "dashboards:name=${AWS::StackName}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]
