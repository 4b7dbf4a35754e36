"""Restore by ImportTable (ddb_backup.restore.importtable): the import must hold every item the backup promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ddb_backup.errors import BadInput, RestoreIncomplete
from ddb_backup.format.lines import PartRef
from ddb_backup.format.localfile import write_local_file
from ddb_backup.format.sources import Source
from ddb_backup.restore.importtable import (
    MAX_CONCURRENT_IMPORTS,
    MAX_OBJECTS,
    Choice,
    choose,
    finish_import,
    finish_planned,
    import_args,
    import_prefix,
    running,
    start_planned,
    wait_import,
)
from ddb_backup.restore.resume import MARK_KEY, Mark, read_mark
from tests.helpers.aws import FakeDynamoDB, FakeS3


def _source(items: int) -> Source:
    part = PartRef(id="p0", url="s3://bkt/b/data/p0.json.gz", dialect="item", items=items)
    return Source(format="ddb-backup-v1", location="s3://bkt/b/", table="T", description=None, parts=[part])


def _import(imported: int, errors: int = 0) -> dict[str, Any]:
    return {
        "ImportStatus": "COMPLETED",
        "ImportArn": "arn:aws:dynamodb:us-east-1:1:table/T2/import/01",
        "ImportedItemCount": imported,
        "ProcessedItemCount": imported + errors,
        "ErrorCount": errors,
    }


def _finish(desc: dict[str, Any], ddb: FakeDynamoDB) -> dict[str, Any]:
    return finish_import(ddb, desc, _source(10), "T2", Mark("b", "run1"), sleep=lambda _: None)


@pytest.mark.parametrize("imported", [9, 11], ids=["fewer", "more"])
def test_an_import_of_another_count_than_the_backup_holds_fails_though_it_counts_no_error(imported: int) -> None:
    ddb = FakeDynamoDB()
    with pytest.raises(RestoreIncomplete, match=rf"T2: ImportTable COMPLETED imported {imported} of the backup's 10 "):
        _finish(_import(imported), ddb)
    (tags,) = ddb.tags.values()  # the table stays marked as a partial restore
    assert [t["Key"] for t in tags] == [MARK_KEY]


def test_an_import_of_every_item_without_errors_succeeds() -> None:
    done = _finish(_import(10), FakeDynamoDB())
    assert (done["imported"], done["errors"], done["processed"]) == (10, 0, 10)


def test_an_import_with_errors_fails_even_when_the_count_matches() -> None:
    with pytest.raises(RestoreIncomplete, match="with 1 error"):
        _finish(_import(10, errors=1), FakeDynamoDB())


def test_a_run_starts_no_more_imports_than_importtable_runs_at_once() -> None:
    """ImportTable runs 50 imports at once: a set restore of more tables writes the rest (auto), or is refused
    naming the limit (import), rather than starting imports that fail (issue 23 point 9)."""
    src, s3 = _source(10), FakeS3()  # counted, S3, one gzip part of items: importable
    s3.put_object(Bucket="bkt", Key="b/data/p0.json.gz", Body=b"")
    assert choose(s3, src, "T49", exists=False, method="auto", importing=49).method == "import"
    fifty_first = choose(s3, src, "T50", exists=False, method="auto", importing=MAX_CONCURRENT_IMPORTS)
    assert fifty_first.method == "write" and "50 imports" in fifty_first.reason
    with pytest.raises(BadInput, match="already starts 50 imports"):
        choose(s3, src, "T50", exists=False, method="import", importing=MAX_CONCURRENT_IMPORTS)


def _parts(*urls: str, dialect: str = "item", items: int | None = 1) -> Source:
    parts = [PartRef(id=f"p{n}", url=url, dialect=dialect, items=items) for n, url in enumerate(urls)]
    return Source(format="ddb-backup-v1", location="s3://bkt/b/", table="T", description=None, parts=parts)


def _s3(*keys: str) -> FakeS3:
    s3 = FakeS3()
    for key in keys:
        s3.put_object(Bucket="bkt", Key=key, Body=b"")
    return s3


def _why(src: Source, s3: FakeS3 | None = None, *, exists: bool = False) -> str:
    return choose(s3 or FakeS3(), src, "T2", exists=exists, method="auto").reason


IMPORTABLE = ("s3://bkt/b/data/p0.json.gz", "s3://bkt/b/data/p1.json.gz")


def test_a_new_table_from_counted_item_parts_alone_under_one_prefix_is_imported() -> None:
    chosen = choose(
        _s3("b/data/p0.json.gz", "b/data/p1.json.gz"), _parts(*IMPORTABLE), "T2", exists=False, method="auto"
    )
    assert chosen.method == "import"
    assert chosen.reason == "T2: imported with ImportTable (new table, parts importable as they are)"
    assert choose(FakeS3(), _parts(*IMPORTABLE), "T2", exists=False, method="write") == choose(
        FakeS3(), _parts(*IMPORTABLE), "T2", exists=True, method="write"
    )
    assert choose(FakeS3(), _parts(*IMPORTABLE), "T2", exists=False, method="write").reason == (
        "T2: written with BatchWriteItem (--method write)"
    )


@pytest.mark.parametrize(
    ("src", "exists", "why"),
    [
        (_parts(*IMPORTABLE), True, "table T2 exists and ImportTable only creates new tables"),
        (_parts(), False, "the backup holds no parts"),
        (
            _parts("s3://bkt/b/data/p0.json.gz", "/tmp/p1.json"),
            False,
            "the backup is not in S3 (ImportTable reads only S3)",
        ),
        (_parts(*IMPORTABLE, dialect="typed"), False, 'its parts are not {"Item": ...} lines (typed dialect)'),
        (
            _parts(*IMPORTABLE, items=None),
            False,
            "the backup does not record its item count to check the import against",
        ),
        (
            _parts("s3://bkt/b/data/p0.json.gz", "s3://bkt/b/data/p1.json"),
            False,
            "its parts mix gzip and plain objects (one import takes one compression)",
        ),
        (_parts("s3://bkt/b/p0.json.gz", "s3://other/b/p1.json.gz"), False, "the parts are in several buckets"),
        (_parts("s3://bkt/b/p0.json.gz", "s3://aaa/b/p1.json.gz"), False, "the parts are in several buckets"),
        (
            _parts("s3://bkt/a/p0.json.gz", "s3://bkt/b/p1.json.gz"),
            False,
            "the parts share no directory to import from",
        ),
    ],
    ids=["exists", "no parts", "local", "typed", "uncounted", "mixed", "buckets", "buckets before", "no prefix"],
)
def test_what_import_cannot_restore_is_written_naming_why_and_refused_when_import_is_asked(
    src: Source, exists: bool, why: str
) -> None:
    s3 = _s3(*(p.url.removeprefix("s3://bkt/") for p in src.parts if p.url.startswith("s3://bkt/")))
    chosen = choose(s3, src, "T2", exists=exists, method="auto")
    assert chosen == Choice("write", f"T2: written with BatchWriteItem, not imported: {why}")
    with pytest.raises(BadInput) as refused:
        choose(s3, src, "T2", exists=exists, method="import")
    assert str(refused.value) == f"T2: cannot restore by ImportTable: {why}; use --method write (or auto)"


def test_a_table_with_local_secondary_indexes_is_not_imported() -> None:
    src = _parts(*IMPORTABLE)
    src.description = {"Table": {"LocalSecondaryIndexes": [{"IndexName": "l"}]}}
    assert _why(src, _s3("b/data/p0.json.gz", "b/data/p1.json.gz")).endswith(
        ": the table has local secondary indexes, which ImportTable cannot create"
    )


def test_more_parts_than_one_import_reads_are_written() -> None:
    src = _parts(*(f"s3://bkt/b/data/p{n}.json.gz" for n in range(MAX_OBJECTS + 1)))
    assert _why(src).endswith(": it has 50,001 parts, more than the 50,000 objects one import reads")
    exactly = _parts(*(f"s3://bkt/b/data/p{n}.json.gz" for n in range(MAX_OBJECTS)))
    assert "objects one import reads" not in _why(exactly)


def test_anything_else_under_the_parts_prefix_keeps_the_import_from_reading_it_too() -> None:
    s3 = _s3("b/data/p0.json.gz", "b/data/p1.json.gz", "b/data/zz-stray.json", "b/data/a-stray.json")
    assert _why(_parts(*IMPORTABLE), s3).endswith(
        ": s3://bkt/b/data/ also holds 2 object(s) that are not its parts (e.g. b/data/a-stray.json)"
    )


@pytest.mark.parametrize(
    ("urls", "prefix"),
    [
        (IMPORTABLE, "b/data/"),
        (("s3://bkt/b/data/x/p0.json.gz", "s3://bkt/b/data/y/p1.json.gz"), "b/data/"),
        (("s3://bkt/b/data/x/p0.json.gz", "s3://bkt/b/other/p1.json.gz", "s3://bkt/b/data/p2.gz"), "b/"),
        (("s3://bkt/b/p0.json.gz",), "b/"),
        (("s3://bkt/ab/p0.json.gz", "s3://bkt/a/p1.json.gz"), ""),
    ],
)
def test_the_import_prefix_is_the_parts_deepest_common_directory(urls: tuple[str, ...], prefix: str) -> None:
    assert import_prefix(_parts(*urls)) == ("bkt", prefix)


def test_the_import_reads_the_parts_prefix_in_their_compression_into_the_table_as_create_table_would_make_it() -> None:
    keys = [{"AttributeName": "k", "KeyType": "HASH", "AttributeType": "S"}]
    args = import_args(_parts(*IMPORTABLE), "T2", keys)
    assert args["S3BucketSource"] == {"S3Bucket": "bkt", "S3KeyPrefix": "b/data/"}
    assert (args["InputFormat"], args["InputCompressionType"]) == ("DYNAMODB_JSON", "GZIP")
    created = args["TableCreationParameters"]
    assert created["TableName"] == "T2" and created["KeySchema"] == [{"AttributeName": "k", "KeyType": "HASH"}]
    assert created["AttributeDefinitions"] == [{"AttributeName": "k", "AttributeType": "S"}]
    plain = import_args(_parts("s3://bkt/b/data/p0.json"), "T2", keys)
    assert plain["InputCompressionType"] == "NONE"


class _Imports:
    """DescribeImport: IN_PROGRESS for ``polls`` calls, then ``final``; ImportTable records its token."""

    def __init__(self, polls: int, final: str = "COMPLETED") -> None:
        self.polls, self.final, self.tokens = polls, final, []

    def describe_import(self, ImportArn: str) -> dict[str, Any]:
        assert isinstance(ImportArn, str), "botocore refuses an ImportArn that is not a string"
        self.polls -= 1
        return {
            "ImportTableDescription": {
                "ImportArn": ImportArn,
                "ImportStatus": "IN_PROGRESS" if self.polls >= 0 else self.final,
            }
        }

    def import_table(self, ClientToken: str, **request: Any) -> dict[str, Any]:
        assert {"S3BucketSource", "InputFormat", "TableCreationParameters"} <= set(request)  # required by ImportTable
        assert isinstance(request["TableCreationParameters"]["TableName"], str)
        self.tokens.append(ClientToken)
        return {"ImportTableDescription": {"ImportArn": f"arn:import/{len(self.tokens)}"}}


def test_an_import_is_polled_one_second_then_twice_as_long_up_to_thirty_until_it_ends() -> None:
    slept: list[float] = []
    assert wait_import(_Imports(7), "arn:i", sleep=slept.append)["ImportStatus"] == "COMPLETED"
    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_an_import_still_running_at_the_timeout_is_incomplete_naming_it() -> None:
    with pytest.raises(RestoreIncomplete, match=r"^import arn:i still IN_PROGRESS after -1 s$"):
        wait_import(_Imports(7), "arn:i", timeout=-1.0, sleep=lambda _: None)


def test_a_plan_starts_one_import_per_imported_target_with_a_token_a_retry_repeats() -> None:
    ddb, src = _Imports(0), _parts(*IMPORTABLE)
    keys = {"keySchema": [{"AttributeName": "k", "KeyType": "HASH", "AttributeType": "S"}]}
    prepared = [(src, "T2", {**keys, "method": "import"}), (src, "T3", {**keys, "method": "write"}), (src, "T4", {**keys, "method": "import"})]  # fmt: skip
    assert start_planned(ddb, prepared, "r" * 70) == {"T2": "arn:import/1", "T4": "arn:import/2"}
    assert ddb.tokens == [("r" * 70 + "-T2")[:64], ("r" * 70 + "-T4")[:64]]
    assert running(_Imports(5), [{"importArn": "a"}, {"importArn": "b"}, {"target": "T3"}]) == 2
    assert running(_Imports(0), [{"importArn": "a"}]) == 0


def test_a_planned_import_still_running_when_the_restore_finishes_is_incomplete_saying_how_to_check() -> None:
    with pytest.raises(RestoreIncomplete) as stopped:
        finish_planned(_Imports(3), FakeS3(), {"target": "T2", "importArn": "arn:i", "source": "s3://bkt/b/"}, "r")
    assert str(stopped.value) == (
        "T2: ImportTable is still IN_PROGRESS (arn:i): the restore stopped before it ended; "
        "check the import with aws dynamodb describe-import"
    )


def _created(ddb: Any, name: str = "T2") -> str:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")  # fmt: skip
    return str(ddb.describe_table(TableName=name)["Table"]["TableArn"])


def _failed(imported: int = 3) -> dict[str, Any]:
    return {**_import(imported), "ImportStatus": "FAILED", "FailureCode": "S3NoSuchKey", "FailureMessage": "gone"}


def test_a_failed_import_that_left_no_table_is_incomplete_naming_its_failure(ddb: Any) -> None:
    with pytest.raises(RestoreIncomplete) as failed:
        finish_import(ddb, _failed(), _source(10), "T2", Mark("b", "run1"), sleep=lambda _: None)
    assert str(failed.value) == (
        "T2: ImportTable FAILED: S3NoSuchKey: gone (arn:aws:dynamodb:us-east-1:1:table/T2/import/01); no table was left"
    )


def test_a_failed_import_that_left_a_table_marks_it_and_says_how_many_items_it_holds(ddb: Any) -> None:
    arn = _created(ddb)
    with pytest.raises(RestoreIncomplete) as failed:
        finish_import(ddb, _failed(), _source(10), "T2", Mark("b", "run1"), sleep=lambda _: None)
    assert str(failed.value) == (
        "T2: ImportTable FAILED imported 3 of the backup's 10 items with 0 error(s) (S3NoSuchKey; "
        "arn:aws:dynamodb:us-east-1:1:table/T2/import/01); the table is marked as a partial restore "
        f"({MARK_KEY}): delete it and restore again with --method write"
    )
    mark = read_mark(ddb, arn)
    assert mark is not None and (mark.backup, mark.run, mark.created) == ("b", "run1", True)


def test_an_incomplete_import_without_a_failure_code_points_at_its_log_group(ddb: Any) -> None:
    _created(ddb)
    with pytest.raises(RestoreIncomplete, match=r" with 2 error\(s\) \(see the import CloudWatch log group; arn:"):
        finish_import(ddb, _import(8, errors=2), _source(10), "T2", Mark("b", "run1"), sleep=lambda _: None)


def test_a_completed_import_gets_the_backups_tags_and_ttl_but_not_its_restore_mark(ddb: Any) -> None:
    arn = _created(ddb)
    src = _source(10)
    src.description = {
        "Table": {"TableName": "T"},
        "Tags": [{"Key": "team", "Value": "a"}, {"Key": MARK_KEY, "Value": "stale"}],
        "TimeToLive": {"TimeToLiveStatus": "ENABLED", "AttributeName": "exp"},
    }
    desc = {k: v for k, v in _import(10).items() if k != "ProcessedItemCount"}
    done = finish_import(ddb, desc, src, "T2", Mark("b", "run1"), sleep=lambda _: None)
    assert done == {"imported": 10, "errors": 0, "processed": 0, "settings": ["1 tag(s)", "TTL on exp"], "warnings": []}
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags["team"] == "a" and tags[MARK_KEY] != "stale"
    assert ddb.describe_time_to_live(TableName="T2")["TimeToLiveDescription"]["AttributeName"] == "exp"


def _described(**table: Any) -> dict[str, Any]:
    return {"Table": {"TableName": "T", "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                      "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], **table}}  # fmt: skip


def test_the_import_creates_the_table_as_the_backup_describes_it_less_what_import_cannot_take() -> None:
    src = _parts(*IMPORTABLE)
    index = {"IndexName": "g", "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "ALL"}, "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}  # fmt: skip
    src.description = _described(
        BillingModeSummary={"BillingMode": "PROVISIONED"},
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 6},
        SSEDescription={"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": "arn:k"},
        GlobalSecondaryIndexes=[index],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        TableClassSummary={"TableClass": "STANDARD_INFREQUENT_ACCESS"},
        DeletionProtectionEnabled=True,
    )
    created = import_args(src, "T2", None)["TableCreationParameters"]
    assert sorted(created) == ["AttributeDefinitions", "BillingMode", "GlobalSecondaryIndexes", "KeySchema",
                               "ProvisionedThroughput", "SSESpecification", "TableName"]  # fmt: skip
    assert created["TableName"] == "T2" and created["BillingMode"] == "PROVISIONED"
    src.description = _described(
        BillingModeSummary={"BillingMode": "PAY_PER_REQUEST"}, OnDemandThroughput={"MaxReadRequestUnits": 10}
    )
    assert import_args(src, "T2", None)["TableCreationParameters"]["OnDemandThroughput"] == {"MaxReadRequestUnits": 10}


def test_an_unknown_method_is_refused_naming_the_three_and_write_is_chosen_when_asked() -> None:
    with pytest.raises(BadInput, match=r"^method 'fast': choose auto, import or write$"):
        choose(FakeS3(), _parts(*IMPORTABLE), "T2", exists=False, method="fast")
    assert choose(FakeS3(), _parts(*IMPORTABLE), "T2", exists=False, method="write").method == "write"
    mixed = _parts(*IMPORTABLE, dialect="typed")
    mixed.parts[1] = PartRef(id="p1", url=IMPORTABLE[1], dialect="plain", items=1)
    assert _why(mixed).endswith(': its parts are not {"Item": ...} lines (plain, typed dialect)')


def test_a_planned_import_that_ended_is_finished_against_its_source_and_marked_with_its_backup(
    ddb: Any, tmp_path: Path
) -> None:
    path = tmp_path / "T.json"
    write_local_file(path, [{"k": {"S": f"k{n}"}} for n in range(4)], table="T", description=None, backup_id=BACKUP_ID)
    arn = _created(ddb, "T3")

    class Ended:
        def describe_import(self, ImportArn: str) -> dict[str, Any]:
            assert ImportArn == "arn:i"
            return {"ImportTableDescription": {**_import(4), "ImportArn": ImportArn}}

        def __getattr__(self, name: str) -> Any:
            return getattr(ddb, name)

    done = finish_planned(Ended(), None, {"target": "T3", "importArn": "arn:i", "source": str(path)}, "run7")
    assert (done["imported"], done["errors"], done["processed"]) == (4, 0, 4)
    mark = read_mark(ddb, arn)
    assert mark is not None and (mark.backup, mark.run, mark.created) == (BACKUP_ID, "run7", True)
    path2 = tmp_path / "U.json"
    write_local_file(path2, [{"k": {"S": "a"}}], table="T", description=None)
    _created(ddb, "T4")
    with pytest.raises(RestoreIncomplete, match=r"^T4: ImportTable COMPLETED imported 4 of the backup's 1 items"):
        finish_planned(Ended(), None, {"target": "T4", "importArn": "arn:i", "source": str(path2)}, "run7")
    assert read_mark(ddb, _created_arn(ddb, "T4")) is not None  # marked as a partial restore


BACKUP_ID = "20261201T100000Z-0123abcd"


def _created_arn(ddb: Any, name: str) -> str:
    return str(ddb.describe_table(TableName=name)["Table"]["TableArn"])


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])  # sorting after and before COMPLETED
def test_an_import_that_did_not_complete_fails_though_it_counted_every_item(ddb: Any, status: str) -> None:
    with pytest.raises(
        RestoreIncomplete, match=rf"^T2: ImportTable {status}: None: None \(arn:.*\); no table was left$"
    ):
        finish_import(
            ddb, {**_import(10), "ImportStatus": status}, _source(10), "T2", Mark("b", "r"), sleep=lambda _: None
        )
    _created(ddb)
    with pytest.raises(RestoreIncomplete, match=rf"^T2: ImportTable {status} imported 10 of the backup's 10 items"):
        finish_import(
            ddb, {**_import(10), "ImportStatus": status}, _source(10), "T2", Mark("b", "r"), sleep=lambda _: None
        )


def test_an_empty_backup_imported_without_counts_succeeds_and_every_tag_but_the_mark_is_kept(ddb: Any) -> None:
    arn = _created(ddb)
    src = _source(0)
    src.description = {
        "Table": {"TableName": "T"},
        "Tags": [{"Key": "app", "Value": "x"}, {"Key": MARK_KEY, "Value": "old"}],
    }
    desc = {"ImportStatus": "COMPLETED", "ImportArn": "arn:i"}
    done = finish_import(ddb, desc, src, "T2", Mark("b", "r"), sleep=lambda _: None)
    assert (done["imported"], done["errors"], done["processed"], done["settings"]) == (0, 0, 0, ["1 tag(s)"])
    tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn)["Tags"]}
    assert tags["app"] == "x"
