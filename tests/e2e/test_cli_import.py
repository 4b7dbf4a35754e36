"""Restore by ImportTable (issue 13 item 3): auto's choice and its reason, the refusals, the checks after."""

from __future__ import annotations

import gzip
import json

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from devkit import sample
from tests.conftest import canonical, table_items

SOURCE = "mystack-GranulesTable"


@pytest.fixture
def backup(endpoint):
    """A Granules table with TTL, PITR and a tag, backed up to s3://imp/b/; (ddb, s3, manifest key)."""
    ddb, s3 = client("dynamodb"), client("s3")
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 120})
    arn = ddb.describe_table(TableName=SOURCE)["Table"]["TableArn"]
    ddb.update_time_to_live(TableName=SOURCE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    ddb.update_continuous_backups(
        TableName=SOURCE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "cumulus"}])
    s3.create_bucket(Bucket="imp")
    assert main(["backup", "--table", SOURCE, "--to", "s3://imp/b/", "-q"]) == 0
    [manifest] = [o["Key"] for o in s3.list_objects_v2(Bucket="imp")["Contents"] if o["Key"].endswith("manifest.json")]
    return ddb, s3, manifest


def _items(ddb, table: str) -> list[str]:
    return sorted(map(canonical, table_items(ddb, table)))


def test_auto_imports_a_new_table_says_why_and_reapplies_the_settings(backup, capsys):
    ddb, _, manifest = backup
    assert main(["--json", "restore", f"s3://imp/{manifest}", "--table", "copy", "--method", "auto"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["method"] == "import" and row["items"] == 120
    assert "imported with ImportTable" in row["methodReason"]
    assert _items(ddb, "copy") == _items(ddb, SOURCE)
    arn = ddb.describe_table(TableName="copy")["Table"]["TableArn"]
    source_arn = ddb.describe_table(TableName=SOURCE)["Table"]["TableArn"]
    assert ddb.describe_time_to_live(TableName="copy")["TimeToLiveDescription"]["AttributeName"] == "expires"
    pitr = ddb.describe_continuous_backups(TableName="copy")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    want = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=source_arn)["Tags"]}
    assert tags == want and tags["team"] == "cumulus"  # and the restore-in-progress mark is gone


def test_auto_prints_its_choice_and_writes_into_an_existing_table(backup, capsys):
    ddb, _, manifest = backup
    sample.create_table(ddb, "copy", sample.CUMULUS_TABLES["Granules"])
    assert main(["restore", f"s3://imp/{manifest}", "--table", "copy", "--method", "auto"]) == 0
    err = capsys.readouterr().err
    assert "copy: written with BatchWriteItem, not imported: table copy exists" in err
    assert _items(ddb, "copy") == _items(ddb, SOURCE)


def test_method_import_of_a_local_file_is_refused_with_the_reason(backup, tmp_path, capsys, monkeypatch):
    ddb, _, _ = backup
    monkeypatch.chdir(tmp_path)
    assert main(["backup", "--table", SOURCE, "-q"]) == 0
    assert main(["restore", f"backups/{SOURCE}.json", "--table", "copy", "--method", "import"]) != 0
    err = capsys.readouterr().err
    assert "cannot restore by ImportTable: the backup is not in S3" in err
    assert ddb.list_tables()["TableNames"] == [SOURCE]  # refused before anything was created


def test_a_table_with_an_lsi_falls_back_to_writes_and_says_so(endpoint, capsys):
    ddb, s3 = client("dynamodb"), client("s3")
    ddb.create_table(
        TableName="lsi",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "at")],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-at",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(30):
        ddb.put_item(TableName="lsi", Item={"pk": {"S": f"p{i % 3}"}, "sk": {"S": str(i)}, "at": {"S": "x"}})
    s3.create_bucket(Bucket="imp")
    assert main(["backup", "--table", "lsi", "--to", "s3://imp/b/", "-q"]) == 0
    capsys.readouterr()
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket="imp")["Contents"] if o["Key"].endswith("manifest.json")]
    assert main(["restore", f"s3://imp/{key}", "--table", "lsi-copy", "--method", "auto"]) == 0
    assert "not imported: the table has local secondary indexes" in capsys.readouterr().err
    assert ddb.describe_table(TableName="lsi-copy")["Table"]["LocalSecondaryIndexes"][0]["IndexName"] == "by-at"
    assert main(["restore", f"s3://imp/{key}", "--table", "lsi-copy2", "--method", "import"]) != 0


def test_an_object_beside_the_parts_fails_the_restore_by_any_method(backup, capsys):
    """Issue 24 point 4: data/ must hold exactly the parts listed (a part left out of the manifest is one case)."""
    ddb, s3, manifest = backup
    data = manifest.rsplit("/", 1)[0] + "/data/"
    s3.put_object(Bucket="imp", Key=data + "stray.json.gz", Body=gzip.compress(b'{"Item": {"x": {"S": "1"}}}\n'))
    for method in ("auto", "import", "write"):
        assert main(["restore", f"s3://imp/{manifest}", "--table", "copy", "--method", method]) == 1
        assert "1 file(s) in data/ the manifest does not list: ['data/stray.json.gz']" in capsys.readouterr().err
    assert "copy" not in ddb.list_tables()["TableNames"]


def test_an_import_with_item_errors_fails_the_restore_naming_the_counts(backup, capsys):
    """ImportTable counts a line it cannot import as an error and completes: that is a failed restore."""
    ddb, s3, manifest = backup
    doc = json.loads(s3.get_object(Bucket="imp", Key=manifest)["Body"].read())
    key = manifest.rsplit("/", 1)[0] + "/" + doc["parts"][0]["key"]
    lines = gzip.decompress(s3.get_object(Bucket="imp", Key=key)["Body"].read()).splitlines()
    lines[0] = lines[0].replace(b'{"Item"', b'{"Itm"', 1)
    body = gzip.compress(b"\n".join(lines) + b"\n")
    s3.put_object(Bucket="imp", Key=key, Body=body)
    doc["parts"][0]["bytes"] = len(body)  # a part damaged before its upload: its manifest agrees on the size
    s3.put_object(Bucket="imp", Key=manifest, Body=json.dumps(doc).encode())
    assert main(["restore", f"s3://imp/{manifest}", "--table", "copy", "--method", "import"]) != 0
    err = capsys.readouterr().err
    assert "copy: ImportTable COMPLETED imported 119 of the backup's 120 items with 1 error(s)" in err
    assert "marked as a partial restore" in err
    tags = ddb.list_tags_of_resource(ResourceArn=ddb.describe_table(TableName="copy")["Table"]["TableArn"])["Tags"]
    assert any(t["Key"] == "ddb-backup:restore-in-progress" for t in tags)
