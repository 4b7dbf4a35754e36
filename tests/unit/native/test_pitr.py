"""PITR enforcement, restores and the custom resource, on moto, with new-table errors injected.

moto enables PITR at once; the errors DynamoDB gives for a table created a
moment ago (and for a busy account) are injected with botocore event hooks, in
the exact shape the service returns them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from pydantic import ValidationError

from ddb_backup import errors, events, names
from ddb_backup.aws.retry import Retry
from ddb_backup.aws.tables import describe
from ddb_backup.errors import BadInput, DdbBackupError, TargetRefused
from ddb_backup.native import cfn, pitr, restores
from ddb_backup_cli import aws_backups as cli_aws_backups
from devkit import sample
from tests.conftest import canonical, table_items

EVENTS = Path(__file__).resolve().parents[3] / "events"
UNAVAILABLE = "ContinuousBackupsUnavailableException"


# ------------------------------------------------------------------ helpers
class Clock:
    """A fake monotonic clock whose sleep advances it: retry tests take no time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def retry(seconds: float = 600, clock: Clock | None = None) -> Retry:
    clock = clock or Clock()
    return Retry.within(seconds, clock=clock, sleep=clock.sleep)


def count_calls(ddb: Any) -> Counter[str]:
    """Counts the DynamoDB operations made through ``ddb`` from now on."""
    calls: Counter[str] = Counter()

    def seen(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    ddb.meta.events.register("provide-client-params.dynamodb", seen)
    return calls


def inject(ddb: Any, operation: str, codes: list[str], table: str | None = None) -> list[str]:
    """Answer the first ``len(codes)`` calls of ``operation`` (on ``table``) with these error codes.

    Returns the list, which empties as the errors are served.
    """
    pending = list(codes)

    def fail(params: dict[str, Any], **_: Any) -> Any:
        body = json.loads(params.get("body") or b"{}")
        if not pending or (table and body.get("TableName") != table):
            return None
        code = pending.pop(0)
        message = {
            UNAVAILABLE: f"Backups are being enabled for the table: {body.get('TableName')}. Please retry later",
            "ResourceInUseException": "Attempt to change a resource which is still in use",
            "LimitExceededException": "Too many concurrent backup operations",
        }.get(code, code)
        response = AWSResponse("https://dynamodb.local", 400, {}, None)
        return response, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    ddb.meta.events.register(f"before-call.dynamodb.{operation}", fail)
    return pending


def creating_for(ddb: Any, table: str, times: int, status: str = "CREATING") -> None:
    """DescribeTable says CREATING (or ``status``) for the first ``times`` calls on ``table``."""
    left = [times]

    def patch(parsed: dict[str, Any], **_: Any) -> None:
        if left[0] and parsed.get("Table", {}).get("TableName") == table:
            left[0] -= 1
            parsed["Table"]["TableStatus"] = status

    ddb.meta.events.register("after-call.dynamodb.DescribeTable", patch)


def remember_recovery_period(ddb: Any) -> None:
    """moto accepts RecoveryPeriodInDays but does not keep it; make DescribeContinuousBackups report it."""
    periods: dict[str, int] = {}

    def keep(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["table"] = params["TableName"]
        spec = params.get("PointInTimeRecoverySpecification", {})
        if spec.get("PointInTimeRecoveryEnabled") and "RecoveryPeriodInDays" in spec:
            periods[params["TableName"]] = spec["RecoveryPeriodInDays"]

    def report(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        desc = parsed.get("ContinuousBackupsDescription", {}).get("PointInTimeRecoveryDescription", {})
        if desc.get("PointInTimeRecoveryStatus") == "ENABLED" and context.get("table") in periods:
            desc["RecoveryPeriodInDays"] = periods[context["table"]]

    for op in ("UpdateContinuousBackups", "DescribeContinuousBackups"):
        ddb.meta.events.register(f"provide-client-params.dynamodb.{op}", keep)
        ddb.meta.events.register(f"after-call.dynamodb.{op}", report)


def make_table(ddb: Any, name: str = "mystack-GranulesTable") -> str:
    sample.create_table(ddb, name, sample.CUMULUS_TABLES["Granules"])
    return name


def pitr_of(ddb: Any, table: str) -> dict[str, Any]:
    desc: dict[str, Any] = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    return desc["PointInTimeRecoveryDescription"]


# ------------------------------------------------------------------ selection
def test_cumulus_prefix_names_the_eight_metadata_tables():
    sel = events.TableSelection.model_validate({"cumulusPrefix": "mystack-", "tables": [""]})
    assert sel.names() == [f"mystack-{s}Table" for s in events.DEFAULT_CUMULUS_TABLES]
    assert len(sel.names()) == 8
    sel = events.TableSelection.model_validate({"cumulusPrefix": "x-", "cumulusTables": "Granules, Files"})
    assert sel.names() == ["x-GranulesTable", "x-FilesTable"]
    assert events.TableSelection.model_validate({"tables": ["a-b", "a-b", "c-d"]}).names() == ["a-b", "c-d"]
    assert events.TableSelection().names() == []


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"tables": ["mystack-T1"], "cumulusPrefix": "x-"}, "give either 'tables' or 'cumulusPrefix', not both"),
        ({"tables": ["no spaces allowed"]}, "'no spaces allowed' is not a valid DynamoDB table name"),
        ({"cumulusPrefix": "x-", "cumulusTables": ["Gran-ules"]}, "Cumulus table 'Gran-ules' is not a short name"),
        ({"cumulusPrefix": "x-", "recoveryPeriodInDays": 36}, r"recoveryPeriodInDays\n.*less than or equal to 35"),
        ({"cumulusPrefix": "x-", "recoveryPeriodInDays": 0}, r"recoveryPeriodInDays\n.*greater than or equal to 1"),
        ({"cumulusPrefix": "x-", "surprise": 1}, r"surprise\n.*Extra inputs are not permitted"),
    ],
)
def test_bad_events_are_refused_at_the_door(doc, why):
    with pytest.raises(ValidationError, match=why):
        events.EnsurePitrEvent.model_validate(doc)


