"""Record-level restore through the restore state machine (issue 28 point 1), on the local stack: ``select``
(keys, key prefixes, a keys file in S3) on a backup of this tool, a cumulus-api file and a native export; a
selector that matches nothing fails the plan, naming it, before any table is created. (A restore to a time
with ``select``: tests/changes/test_select_to_time.py.)"""

from __future__ import annotations

import json
from typing import Any

from ddb_backup.aws.clients import client
from devkit import sample
from tests.conftest import FIXTURES, backup_summaries, canonical, expected_items, restore_report, table_items


def _restore(stack: Any, request: dict[str, Any]) -> dict[str, Any]:
    return stack.run("RestoreStateMachine", request)


def _keyed(items: list[dict[str, Any]]) -> list[str]:
    return sorted(map(canonical, items))


def test_select_restores_exactly_the_matching_items_of_a_backup(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 300})
    desc = stack.run("BackupStateMachine", {"tables": ["mystack-GranulesTable"], "segments": 3})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    directory = f"s3://{bucket}/{summary['manifest'].rsplit('/', 1)[0]}/"
    items = table_items(ddb, "mystack-GranulesTable")
    ids = sorted(i["granuleId"]["S"] for i in items)
    by_file = ids[5:8]
    s3.put_object(
        Bucket=bucket, Key="keys/pick.jsonl", Body="".join(json.dumps({"granuleId": g}) + "\n" for g in by_file)
    )
    prefix = ids[0][:-1]  # the first id without its last character: every id sharing that start
    select = {"keys": [f"granuleId={ids[1]}", f"granuleId={ids[2]}"], "keyPrefixes": [f"granuleId={prefix}"]}
    select["keysFile"] = f"s3://{bucket}/keys/pick.jsonl"

    desc = _restore(stack, {"source": directory, "table": "some-Granules", "select": select})

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    wanted = {ids[1], ids[2], *by_file} | {g for g in ids if g.startswith(prefix)}
    assert len(wanted) < len(ids) // 10
    assert _keyed(table_items(ddb, "some-Granules")) == _keyed([i for i in items if i["granuleId"]["S"] in wanted])
    [row] = restore_report(desc)["tables"]
    assert row["itemsRestored"] == row["expectedItems"] == len(wanted) and row["parts"] == 1


def test_select_works_on_a_foreign_format_and_overwrites_an_existing_table(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    local = FIXTURES / "cumulus-api-1.18.0" / "mystack-ExecutionsTable.json"
    s3.put_object(Bucket=bucket, Key="imports/executions.json", Body=local.read_bytes())
    expected = expected_items("mystack-ExecutionsTable")
    arns = sorted(i["arn"]["S"] for i in expected)
    sample.create_table(ddb, "live-Executions", [("arn", "HASH")])
    ddb.put_item(TableName="live-Executions", Item={"arn": {"S": "arn:other"}, "status": {"S": "kept"}})
    request = {"source": "imports/executions.json", "table": "live-Executions", "mode": "overwrite"}

    desc = _restore(stack, {**request, "select": {"keys": [f"arn={arns[3]}", f"arn={arns[4]}"]}})

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    picked = [i for i in expected if i["arn"]["S"] in arns[3:5]]
    other = {"arn": {"S": "arn:other"}, "status": {"S": "kept"}}
    assert _keyed(table_items(ddb, "live-Executions")) == _keyed([*picked, other])


def test_select_works_on_a_native_export(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    local = FIXTURES / "native-export"
    for path in local.rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"imports/export/{path.relative_to(local)}", Body=path.read_bytes())
    expected = expected_items("mystack-GranulesTable")
    ids = sorted(i["granuleId"]["S"] for i in expected)
    request = {"source": "imports/export/", "table": "some-Export", "keys": ["granuleId"]}

    desc = _restore(
        stack, {**request, "select": {"keys": [f"granuleId={ids[-1]}"], "keyPrefixes": [f"granuleId={ids[0]}"]}}
    )

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    wanted = [i for i in expected if i["granuleId"]["S"] == ids[-1] or i["granuleId"]["S"].startswith(ids[0])]
    assert 2 <= len(wanted) < len(expected)
    assert _keyed(table_items(ddb, "some-Export")) == _keyed(wanted)


def test_a_selector_matching_nothing_fails_the_plan_naming_it_and_creates_nothing(stack):
    ddb, s3 = client("dynamodb"), client("s3")
    bucket = stack.outputs["BackupBucketName"]
    local = FIXTURES / "cumulus-api-1.18.0" / "mystack-ExecutionsTable.json"
    s3.put_object(Bucket=bucket, Key="imports/executions.json", Body=local.read_bytes())
    arn = expected_items("mystack-ExecutionsTable")[0]["arn"]["S"]
    request = {"source": "imports/executions.json", "table": "none-Executions", "keys": ["arn"]}

    desc = _restore(stack, {**request, "select": {"keys": [f"arn={arn}", "arn=arn:nowhere"]}})

    assert desc["status"] == "FAILED" and desc["error"] == "NothingSelected"
    assert "select.keys 'arn=arn:nowhere': matched no item" in desc["cause"]
    assert "none-Executions" not in ddb.list_tables()["TableNames"]
    desc = _restore(stack, {**request, "select": {"keys": ["status=running"]}})
    assert (
        desc["status"] == "FAILED" and "select.keys 'status=running': 'status' is not a key attribute" in desc["cause"]
    )
    desc = _restore(stack, {**request, "select": {"keysFile": "keys.jsonl"}})
    assert desc["status"] == "FAILED" and "select.keysFile 'keys.jsonl' must be an s3:// URL" in desc["cause"]
    desc = _restore(stack, {**request, "method": "import", "select": {"keys": [f"arn={arn}"]}})
    assert desc["status"] == "FAILED" and "'select' restores some items of one table" in desc["cause"]
