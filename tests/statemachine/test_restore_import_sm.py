"""The restore state machine's ``method`` (issue 13 item 3): ImportTable on the local stack, under its roles."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from typing import Any

from ddb_backup.aws.clients import client
from devkit import sample
from devkit.emulator import LocalStack
from tests.conftest import canonical, restore_report, table_items

SOURCE = "mystack-GranulesTable"
MARK = "ddb-backup:restore-in-progress"


def _backup(stack: LocalStack, items: int = 120) -> str:
    """A backup of SOURCE (TTL, a tag) by the backup state machine; its manifest's key in the backup bucket."""
    ddb = client("dynamodb")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": items})
    ddb.update_time_to_live(TableName=SOURCE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    desc = stack.run("BackupStateMachine", {"tables": [SOURCE]})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    bucket = stack.outputs["BackupBucketName"]
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    [manifest] = [k for k in keys if k.endswith("manifest.json") and SOURCE in k]
    return manifest


def _items(table: str) -> Counter[str]:
    return Counter(map(canonical, table_items(client("dynamodb"), table)))


def _tags(table: str) -> dict[str, str]:
    ddb = client("dynamodb")
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    return {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}


class _SlowImport:
    """DescribeImport says IN_PROGRESS the first ``times`` calls (moto's import ends within the plan step)."""

    def __init__(self, times: int) -> None:
        self.calls, self.times = 0, times
        client("dynamodb").meta.events.register("after-call.dynamodb.DescribeImport", self.running)

    def running(self, parsed: dict[str, Any], **_: Any) -> None:
        self.calls += 1
        if self.calls <= self.times:
            parsed["ImportTableDescription"]["ImportStatus"] = "IN_PROGRESS"


def test_method_import_restores_a_new_table_item_for_item_and_reports_it(stack):
    manifest = _backup(stack)
    slow = _SlowImport(times=2)
    desc = stack.run("RestoreStateMachine", {"source": manifest, "table": "restore-copy", "method": "import"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [row] = restore_report(desc)["tables"]
    assert row["method"] == "import" and row["importArn"].startswith("arn:aws:dynamodb:")
    assert "imported with ImportTable" in row["reason"]
    assert row["itemsRestored"] == row["expectedItems"] == 120
    assert _items("restore-copy") == _items(SOURCE)
    ttl = client("dynamodb").describe_time_to_live(TableName="restore-copy")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires"  # what ImportTable cannot set, applied after it
    assert MARK not in _tags("restore-copy")
    work = desc["output"]["report"].replace("report.json", "parts.json")
    bucket = stack.outputs["BackupBucketName"]
    assert json.loads(client("s3").get_object(Bucket=bucket, Key=work)["Body"].read()) == []  # no part written
    assert slow.calls == 4  # two looks while it ran, one after it ended, one by the final check


def test_auto_into_an_existing_table_writes_and_the_report_says_why(stack):
    manifest = _backup(stack)
    sample.create_table(client("dynamodb"), "restore-copy", sample.CUMULUS_TABLES["Granules"])
    desc = stack.run("RestoreStateMachine", {"source": manifest, "table": "restore-copy", "method": "auto"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [row] = restore_report(desc)["tables"]
    assert row["method"] == "write" and "importArn" not in row
    assert "restore-copy: written with BatchWriteItem, not imported: table restore-copy exists" in row["reason"]
    assert _items("restore-copy") == _items(SOURCE)


def test_an_import_whose_items_error_fails_the_machine_naming_the_counts(stack):
    """ImportTable counts a line it cannot import as an error and completes: the run fails, the table stays marked."""
    manifest = _backup(stack)
    s3, bucket = client("s3"), stack.outputs["BackupBucketName"]
    doc = json.loads(s3.get_object(Bucket=bucket, Key=manifest)["Body"].read())
    key = manifest.rsplit("/", 1)[0] + "/" + doc["parts"][0]["key"]
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).splitlines()
    lines[0] = lines[0].replace(b'{"Item"', b'{"Itm"', 1)
    body = gzip.compress(b"\n".join(lines) + b"\n")
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    doc["parts"][0]["bytes"] = len(body)  # damaged before its upload: its manifest agrees on the size
    s3.put_object(Bucket=bucket, Key=manifest, Body=json.dumps(doc).encode())
    desc = stack.run("RestoreStateMachine", {"source": manifest, "table": "restore-copy", "method": "import"})
    assert desc["status"] == "FAILED"
    assert "restore-copy: ImportTable COMPLETED imported 119 of the backup's 120 items with 1 error(s)" in desc["cause"]
    assert ":table/restore-copy/import/" in desc["cause"]
    assert MARK in _tags("restore-copy")


def _without_import(stack: LocalStack) -> None:
    """Take dynamodb:ImportTable out of the plan function's role, as a deployer narrowing it might."""
    policies = stack.template["Resources"]["PlanRestoreFunction"]["Properties"]["Policies"]
    found = 0
    for policy in policies:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            actions = statement.get("Action")
            if isinstance(actions, list) and "dynamodb:ImportTable" in actions:
                actions.remove("dynamodb:ImportTable")
                found += 1
    assert found == 1


def test_a_plan_role_without_import_table_is_refused() -> None:
    local = LocalStack(env={"PART_BYTES": str(64 * 1024)})
    _without_import(local)
    with local:
        manifest = _backup(local)
        desc = local.run("RestoreStateMachine", {"source": manifest, "table": "restore-copy", "method": "import"})
    assert desc["status"] == "FAILED"
    assert "not authorized to perform: dynamodb:ImportTable on resource: " in desc["cause"]
    assert "table/restore-copy" in desc["cause"]
