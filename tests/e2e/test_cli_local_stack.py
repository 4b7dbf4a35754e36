"""``ddb-backup-dev local-stack`` as an endpoint, and the stack commands succeeding against it end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest

from devkit import sample
from tests.conftest import canonical, table_items
from tests.e2e.conftest import _free_port

CLI = [sys.executable, "-m", "ddb_backup_cli.main"]
STACK = "ddb-backup-local"


@pytest.fixture(scope="module")
def local_stack() -> Iterator[dict[str, str]]:
    """``ddb-backup-dev local-stack`` (``python -m devkit``) in its own process on a free port; the environment that reaches it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit", "local-stack", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # blocks until the stack is deployed and served
    assert first.startswith(f"local stack '{STACK}' serving on http://127.0.0.1:{port}"), proc.stderr.read()  # type: ignore[union-attr]
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    yield env
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, env=env, timeout=180, check=False)


def _client(env: dict[str, str], service: str):
    return boto3.session.Session(region_name="us-east-1").client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _ddb(env: dict[str, str]):
    return _client(env, "dynamodb")


def _report_rows(env: dict[str, str], output: dict) -> list[dict]:
    """The per-table rows of a backup run's report (the execution output names it; it stays small)."""
    body = _client(env, "s3").get_object(Bucket=output["bucket"], Key=output["report"])["Body"].read()
    return list(json.loads(body)["tables"])


def test_start_backup_list_and_start_restore_succeed_through_the_stack_name(local_stack):
    ddb = _ddb(local_stack)
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 120, "Rules": 9})

    backup = _cli(
        local_stack, "start-backup", "--stack-name", STACK, "--prefix", "mystack-", "--wait", "--poll", "0.2", "--json"
    )
    assert backup.returncode == 0, backup.stderr
    run = json.loads(backup.stdout)
    assert run["status"] == "SUCCEEDED"
    assert {(t["table"], t["items"]) for t in _report_rows(local_stack, run["output"])} == {
        ("mystack-GranulesTable", 120),
        ("mystack-RulesTable", 9),
    }

    listed = _cli(local_stack, "list", "--stack-name", STACK, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["table"], r["complete"], r["items"]) for r in rows] == [
        ("mystack-GranulesTable", True, 120),
        ("mystack-RulesTable", True, 9),
    ]

    bucket = rows[0]["url"].split("/")[2]
    restore = _cli(
        local_stack,
        "start-restore",
        "--stack-name",
        STACK,
        "--backup",
        f"s3://{bucket}/backups/",
        "--map",
        "mystack-=restore-",
        "--method",
        "auto",
        "--wait",
        "--poll",
        "0.2",
    )
    assert restore.returncode == 0, restore.stderr
    assert "succeeded in" in restore.stdout
    s3 = _client(local_stack, "s3")
    [report] = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket)["Contents"]
        if o["Key"].endswith("/report.json") and "/restores/" in o["Key"]
    ]
    rows = json.loads(s3.get_object(Bucket=bucket, Key=report)["Body"].read())["tables"]
    assert {r["method"] for r in rows} == {"import"}  # --method reached the state machine: new tables, imported
    for short in ("Granules", "Rules"):
        source = sorted(map(canonical, table_items(ddb, f"mystack-{short}Table")))
        assert sorted(map(canonical, table_items(ddb, f"restore-{short}Table"))) == source


def test_a_failed_execution_exits_1_naming_the_error(local_stack):
    failed = _cli(
        local_stack,
        "start-restore",
        "--stack-name",
        STACK,
        "--backup",
        "s3://no-such-bucket/x/",
        "--table",
        "abc",
        "--wait",
        "--poll",
        "0.2",
    )
    assert failed.returncode == 1
    assert "ddb-backup: execution FAILED" in failed.stderr
    # issue 24 point 9: the error's type and message, not the Lambda's stack trace; where the full cause is
    assert "stackTrace" not in failed.stderr and 'File "' not in failed.stderr, failed.stderr
    assert "aws stepfunctions describe-execution --execution-arn arn:" in failed.stderr, failed.stderr
    assert len(failed.stderr.strip().splitlines()) <= 3, failed.stderr


def test_start_restore_passes_the_selectors_to_the_machine(local_stack):
    """Issue 28: --key, --key-prefix and an s3:// --keys-file reach the restore machine, which writes only those."""
    ddb, s3 = _ddb(local_stack), _client(local_stack, "s3")
    sample.create_cumulus_tables(ddb, "sel-", {"Rules": 30})
    backup = _cli(local_stack, "start-backup", "--stack-name", STACK, "--tables", "sel-RulesTable", "--wait", "--json")
    assert backup.returncode == 0, backup.stderr
    bucket = json.loads(backup.stdout)["output"]["bucket"]
    items = table_items(ddb, "sel-RulesTable")
    names = sorted(i["name"]["S"] for i in items)
    s3.put_object(Bucket=bucket, Key="keys/rules.jsonl", Body=json.dumps({"name": names[7]}) + "\n")
    selectors = ["--key", f"name={names[0]}", "--key-prefix", f"name={names[3]}", "--keys-file"]
    local = _cli(local_stack, "start-restore", "--stack-name", STACK, "--backup", "s3://b/backups/sel-RulesTable/", "--table", "x-Rules", *selectors, "keys.jsonl")  # fmt: skip
    assert local.returncode == 2 and "copy the file there (aws s3 cp keys.jsonl s3://BUCKET/KEY)" in local.stderr
    [manifest] = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="backups/sel-RulesTable/")["Contents"] if o["Key"].endswith("manifest.json")]  # fmt: skip
    source = f"s3://{bucket}/{manifest.rsplit('/', 1)[0]}/"
    argv = [
        "start-restore",
        "--stack-name",
        STACK,
        "--backup",
        source,
        "--table",
        "some-Rules",
        "--wait",
        "--poll",
        "0.2",
    ]
    dry = _cli(local_stack, *argv, *selectors, f"s3://{bucket}/keys/rules.jsonl", "--dry-run")
    assert dry.returncode == 0 and "finding the items reads all" in dry.stdout and "nothing started" in dry.stdout
    restore = _cli(local_stack, *argv, *selectors, f"s3://{bucket}/keys/rules.jsonl")
    assert restore.returncode == 0, restore.stderr
    wanted = {names[0], names[7]} | {n for n in names if n.startswith(names[3])}
    assert sorted(map(canonical, table_items(ddb, "some-Rules"))) == sorted(
        canonical(i) for i in items if i["name"]["S"] in wanted
    )