def test_sample_events_parse():
    event = events.EnsurePitrEvent.model_validate(json.loads((EVENTS / "ensure_pitr.json").read_text()))
    assert event.recovery_period_in_days == 35
    assert len(event.names()) == 8
    create = json.loads((EVENTS / "ensure_pitr_cfn_create.json").read_text())
    assert cfn.is_custom_resource_event(create)
    assert not cfn.is_custom_resource_event(json.loads((EVENTS / "ensure_pitr.json").read_text()))
    props = events.PitrResourceProperties.model_validate(create["ResourceProperties"]).request()
    assert props.recovery_period_in_days == 35  # sent as the string "35"


# ------------------------------------------------------------------ ensure
def test_enables_then_reports_already_on(ddb):
    table = make_table(ddb)
    (first,) = pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry())
    assert first.status == pitr.ENABLED
    assert pitr_of(ddb, table)["PointInTimeRecoveryStatus"] == "ENABLED"
    calls = count_calls(ddb)
    (again,) = pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry())
    assert again.status == pitr.ALREADY_ON
    assert calls["UpdateContinuousBackups"] == 0


def test_a_table_created_a_moment_ago_is_retried_until_pitr_is_on(ddb):
    """The "turn it on an hour later" case: every new-table error, then success, with backoff between."""
    table = make_table(ddb)
    creating_for(ddb, table, 2)
    left = inject(
        ddb,
        "UpdateContinuousBackups",
        [UNAVAILABLE, UNAVAILABLE, "ResourceInUseException", "LimitExceededException", "ThrottlingException"],
    )
    calls = count_calls(ddb)
    clock = Clock()
    (result,) = pitr.ensure_pitr(ddb, [table], recovery_days=7, retry=retry(clock=clock))
    assert result.status == pitr.ENABLED, result
    assert result.recovery_period_in_days == 7
    assert left == []
    assert calls["UpdateContinuousBackups"] == 6
    assert len(clock.slept) == 7  # two rounds while CREATING, five error rounds
    assert clock.slept[-1] > clock.slept[0]  # backs off
    assert pitr_of(ddb, table)["PointInTimeRecoveryStatus"] == "ENABLED"


def test_continuous_backups_not_yet_available_is_waited_for(ddb):
    table = make_table(ddb)
    left = [2]

    def unavailable(parsed: dict[str, Any], **_: Any) -> None:
        if left[0]:
            left[0] -= 1
            parsed["ContinuousBackupsDescription"]["ContinuousBackupsStatus"] = "DISABLED"

    ddb.meta.events.register("after-call.dynamodb.DescribeContinuousBackups", unavailable)
    calls = count_calls(ddb)
    (result,) = pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry())
    assert result.status == pitr.ENABLED
    assert calls["UpdateContinuousBackups"] == 1  # never asked before backups were available


