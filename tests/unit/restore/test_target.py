"""Restore targets on moto: created from the saved schema, or checked; every refusal names the table."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ddb_backup.aws import tables
from ddb_backup.aws.tables import describe
from ddb_backup.errors import BadInput, TargetRefused
from ddb_backup.restore import resume, target
from ddb_backup.restore.target import create_table_args, is_empty, map_table_name, prepare_target
from devkit import sample

GRANULE_KEYS = [{"AttributeName": "granuleId", "KeyType": "HASH", "AttributeType": "S"}]


def _rich_source(ddb) -> dict:
    """A provisioned table with GSI, LSI, stream, TTL, PITR and tags, described as a backup saves it."""
    ddb.create_table(
        TableName="prod-FilesTable",
        KeySchema=[{"AttributeName": "bucket", "KeyType": "HASH"}, {"AttributeName": "key", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "bucket", "AttributeType": "S"},
            {"AttributeName": "key", "AttributeType": "S"},
            {"AttributeName": "size", "AttributeType": "N"},
            {"AttributeName": "granuleId", "AttributeType": "S"},
        ],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 9},
        GlobalSecondaryIndexes=[
            {
                "IndexName": "granule-index",
                "KeySchema": [{"AttributeName": "granuleId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["size"]},
                "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": 4},
            }
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "size-index",
                "KeySchema": [
                    {"AttributeName": "bucket", "KeyType": "HASH"},
                    {"AttributeName": "size", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        SSESpecification={"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/restore-test"},
        Tags=[{"Key": "stack", "Value": "prod"}, {"Key": "owner", "Value": "cumulus"}],
    )
    ddb.update_time_to_live(
        TableName="prod-FilesTable", TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}
    )
    ddb.update_continuous_backups(
        TableName="prod-FilesTable", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    return describe(ddb, "prod-FilesTable")


def _shape(ddb, name: str) -> dict:
    t = ddb.describe_table(TableName=name)["Table"]
    return {
        "keys": t["KeySchema"],
        "attrs": sorted((a["AttributeName"], a["AttributeType"]) for a in t["AttributeDefinitions"]),
        "billing": t.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED"),
        "capacity": (t["ProvisionedThroughput"]["ReadCapacityUnits"], t["ProvisionedThroughput"]["WriteCapacityUnits"]),
        "gsi": [
            (g["IndexName"], g["KeySchema"], g["Projection"], g["ProvisionedThroughput"]["ReadCapacityUnits"])
            for g in t.get("GlobalSecondaryIndexes", [])
        ],
        "lsi": [(i["IndexName"], i["KeySchema"], i["Projection"]) for i in t.get("LocalSecondaryIndexes", [])],
        "stream": t.get("StreamSpecification"),
        "sse": (t.get("SSEDescription") or {}).get("SSEType"),
        "status": t["TableStatus"],
        "ttl": ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
        "pitr": ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"
        ]["PointInTimeRecoveryStatus"],
        "tags": sorted((x["Key"], x["Value"]) for x in ddb.list_tags_of_resource(ResourceArn=t["TableArn"])["Tags"]),
    }


def test_a_new_target_is_created_like_the_source_and_waited_for(ddb):
    description = _rich_source(ddb)
    result = prepare_target(ddb, "restore-FilesTable", description=description, source_table="prod-FilesTable")
    assert result["created"] and result["exists"]
    assert result["settings"] == ["TTL on expires", "PITR"]
    assert _shape(ddb, "restore-FilesTable") == _shape(ddb, "prod-FilesTable")
    assert _shape(ddb, "restore-FilesTable")["status"] == "ACTIVE"


def test_an_on_demand_source_gives_an_on_demand_target_without_capacity():
    args = create_table_args(
        "x-table",
        {
            "Table": {
                "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
                "TableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"},
                "SSEDescription": {"Status": "ENABLED", "SSEType": "AES256"},
            },
            "Tags": [],
        },
    )
    assert args == {
        "TableName": "x-table",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
        "TableClass": "STANDARD_INFREQUENT_ACCESS",
    }


@pytest.fixture
def granules(ddb):
    sample.create_cumulus_tables(ddb, "mystack-", {"Granules": 3})
    return describe(ddb, "mystack-GranulesTable")


def test_the_backups_own_source_is_refused_unless_allowed(ddb, granules):
    with pytest.raises(TargetRefused) as refused:
        prepare_target(ddb, "mystack-GranulesTable", description=granules, source_table="mystack-GranulesTable")
    assert str(refused.value) == (
        "table mystack-GranulesTable is the backup's own source table: restore into another table, "
        "or allow the source explicitly (allowSource / --allow-source)"
    )
    result = prepare_target(
        ddb,
        "mystack-GranulesTable",
        description=granules,
        source_table="mystack-GranulesTable",
        allow_source=True,
        mode="overwrite",
    )
    assert result["exists"] and not result["created"]


def test_a_non_empty_target_is_refused_unless_overwrite_is_chosen(ddb, granules):
    # The backup's own table (allowed explicitly: its ARN is the description's) is the non-empty table at hand.
    with pytest.raises(TargetRefused) as refused:
        prepare_target(ddb, "mystack-GranulesTable", description=granules, allow_source=True)
    assert str(refused.value) == (
        "table mystack-GranulesTable is not empty: restore into a new or empty table, "
        "or choose mode 'overwrite' to upsert into it"
    )
    assert prepare_target(ddb, "mystack-GranulesTable", description=granules, mode="overwrite", allow_source=True)[
        "exists"
    ]


def test_an_existing_empty_target_with_the_same_keys_is_accepted(ddb, granules):
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    result = prepare_target(ddb, "restore-GranulesTable", description=granules)
    assert (result["exists"], result["created"]) == (True, False)
    assert result["keySchema"] == GRANULE_KEYS


@pytest.mark.parametrize("check_only", [False, True])
def test_an_existing_target_is_marked_for_this_run_unless_only_checked(ddb, granules, check_only):
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    result = prepare_target(
        ddb, "restore-GranulesTable", description=granules, mark=resume.Mark("b2", "r2"), check_only=check_only
    )
    assert (result["table"], result["exists"], result["created"]) == ("restore-GranulesTable", True, False)
    arn = ddb.describe_table(TableName="restore-GranulesTable")["Table"]["TableArn"]
    assert resume.read_mark(ddb, arn) == (None if check_only else resume.Mark("b2", "r2", created=False))
    assert resume.read_mark(ddb, granules["Table"]["TableArn"]) is None  # the source is left alone


def test_an_existing_target_with_other_keys_is_refused_naming_both(ddb, granules):
    sample.create_table(ddb, "restore-GranulesTable", [("granuleId", "HASH"), ("version", "RANGE")])
    with pytest.raises(
        TargetRefused, match=r"restore-GranulesTable has keys granuleId HASH \(S\), version RANGE \(S\), "
    ):
        prepare_target(ddb, "restore-GranulesTable", description=granules)


def test_a_key_of_another_type_is_refused(ddb):
    ddb.create_table(
        TableName="restore-T",
        KeySchema=[{"AttributeName": "granuleId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "granuleId", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(TargetRefused, match=r"granuleId HASH \(N\), the backup has granuleId HASH \(S\)"):
        prepare_target(ddb, "restore-T", key_schema=GRANULE_KEYS)


def test_without_a_schema_a_missing_target_is_refused_or_made_from_given_keys(ddb):
    with pytest.raises(TargetRefused, match=r"table restore-T does not exist and the backup carries no schema"):
        prepare_target(ddb, "restore-T")
    result = prepare_target(ddb, "restore-T", key_schema=GRANULE_KEYS)
    assert (result["table"], result["exists"], result["created"]) == ("restore-T", True, True)
    assert result["keySchema"] == GRANULE_KEYS
    table = ddb.describe_table(TableName="restore-T")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "granuleId", "KeyType": "HASH"}]


def test_without_a_schema_an_existing_target_is_checked_for_emptiness_only(ddb, granules):
    with pytest.raises(TargetRefused, match=r"not empty"):
        prepare_target(ddb, "mystack-GranulesTable")
    assert prepare_target(ddb, "mystack-GranulesTable", mode="overwrite")["keySchema"] == GRANULE_KEYS


def test_check_only_creates_nothing(ddb, granules):
    result = prepare_target(ddb, "restore-GranulesTable", description=granules, check_only=True)
    assert (result["table"], result["exists"], result["created"]) == ("restore-GranulesTable", False, False)
    assert result["keySchema"] == GRANULE_KEYS  # the keys it would be created with
    assert "restore-GranulesTable" not in ddb.list_tables()["TableNames"]


def test_a_table_created_meanwhile_is_checked_instead(ddb, granules, monkeypatch):
    real = ddb.create_table

    def racing(**kwargs):
        real(**kwargs)  # someone else (a retried plan) was first
        return real(**kwargs)

    monkeypatch.setattr(ddb, "create_table", racing)
    result = prepare_target(ddb, "restore-GranulesTable", description=granules)
    assert result["exists"] and not result["created"]


def test_a_table_created_meanwhile_with_other_keys_is_refused(ddb, granules, monkeypatch):
    real = ddb.create_table

    def racing(**kwargs):
        other = {"KeySchema": [{"AttributeName": "other", "KeyType": "HASH"}], "BillingMode": "PAY_PER_REQUEST"}
        real(
            TableName=kwargs["TableName"],
            AttributeDefinitions=[{"AttributeName": "other", "AttributeType": "N"}],
            **other,
        )
        return real(**kwargs)

    monkeypatch.setattr(ddb, "create_table", racing)
    with pytest.raises(TargetRefused, match=r"^table restore-GranulesTable has keys other HASH \(N\), the backup has "):
        prepare_target(ddb, "restore-GranulesTable", description=granules)


def test_the_deleted_source_restored_under_its_own_name_is_checked_as_allowed_when_created_meanwhile(
    ddb, granules, monkeypatch
):
    """Disaster recovery: the source is gone, the restore is allowed into its name, and a retried plan was first."""
    ddb.delete_table(TableName="mystack-GranulesTable")
    real = ddb.create_table

    def racing(**kwargs):
        real(**kwargs)
        return real(**kwargs)

    monkeypatch.setattr(ddb, "create_table", racing)
    result = prepare_target(
        ddb, "mystack-GranulesTable", description=granules, source_table="mystack-GranulesTable", allow_source=True
    )
    assert (result["exists"], result["created"]) == (True, False)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ([{"AttributeName": "a", "KeyType": "HASH"}], "give AttributeName, KeyType"),
        ([{"AttributeName": "a", "KeyType": "HASH", "AttributeType": "M"}], "AttributeType S, N or B"),
        ([{"AttributeName": "a", "KeyType": "RANGE", "AttributeType": "S"}], "one HASH key"),
    ],
)
def test_bad_given_keys_are_named(ddb, keys, message):
    with pytest.raises(BadInput, match=message):
        prepare_target(ddb, "restore-T", key_schema=keys)


def test_bad_mode_and_names_are_refused(ddb):
    with pytest.raises(BadInput, match=r"mode 'upsert'"):
        prepare_target(ddb, "restore-T", mode="upsert")
    with pytest.raises(BadInput, match=r"not a valid DynamoDB table name"):
        prepare_target(ddb, "x")


def test_emptiness_is_seen_by_a_one_item_scan(ddb, granules):
    assert not is_empty(ddb, "mystack-GranulesTable")
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    assert is_empty(ddb, "restore-GranulesTable")


def test_names_map_by_the_first_prefix_that_applies():
    mapping = [("prod-", "restore-"), ("prod-x", "never-"), ("mystack-", "mystack-restored-")]
    assert map_table_name("prod-GranulesTable", mapping) == "restore-GranulesTable"
    assert map_table_name("mystack-RulesTable", mapping) == "mystack-restored-RulesTable"
    assert map_table_name("anything", []) == "anything"
    with pytest.raises(BadInput) as refused:
        map_table_name("other-T", mapping)
    assert str(refused.value) == (
        "table other-T: no name mapping applies to it (prod-->restore-, prod-x->never-, mystack-->mystack-restored-)"
    )
    with pytest.raises(BadInput, match=r"not a valid DynamoDB table name"):
        map_table_name("prod-T", [("prod-", "bad name ")])


def test_a_new_table_that_refuses_pitr_for_now_is_restored_with_a_warning(ddb):
    description = _rich_source(ddb)
    refused = []

    def not_yet(**_):
        refused.append(1)
        return _Http(400), {
            "Error": {"Code": "ContinuousBackupsUnavailableException", "Message": "Backups are being enabled"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }

    ddb.meta.events.register("before-call.dynamodb.UpdateContinuousBackups", not_yet)
    slept: list[float] = []
    result = prepare_target(
        ddb, "restore-FilesTable", description=description, settings_patience=0.05, sleep=slept.append
    )
    assert result["created"] and result["settings"] == ["TTL on expires"]
    assert result["warnings"] == [
        "table restore-FilesTable: PITR is not on yet (ContinuousBackupsUnavailableException, usual for a new table): "
        "turn it on later"
    ]
    assert len(refused) >= 1


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""


def _scan_pages(*pages: dict) -> tuple[Any, Stubber]:
    """A client whose Scans answer ``pages`` in order (DynamoDB's empty pages with a LastEvaluatedKey; moto sends none)."""
    ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(ddb)
    for page in pages:
        stubber.add_response("scan", page)
    stubber.activate()
    return ddb, stubber


_MORE = {"Count": 0, "ScannedCount": 0, "LastEvaluatedKey": {"granuleId": {"S": "g"}}}


def test_an_empty_page_with_a_last_evaluated_key_is_not_taken_for_an_empty_table():
    ddb, stubber = _scan_pages(_MORE, _MORE, {"Count": 1, "ScannedCount": 1})
    assert is_empty(ddb, "restore-GranulesTable") is False
    stubber.assert_no_pending_responses()  # it read on to the page that holds the item


def test_a_table_is_empty_only_when_the_scan_ends():
    ddb, stubber = _scan_pages(_MORE, _MORE, {"Count": 0, "ScannedCount": 0})
    assert is_empty(ddb, "restore-GranulesTable") is True
    stubber.assert_no_pending_responses()


def test_a_scan_that_never_ends_within_its_page_budget_is_not_called_empty():
    ddb, _ = _scan_pages(*[_MORE] * 1000)
    assert is_empty(ddb, "restore-GranulesTable") is False


def test_emptiness_asks_dynamodb_for_a_count_of_one_item_per_page():
    ddb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(ddb)
    first = {"TableName": "restore-T", "Limit": 1, "Select": "COUNT"}
    stubber.add_response("scan", _MORE, first)
    stubber.add_response(
        "scan", {"Count": 0, "ScannedCount": 0}, {**first, "ExclusiveStartKey": _MORE["LastEvaluatedKey"]}
    )
    stubber.activate()
    assert is_empty(ddb, "restore-T") is True  # the Stubber refuses any other request shape
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("order", [("HASH", "RANGE"), ("RANGE", "HASH")])
def test_given_keys_of_number_and_binary_type_in_either_order_are_taken_hash_first(ddb, order):
    given = {
        "HASH": {"AttributeName": "h", "KeyType": "HASH", "AttributeType": "N"},
        "RANGE": {"AttributeName": "a", "KeyType": "RANGE", "AttributeType": "B"},
    }
    result = prepare_target(ddb, "restore-T", key_schema=[given[k] for k in order], check_only=True)
    assert result["keySchema"] == [given["HASH"], given["RANGE"]]


@pytest.mark.parametrize(("status", "waits"), [("ACTIVE", False), ("UPDATING", False), ("CREATING", True)])
def test_a_target_being_created_or_updated_is_usable_and_one_being_created_is_waited_for(
    ddb, status, waits, monkeypatch
):
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    _report_status(monkeypatch, status)
    waited: list[str] = []
    monkeypatch.setattr(target, "_wait_active", lambda _ddb, name, *_: waited.append(name) or {})
    assert prepare_target(ddb, "restore-GranulesTable", key_schema=GRANULE_KEYS)["exists"]
    assert waited == (["restore-GranulesTable"] if waits else [])


def test_a_target_being_deleted_is_refused_naming_its_status(ddb, monkeypatch):
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    _report_status(monkeypatch, "DELETING")
    with pytest.raises(TargetRefused, match=r"^table restore-GranulesTable is DELETING, not usable as a target$"):
        prepare_target(ddb, "restore-GranulesTable", key_schema=GRANULE_KEYS)


def test_a_create_table_refused_by_dynamodb_names_the_table_code_and_message(ddb, monkeypatch):
    def refuse(**_: Any) -> None:
        error = {"Error": {"Code": "LimitExceededException", "Message": "too many tables"}}
        raise ClientError(error, "CreateTable")

    monkeypatch.setattr(ddb, "create_table", refuse)
    with pytest.raises(
        TargetRefused, match=r"^table restore-T could not be created: LimitExceededException: too many tables$"
    ):
        prepare_target(ddb, "restore-T", key_schema=GRANULE_KEYS)


def _report_status(monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    """DescribeTable answers with ``status`` (moto's tables are ACTIVE at once)."""
    real = tables.describe_table

    def with_status(ddb: Any, name: str) -> dict[str, Any] | None:
        found = real(ddb, name)
        return {**found, "TableStatus": status} if found else found

    monkeypatch.setattr(tables, "describe_table", with_status)


_KEYS = {
    "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
}
_GSI = {"IndexName": "g", "KeySchema": _KEYS["KeySchema"], "Projection": {"ProjectionType": "ALL"}}


def test_an_on_demand_source_keeps_its_throughput_caps_on_the_table_and_each_index():
    caps = {"MaxReadRequestUnits": 50, "MaxWriteRequestUnits": 20}
    table = {
        **_KEYS,
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "OnDemandThroughput": caps,
        "GlobalSecondaryIndexes": [{**_GSI, "OnDemandThroughput": caps, "ProvisionedThroughput": {}}],
    }
    args = create_table_args("x-table", {"Table": table})
    assert args["OnDemandThroughput"] == caps
    assert args["GlobalSecondaryIndexes"] == [{**_GSI, "OnDemandThroughput": caps}]
    assert "OnDemandThroughput" not in create_table_args("x-table", {"Table": {**table, "BillingModeSummary": None}})


def test_a_source_without_a_billing_summary_is_provisioned_with_at_least_one_unit_each_way():
    table = {**_KEYS, "ProvisionedThroughput": {"ReadCapacityUnits": 0}, "GlobalSecondaryIndexes": [_GSI]}
    args = create_table_args("x-table", {"Table": table})
    one = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    assert (args["BillingMode"], args["ProvisionedThroughput"]) == ("PROVISIONED", one)
    assert args["GlobalSecondaryIndexes"] == [{**_GSI, "ProvisionedThroughput": one}]


@pytest.mark.parametrize("status", ["ENABLED", "ENABLING", "UPDATING"])
def test_a_kms_encrypted_source_gives_a_target_encrypted_with_the_same_key(status):
    sse = {"Status": status, "SSEType": "KMS", "KMSMasterKeyArn": "arn:aws:kms:us-east-1:1:key/k"}
    args = create_table_args("x-table", {"Table": {**_KEYS, "SSEDescription": sse}})
    assert args["SSESpecification"] == {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": sse["KMSMasterKeyArn"]}
    without_key = {**sse, "KMSMasterKeyArn": None}
    args = create_table_args("x-table", {"Table": {**_KEYS, "SSEDescription": without_key}})
    assert args["SSESpecification"] == {"Enabled": True, "SSEType": "KMS"}
    disabling = {**sse, "Status": "DISABLING"}
    assert "SSESpecification" not in create_table_args("x-table", {"Table": {**_KEYS, "SSEDescription": disabling}})


def test_the_stream_is_turned_on_with_its_view_type_and_only_real_tags_are_copied():
    stream = {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    tags = [{"Key": "a", "Value": "1"}, {"Key": resume.MARK_KEY, "Value": "run"}, {"Value": "keyless"}]
    args = create_table_args("x-table", {"Table": {**_KEYS, "StreamSpecification": stream}, "Tags": tags})
    assert args["StreamSpecification"] == stream
    assert args["Tags"] == [{"Key": "a", "Value": "1"}]


# ------------------------------------------------------------------ resuming a marked target (issue 17 survivors)
_STALE_MARK = {"Key": resume.MARK_KEY, "Value": "backup=old-backup run=old-run created=no"}


def _marked_target(ddb: Any, description: dict, mark: resume.Mark) -> list[list[dict]]:
    """``restore-FilesTable`` as an earlier run left it: made (without TTL or PITR) and marked.

    Returns the Tags of every TagResource call made from then on: moto keeps a re-tagged key twice
    instead of replacing its value as DynamoDB does, so the calls, not ListTagsOfResource, show the new mark.
    """
    args = create_table_args("restore-FilesTable", description)
    if mark.created:
        ddb.create_table(**{**args, "Tags": [*args.get("Tags", []), mark.tag()]})
    else:
        ddb.create_table(**{**args, "Tags": [{"Key": "theirs", "Value": "1"}]})
        resume.set_mark(ddb, ddb.describe_table(TableName="restore-FilesTable")["Table"]["TableArn"], mark)
    tagged: list[list[dict]] = []
    ddb.meta.events.register(
        "provide-client-params.dynamodb.TagResource", lambda params, **_: tagged.append(params["Tags"])
    )
    return tagged


def _marks(tagged: list[list[dict]]) -> list[resume.Mark]:
    """The marks those TagResource calls put on, in order."""
    return [resume.Mark.parse(t["Value"]) for tags in tagged for t in tags if t["Key"] == resume.MARK_KEY]


def _resume(ddb: Any, description: dict, **kwargs: Any) -> dict:
    """prepare_target of restore-FilesTable by run r2 of backup b2."""
    return prepare_target(
        ddb, "restore-FilesTable", description=description, mark=resume.Mark("b2", "r2"), sleep=lambda _: None, **kwargs
    )


def _partial() -> str:
    """How the resume warning names what run r1 of backup b2 (the one this run restores) left."""
    return "table restore-FilesTable holds a partial restore of backup b2, from run r1"


def test_another_runs_created_target_is_finished_with_every_dropped_setting_and_never_the_sources_mark(ddb):
    description = _rich_source(ddb)
    description["Tags"].append(_STALE_MARK)  # the source was itself a restore in progress when backed up
    tagged = _marked_target(ddb, description, resume.Mark("b2", "r1", created=True))
    result = _resume(ddb, description, mode="overwrite")
    applied = ["2 tag(s)", "TTL on expires", "stream NEW_AND_OLD_IMAGES", "PITR"]
    assert result == {
        "table": "restore-FilesTable",
        "exists": True,
        "created": True,
        "keySchema": result["keySchema"],
        "settings": applied,
        "warnings": [
            f"{_partial()}: resuming it (settings applied: {', '.join(applied)}); every item is written again"
        ],
    }
    # The mark now names this run, keeps "created", and is not the stale one the source's tags carried.
    assert _marks(tagged) == [resume.Mark("b2", "r2", created=True)]
    assert sorted(t["Key"] for tags in tagged for t in tags if t["Key"] != resume.MARK_KEY) == ["owner", "stack"]


def test_another_runs_mark_on_a_table_it_did_not_create_is_replaced_and_no_setting_is_touched(ddb):
    description = _rich_source(ddb)
    tagged = _marked_target(ddb, description, resume.Mark("b2", "r1", created=False))
    result = _resume(ddb, description, mode="overwrite")
    assert (result["table"], result["exists"], result["created"], result["settings"]) == (
        "restore-FilesTable",
        True,
        False,
        [],
    )
    assert result["warnings"] == [f"{_partial()}: resuming it; every item is written again"]
    assert tagged == [[resume.Mark("b2", "r2", created=False).tag()]]  # the new mark, and nothing copied
    shape = _shape(ddb, "restore-FilesTable")
    assert (shape["ttl"]["TimeToLiveStatus"], shape["pitr"]) == ("DISABLED", "DISABLED")


def test_a_retried_plan_of_the_same_run_gives_its_table_only_what_create_table_lacks(ddb):
    description = _rich_source(ddb)
    tagged = _marked_target(ddb, description, resume.Mark("b2", "r2", created=True))
    result = _resume(ddb, description, mode="new")
    assert (result["exists"], result["created"]) == (True, True)
    assert (result["settings"], result["warnings"]) == (["TTL on expires", "PITR"], [])
    assert tagged == []  # its mark stays as it is until the restore is complete; its tags came with CreateTable
    arn = ddb.describe_table(TableName="restore-FilesTable")["Table"]["TableArn"]
    assert resume.read_mark(ddb, arn) == resume.Mark("b2", "r2", created=True)


@pytest.mark.parametrize("run", ["r1", "r2"])
def test_checking_a_marked_target_reports_it_exactly_and_changes_nothing(ddb, run):
    description = _rich_source(ddb)
    tagged = _marked_target(ddb, description, resume.Mark("b2", run, created=True))
    result = _resume(ddb, description, mode="overwrite", check_only=True)
    assert result == {
        "table": "restore-FilesTable",
        "exists": True,
        "created": False,
        "keySchema": result["keySchema"],
        "settings": [],
        "warnings": [],
    }
    assert [k["AttributeName"] for k in result["keySchema"]] == ["bucket", "key"]
    assert tagged == []


def _refuse(ddb: Any, operation: str, code: str) -> None:
    """``operation`` answers ``code``, a DynamoDB "not yet", every time."""

    def not_yet(**_: Any) -> tuple[_Http, dict]:
        return _Http(400), {"Error": {"Code": code, "Message": "not yet"}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    ddb.meta.events.register(f"before-call.dynamodb.{operation}", not_yet)


def test_a_ttl_still_refused_is_named_with_table_attribute_and_cause_after_the_resume_warning(ddb):
    description = _rich_source(ddb)
    _marked_target(ddb, description, resume.Mark("b2", "r1", created=True))
    _refuse(ddb, "UpdateTimeToLive", "LimitExceededException")
    result = _resume(ddb, description, mode="overwrite", settings_patience=0.05)
    assert result["settings"] == ["2 tag(s)", "stream NEW_AND_OLD_IMAGES", "PITR"]
    assert result["warnings"] == [
        f"{_partial()}: resuming it (settings applied: 2 tag(s), stream NEW_AND_OLD_IMAGES, PITR); "
        "every item is written again",
        "table restore-FilesTable: TTL on expires is not on yet (LimitExceededException): turn it on later",
    ]


def test_pitr_not_enabled_after_its_update_is_named_by_the_reason(ddb):
    description = _rich_source(ddb)

    def enabling(**_: Any) -> tuple[_Http, dict]:
        status = {"PointInTimeRecoveryStatus": "ENABLING"}
        return _Http(200), {
            "ContinuousBackupsDescription": {
                "ContinuousBackupsStatus": "ENABLED",
                "PointInTimeRecoveryDescription": status,
            }
        }

    ddb.meta.events.register("before-call.dynamodb.UpdateContinuousBackups", enabling)
    result = prepare_target(
        ddb, "restore-FilesTable", description=description, settings_patience=0.05, sleep=lambda _: None
    )
    assert result["warnings"] == [
        "table restore-FilesTable: PITR is not on yet (PITR is ENABLING after the update, usual for a new table): "
        "turn it on later"
    ]


def test_the_source_table_is_named_by_arn_and_creation_time_only_when_both_match(ddb, granules):
    arn, created = granules["Table"]["TableArn"], granules["Table"]["CreationDateTime"]
    renamed = {**granules, "Table": {**granules["Table"], "TableName": "someone-elses-table"}}
    with pytest.raises(TargetRefused) as refused:
        prepare_target(ddb, "mystack-GranulesTable", description=renamed, mode="overwrite")
    actual = ddb.describe_table(TableName="mystack-GranulesTable")["Table"]["CreationDateTime"]
    assert str(refused.value) == (
        f"table mystack-GranulesTable is the table this backup was taken from (same ARN {arn} and creation time, "
        f"created {actual}), whatever table name the backup records: restore into another table, "
        "or allow the source explicitly (allowSource / --allow-source)"
    )
    # Deleted and made again under the same name: the same ARN, another table.
    earlier = {**renamed, "Table": {**renamed["Table"], "CreationDateTime": "2020-01-01T00:00:00+00:00"}}
    assert earlier["Table"]["CreationDateTime"] != created
    with pytest.raises(TargetRefused, match=rf"\(same ARN {arn} , created "):
        prepare_target(ddb, "mystack-GranulesTable", description=earlier, mode="overwrite")
    # A saved creation time that cannot be read is not claimed to match.
    unreadable = {**renamed, "Table": {**renamed["Table"], "CreationDateTime": "yesterday"}}
    with pytest.raises(TargetRefused, match=rf"\(same ARN {arn} , created "):
        prepare_target(ddb, "mystack-GranulesTable", description=unreadable, mode="overwrite")


def _create_table_tags(ddb: Any) -> list[list[dict]]:
    """The Tags of every CreateTable call made from now on."""
    sent: list[list[dict]] = []
    ddb.meta.events.register(
        "provide-client-params.dynamodb.CreateTable", lambda params, **_: sent.append(params.get("Tags", []))
    )
    return sent


def test_a_table_it_creates_is_marked_by_create_table_itself_beside_the_sources_tags(ddb):
    description = _rich_source(ddb)
    sent = _create_table_tags(ddb)
    prepare_target(ddb, "restore-FilesTable", description=description, mark=resume.Mark("b2", "r2"))
    mark = resume.Mark("b2", "r2", created=True)
    assert sent == [[{"Key": "stack", "Value": "prod"}, {"Key": "owner", "Value": "cumulus"}, mark.tag()]]
    arn = ddb.describe_table(TableName="restore-FilesTable")["Table"]["TableArn"]
    assert resume.read_mark(ddb, arn) == mark
    # A source without a schema has no tags to copy: the mark alone.
    prepare_target(ddb, "restore-T", key_schema=GRANULE_KEYS, mark=resume.Mark("b2", "r2"))
    assert sent[1:] == [[mark.tag()]]


def test_a_table_it_creates_is_created_as_adjusted_and_still_marked(ddb):
    seen: list[dict] = []

    def provisioned(args: dict) -> dict:
        seen.append(dict(args))
        capacity = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 6}
        return {**args, "BillingMode": "PROVISIONED", "ProvisionedThroughput": capacity, "Tags": []}

    prepare_target(ddb, "restore-T", key_schema=GRANULE_KEYS, mark=resume.Mark("b2", "r2"), adjust=provisioned)
    assert [a["TableName"] for a in seen] == ["restore-T"]
    assert seen[0]["BillingMode"] == "PAY_PER_REQUEST"  # it is given what would be created
    table = ddb.describe_table(TableName="restore-T")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert (
        table["ProvisionedThroughput"]["ReadCapacityUnits"],
        table["ProvisionedThroughput"]["WriteCapacityUnits"],
    ) == (5, 6)
    assert resume.read_mark(ddb, table["TableArn"]) == resume.Mark("b2", "r2", created=True)


def test_another_backups_unfinished_target_is_refused_in_mode_overwrite_naming_both(ddb):
    """Finishing backup b1's restore with b2 would leave items of both (issue 24 point 2); a mirror may (it deletes)."""
    description = _rich_source(ddb)
    tagged = _marked_target(ddb, description, resume.Mark("b1", "r1", created=True))
    with pytest.raises(TargetRefused) as refused:
        _resume(ddb, description, mode="overwrite")
    assert str(refused.value).startswith(
        "table restore-FilesTable holds a partial restore of backup b1, from run r1; this run restores backup b2: "
        "finishing one with the other would leave items of both, nothing was written: "
    )
    assert tagged == []
    assert _resume(ddb, description, mode="mirror")["warnings"][0].startswith(
        "table restore-FilesTable holds a partial restore of backup b1, from run r1: resuming it"
    )


def test_a_caller_without_a_mark_of_its_own_checks_a_marked_target_as_any_other(ddb):
    description = _rich_source(ddb)
    tagged = _marked_target(ddb, description, resume.Mark("b2", "r1", created=True))
    result = prepare_target(ddb, "restore-FilesTable", description=description, mode="overwrite")
    assert (result["exists"], result["created"], result["settings"], result["warnings"]) == (True, False, [], [])
    assert tagged == []


# ------------------------------------------------------------------ how often a new table is polled and its settings retried
def _full_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff waits its whole step (the random part at its top), so the schedule can be compared exactly."""
    monkeypatch.setattr("ddb_backup.aws.retry.random.uniform", lambda _low, high: high)


def _creating_for(monkeypatch: pytest.MonkeyPatch, polls: int) -> None:
    """After CreateTable, DescribeTable says CREATING ``polls`` times (moto's tables are ACTIVE at once)."""
    real, seen = tables.describe_table, [0]

    def creating(ddb: Any, name: str) -> dict[str, Any] | None:
        found = real(ddb, name)
        if found is None or seen[0] >= polls:
            return found
        seen[0] += 1
        return {**found, "TableStatus": "CREATING"}

    monkeypatch.setattr(tables, "describe_table", creating)


def test_a_table_being_created_is_polled_from_a_twentieth_of_a_second_up_to_five_seconds_apart(ddb, monkeypatch):
    _full_steps(monkeypatch)
    _creating_for(monkeypatch, 9)
    slept: list[float] = []
    result = prepare_target(ddb, "restore-T", key_schema=GRANULE_KEYS, sleep=slept.append)
    assert result["created"]
    assert slept == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_a_table_that_stays_creating_is_refused_naming_the_table_the_time_and_its_status(ddb, granules, monkeypatch):
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    _report_status(monkeypatch, "CREATING")
    with pytest.raises(TargetRefused) as refused:
        prepare_target(ddb, "restore-GranulesTable", description=granules, timeout=2.0, sleep=lambda _: None)
    assert str(refused.value) == "table restore-GranulesTable is not ACTIVE after 2 s (status CREATING)"


def test_a_setting_a_new_table_refuses_for_now_is_retried_from_one_second_up_to_ten_apart(ddb, monkeypatch):
    description = _rich_source(ddb)
    _full_steps(monkeypatch)
    refusals = [6]

    def not_yet(**_: Any) -> tuple[_Http, dict] | None:
        if not refusals[0]:
            return None  # then DynamoDB takes it
        refusals[0] -= 1
        error = {"Code": "LimitExceededException", "Message": "not yet"}
        return _Http(400), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    ddb.meta.events.register("before-call.dynamodb.UpdateTimeToLive", not_yet)
    slept: list[float] = []
    result = prepare_target(ddb, "restore-FilesTable", description=description, sleep=slept.append)
    assert (result["settings"], result["warnings"]) == (["TTL on expires", "PITR"], [])
    assert slept == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0])


def test_another_runs_unfinished_target_is_refused_in_mode_new_naming_how_to_resume(ddb):
    description = _rich_source(ddb)
    tagged = _marked_target(ddb, description, resume.Mark("b2", "r1", created=True))
    with pytest.raises(TargetRefused) as refused:
        _resume(ddb, description, mode="new")
    assert str(refused.value) == (
        f"{_partial()}; it did not finish: rerun the restore with mode 'overwrite' to finish it"
    )
    assert tagged == []


def test_a_table_that_never_becomes_active_is_waited_for_ten_minutes_by_default(ddb, granules, monkeypatch):
    sample.create_table(ddb, "restore-GranulesTable", sample.CUMULUS_TABLES["Granules"])
    _report_status(monkeypatch, "CREATING")
    now = [0.0]
    fake = classmethod(lambda cls, seconds, **kw: cls(deadline=now[0] + seconds, clock=lambda: now[0], **kw))
    monkeypatch.setattr(target.Retry, "within", fake)  # a clock the sleeps move: ten minutes in no time

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(
        TargetRefused, match=r"^table restore-GranulesTable is not ACTIVE after 600 s \(status CREATING\)$"
    ):
        prepare_target(ddb, "restore-GranulesTable", description=granules, sleep=sleep)
    assert 595 < now[0] <= 600


def test_a_setting_still_refused_is_given_up_within_a_minute_by_default(ddb, monkeypatch):
    description = _rich_source(ddb)
    _refuse(ddb, "UpdateContinuousBackups", "ContinuousBackupsUnavailableException")
    now = [0.0]
    fake = classmethod(lambda cls, seconds, **kw: cls(deadline=now[0] + seconds, clock=lambda: now[0], **kw))
    monkeypatch.setattr(target.Retry, "within", fake)  # a clock the sleeps move
    # Each wait at 16 % of its random range: 0.58, 1.16, 2.32, 4.64, then 5.8 s; the tries end at 55.1 s,
    # the last one that fits in 60 s (one more would end at 60.9 s).
    monkeypatch.setattr("ddb_backup.aws.retry.random.uniform", lambda low, high: low + 0.16 * (high - low))

    def sleep(seconds: float) -> None:
        now[0] += seconds

    result = prepare_target(ddb, "restore-FilesTable", description=description, sleep=sleep)
    assert result["settings"] == ["TTL on expires"]
    assert [w.split(" (")[0] for w in result["warnings"]] == ["table restore-FilesTable: PITR is not on yet"]
    assert now[0] == pytest.approx(55.1)
