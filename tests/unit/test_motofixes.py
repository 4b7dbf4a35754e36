"""What the local stack corrects in moto where DynamoDB behaves otherwise (devkit.motofixes)."""

from __future__ import annotations

from typing import Any

from ddb_backup.aws.clients import client
from devkit.emulator import LocalStack


def _tags(ddb: Any, arn: str) -> list[dict[str, str]]:
    return sorted(ddb.list_tags_of_resource(ResourceArn=arn)["Tags"], key=lambda t: t["Key"])


def test_a_key_tagged_again_takes_the_new_value_as_on_dynamodb() -> None:
    with LocalStack():
        ddb = client("dynamodb")
        ddb.create_table(
            TableName="tagged-Table",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "mark", "Value": "run-1"}, {"Key": "team", "Value": "ops"}],
        )
        arn = ddb.describe_table(TableName="tagged-Table")["Table"]["TableArn"]
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "mark", "Value": "run-2"}, {"Key": "new", "Value": "x"}])
        assert _tags(ddb, arn) == [
            {"Key": "mark", "Value": "run-2"},
            {"Key": "new", "Value": "x"},
            {"Key": "team", "Value": "ops"},
        ]