def test_gives_up_at_the_deadline_with_the_reason_and_goes_on_with_the_others(ddb):
    new, old = make_table(ddb, "mystack-NewTable"), make_table(ddb, "mystack-OldTable")
    inject(ddb, "UpdateContinuousBackups", [UNAVAILABLE] * 1000, table=new)
    clock = Clock()
    results = pitr.ensure_pitr(ddb, [new, old, "mystack-GoneTable"], recovery_days=35, retry=retry(120, clock))
    by = {r.table: r for r in results}
    assert [r.table for r in results] == [new, old, "mystack-GoneTable"]
    assert by[old].status == pitr.ENABLED
    assert by["mystack-GoneTable"].status == pitr.MISSING
    assert by[new].status == pitr.FAILED
    assert UNAVAILABLE in by[new].reason and "Please retry later" in by[new].reason
    assert clock.now - 1000 <= 120
    with pytest.raises(errors.PitrIncomplete, match="mystack-NewTable: ContinuousBackupsUnavailableException"):
        pitr.check(results)


def test_a_refusal_that_will_not_pass_is_not_retried(ddb):
    table = make_table(ddb)
    inject(ddb, "UpdateContinuousBackups", ["AccessDeniedException"])
    clock = Clock()
    (result,) = pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry(clock=clock))
    assert result.status == pitr.FAILED
    assert result.reason.startswith("AccessDeniedException")
    assert clock.slept == []
    locked = make_table(ddb, "mystack-LockedTable")
    creating_for(ddb, locked, 1000, "INACCESSIBLE_ENCRYPTION_CREDENTIALS")
    (result,) = pitr.ensure_pitr(ddb, [locked], recovery_days=35, retry=retry(clock=clock))
    assert (result.status, result.reason) == (pitr.FAILED, "the table is INACCESSIBLE_ENCRYPTION_CREDENTIALS")
    assert clock.slept == []


def test_a_new_recovery_period_is_applied(ddb):
    remember_recovery_period(ddb)
    table = make_table(ddb)
    pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry())
    (result,) = pitr.ensure_pitr(ddb, [table], recovery_days=10, retry=retry())
    assert result.status == pitr.UPDATED
    assert result.reason == "recovery period 35 -> 10 days"
    (result,) = pitr.ensure_pitr(ddb, [table], recovery_days=10, retry=retry())
    assert result.status == pitr.ALREADY_ON
    with pytest.raises(BadInput):
        pitr.ensure_pitr(ddb, [table], recovery_days=36, retry=retry())


def test_status_rows(ddb):
    table = make_table(ddb)
    make_table(ddb, "mystack-FilesTable")
    pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry())
    rows = {r["table"]: r for r in pitr.pitr_status(ddb, [table, "mystack-FilesTable", "mystack-NoTable"])}
    assert rows[table]["pitr"] == "ENABLED" and rows[table]["recoveryPeriodInDays"] == 35
    assert "earliest" in rows[table]
    assert rows["mystack-FilesTable"]["pitr"] == "DISABLED"
    assert rows["mystack-NoTable"]["tableStatus"] == "MISSING"


# ------------------------------------------------------------------ custom resource
def cfn_event(request_type: str, **props: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "ensure_pitr_cfn_create.json").read_text())
    event["RequestType"] = request_type
    event["ResourceProperties"].update(props)
    if request_type != "Create":
        event["PhysicalResourceId"] = "ddb-backup-EnsurePitrOnDeploy"
    return event


def test_custom_resource_create_and_update_enable_pitr(ddb):
    make_table(ddb, "mystack-GranulesTable")
    make_table(ddb, "mystack-FilesTable")
    out = cfn.custom_resource_outcome(ddb, cfn_event("Create"), retry())
    assert out.status == cfn.SUCCESS
    assert out.physical_id == "ddb-backup-EnsurePitrOnDeploy"
    assert out.data == {"AlreadyOn": "0", "Enabled": "2", "Missing": "6", "Failed": "0"}
    assert "the schedule retries" in out.reason and "mystack-UsersTable" in out.reason
    out = cfn.custom_resource_outcome(ddb, cfn_event("Update"), retry())
    assert out.status == cfn.SUCCESS and out.data["AlreadyOn"] == "2"
    assert out.physical_id == "ddb-backup-EnsurePitrOnDeploy"  # never a replacement


