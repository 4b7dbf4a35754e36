"""A set restore of more than 50 tables starts at most 50 imports (ImportTable runs 50 at once; issue 23 point 9),
through the plan the CLI and the state machine share, on moto."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from ddb_backup.backup.finalize import finalize_table
from ddb_backup.backup.plan import Settings, plan_run
from ddb_backup.backup.scan import ScanSettings, scan_segment
from ddb_backup.restore.importtable import MAX_CONCURRENT_IMPORTS
from ddb_backup.restore.run import RestoreSettings, plan_restore

BUCKET = "fifty"
TABLES = [f"app-T{n:02d}" for n in range(MAX_CONCURRENT_IMPORTS + 1)]


def _backed_up(ddb: Any, s3: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    for name in TABLES:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName=name, Item={"k": {"S": name}})
    run = plan_run(ddb, s3, Settings(bucket=BUCKET, prefix="b/"), tables=TABLES, backup_id="20261208T000000Z-00000051")
    for work in json.loads(s3.get_object(Bucket=BUCKET, Key=run["workKey"])["Body"].read()):
        task = dict(work)
        while not task.get("done"):
            task = scan_segment(ddb, s3, ScanSettings(BUCKET), task, time_left=lambda: 60.0)
    for table in run["tables"]:
        finalize_table(s3, BUCKET, table["backupDir"])


def test_a_set_restore_of_51_tables_imports_50_and_writes_the_last(ddb: Any, s3: Any) -> None:
    _backed_up(ddb, s3)
    request = {"source": "b/", "map": [{"from": "app-", "to": "copy-"}], "method": "auto"}
    planned = plan_restore(ddb, s3, RestoreSettings(bucket=BUCKET, prefix="b/"), request, run_id="r51")
    methods = Counter(t["method"] for t in planned["tables"])
    assert methods == {"import": MAX_CONCURRENT_IMPORTS, "write": 1}, planned["tables"][:2]
    plan = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{planned['runPrefix']}plan.json")["Body"].read())
    [written] = [t for t in plan["tables"] if t["method"] == "write"]
    assert "already starts 50 imports" in written["reason"]
    assert sum(1 for t in plan["tables"] if t.get("importArn")) == MAX_CONCURRENT_IMPORTS