def test_custom_resource_succeeds_when_tables_are_not_ready_in_time(ddb):
    """A stack never fails (or gets stuck in a rollback) because a table is new: the schedule finishes."""
    table = make_table(ddb)
    inject(ddb, "UpdateContinuousBackups", [UNAVAILABLE] * 1000)
    out = cfn.custom_resource_outcome(ddb, cfn_event("Create", Tables=[table], CumulusPrefix=""), retry(60))
    assert out.status == cfn.SUCCESS
    assert out.data["Failed"] == "1"
    assert UNAVAILABLE in out.reason


def test_custom_resource_delete_leaves_tables_alone(ddb):
    table = make_table(ddb)
    pitr.ensure_pitr(ddb, [table], recovery_days=35, retry=retry())
    calls = count_calls(ddb)
    out = cfn.custom_resource_outcome(ddb, cfn_event("Delete", RecoveryPeriodInDays="not a number"), retry())
    assert out.status == cfn.SUCCESS
    assert sum(calls.values()) == 0
    assert pitr_of(ddb, table)["PointInTimeRecoveryStatus"] == "ENABLED"


@pytest.mark.parametrize(
    ("request_type", "props"),
    [("Create", {"RecoveryPeriodInDays": "99"}), ("Update", {"Tables": ["x"], "Extra": "1"}), ("Bogus", {})],
)
def test_custom_resource_fails_only_on_requests_it_cannot_understand(ddb, request_type, props):
    out = cfn.custom_resource_outcome(ddb, cfn_event(request_type, **props), retry())
    assert out.status == cfn.FAILURE
    assert out.reason and "\n" not in out.reason


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A throwaway HTTP server standing in for the pre-signed S3 URL; collects PUT bodies and headers."""
    bodies: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append({"body": json.loads(raw), "contentType": self.headers.get("Content-Type")})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/cfn?X-Amz-Signature=x", bodies
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.sockets  # a response URL on 127.0.0.1
def test_response_is_put_to_the_response_url(response_url, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url, bodies = response_url
    event = cfn_event("Create")
    event["ResponseURL"] = url
    cfn.send_cfn_response(event, cfn.SUCCESS, "fine", "phys-1", {"Enabled": "2"})
    ((got,),) = [bodies]
    assert got["contentType"] == ""  # the pre-signed URL is signed for an empty content type
    body = got["body"]
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == "phys-1"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        event["StackId"],
        event["RequestId"],
        event["LogicalResourceId"],
    )
    assert body["Data"] == {"Enabled": "2"}


@pytest.mark.sockets  # a response URL on 127.0.0.1
def test_response_retries_then_raises_when_nobody_listens():
    event = cfn_event("Create")
    event["ResponseURL"] = "http://127.0.0.1:9/closed"
    slept: list[float] = []
    with pytest.raises(OSError):
        cfn.send_cfn_response(event, cfn.SUCCESS, "x", "p", sleep=slept.append)
    assert slept == [1, 2, 4]


# ------------------------------------------------------------------ restores
def source_table(ddb: Any, name: str = "mystack-GranulesTable") -> str:
    remember_recovery_period(ddb)
    make_table(ddb, name)
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})
    ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "cumulus"}])
    pitr.ensure_pitr(ddb, [name], recovery_days=14, retry=retry())
    sample.fill(ddb, name, sample.items(sample.CUMULUS_TABLES["Granules"], 60))
    return name


def settings(ddb: Any, table: str) -> dict[str, Any]:
    d = describe(ddb, table)
    pitr_desc = d["ContinuousBackups"]["PointInTimeRecoveryDescription"]
    return {
        "ttl": (d["TimeToLive"].get("TimeToLiveStatus"), d["TimeToLive"].get("AttributeName")),
        "stream": d["Table"].get("StreamSpecification"),
        "tags": sorted((t["Key"], t["Value"]) for t in d["Tags"]),
        "pitr": (pitr_desc["PointInTimeRecoveryStatus"], pitr_desc.get("RecoveryPeriodInDays")),
        "keys": d["Table"]["KeySchema"],
        "gsis": [g["IndexName"] for g in d["Table"].get("GlobalSecondaryIndexes", [])],
    }


def test_point_in_time_restore_comes_back_with_ttl_stream_tags_and_pitr(ddb):
    source = source_table(ddb)
    out = restores.restore_to_point_in_time(
        ddb, source, "restore-GranulesTable", when=names.parse_time("2026-11-22T03:00:00Z", "--time"), retry=retry()
    )
    assert out["restoredTo"] == "2026-11-22T03:00:00+00:00"
    assert out["reapplied"] == ["2 tag(s)", "TTL on expiresAt", "stream NEW_IMAGE", "PITR (14 days)"]
    assert settings(ddb, "restore-GranulesTable") == settings(ddb, source)
    assert sorted(map(canonical, table_items(ddb, "restore-GranulesTable"))) == sorted(
        map(canonical, table_items(ddb, source))
    )


def test_restore_re_enables_pitr_through_new_table_errors(ddb):
    source = source_table(ddb)
    left = inject(ddb, "UpdateContinuousBackups", [UNAVAILABLE] * 3, table="restore-T")
    out = restores.restore_to_point_in_time(ddb, source, "restore-T", when=None, retry=retry())
    assert left == [] and out["restoredTo"] == "latest"
    assert pitr_of(ddb, "restore-T")["PointInTimeRecoveryStatus"] == "ENABLED"


def test_restore_refuses_without_pitr_or_onto_an_existing_table(ddb):
    plain = make_table(ddb, "mystack-PlainTable")
    with pytest.raises(errors.PitrNotEnabled, match="mystack-PlainTable"):
        restores.restore_to_point_in_time(ddb, plain, "restore-x", when=None, retry=retry())
    source = source_table(ddb)
    with pytest.raises(TargetRefused, match="mystack-PlainTable"):
        restores.restore_to_point_in_time(ddb, source, plain, when=None, retry=retry())
    with pytest.raises(DdbBackupError, match="does not exist"):
        restores.restore_to_point_in_time(ddb, "mystack-NoTable", "restore-y", when=None, retry=retry())
    with pytest.raises(BadInput, match="ISO 8601"):
        names.parse_time("yesterday", "--time")
    assert names.parse_time("2026-11-22T03:00:00", "--time").tzinfo == dt.UTC


def test_waiting_for_a_restore_has_a_limit(ddb):
    table = make_table(ddb)
    creating_for(ddb, table, 10_000)
    with pytest.raises(errors.StillRestoring, match="still CREATING"):
        restores.wait_active(ddb, table, retry(300))


# ------------------------------------------------------------------ CLI
def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    cli_aws_backups.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_pitr_enable_status_restore(ddb, capsys):
    remember_recovery_period(ddb)
    for short in ("Granules", "Files"):
        make_table(ddb, f"mystack-{short}Table")
    assert run_cli("pitr", "enable", "--table", "mystack-GranulesTable,mystack-FilesTable", "--days", "20") == 0
    assert "mystack-FilesTable" in capsys.readouterr().out
    assert run_cli("--json", "pitr", "status", "--cumulus-prefix", "mystack-") == 0
    rows = {r["table"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 8
    assert rows["mystack-GranulesTable"]["pitr"] == "ENABLED"
    assert rows["mystack-UsersTable"]["tableStatus"] == "MISSING"
    assert run_cli("pitr", "status") == 0
    out = capsys.readouterr().out
    assert [h.strip() for h in out.splitlines()[0].split("  ") if h.strip()][:3] == ["table", "table status", "pitr"]
    argv = ["pitr", "restore", "--table", "mystack-GranulesTable", "--to", "restore-GranulesTable"]
    assert run_cli("--json", *argv, "--time", "2026-11-22T03:00:00Z") == 0
    assert json.loads(capsys.readouterr().out)["reapplied"][-1] == "PITR (20 days)"
    with pytest.raises(BadInput, match="--time ISO8601 or --latest"):
        run_cli(*argv)
    with pytest.raises(TargetRefused):
        run_cli(*argv, "--latest")


def test_cli_pitr_enable_names_the_tables_it_could_not_do(ddb, capsys):
    make_table(ddb)
    inject(ddb, "UpdateContinuousBackups", ["AccessDeniedException"])
    with pytest.raises(errors.PitrIncomplete, match="mystack-GranulesTable: AccessDeniedException"):
        run_cli("pitr", "enable", "--table", "mystack-GranulesTable")
    with pytest.raises(BadInput, match="--table"):
        run_cli("pitr", "enable")
    with pytest.raises(SystemExit):
        run_cli("pitr", "enable", "--table", "T", "--days", "36")
