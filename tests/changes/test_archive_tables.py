"""The change archive for several tables (ChangeArchiveTables: names and prefix* patterns) on the local stack."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.changes import archive
from ddb_backup.errors import DdbBackupError
from devkit.emulator import LocalStack
from tests.changes.test_model import create_table

#: Named without a stream, named with a NEW_IMAGE stream, and one matching the prefix (no stream).
TABLES = {"alpha-Table": None, "beta-Table": "NEW_IMAGE", "pre-One": None}
PARAMETER = "alpha-Table,beta-Table,pre-*"


def _create_tables() -> None:
    for name, stream in TABLES.items():
        create_table(client("dynamodb"), name, stream)
    create_table(client("dynamodb"), "unrelated-Table", None)


@pytest.fixture
def archiving() -> Iterator[LocalStack]:
    stack = LocalStack(before_deploy=_create_tables)
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": PARAMETER}
    with stack:
        yield stack


def _put(table: str, pk: str) -> None:
    client("dynamodb").put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"N": "1"}})


def _archived(stack: LocalStack, table: str) -> set[str]:
    """The partition keys of every change archived for ``table`` (under its own <table>/changes/), once the
    mappings delivered what the streams hold."""
    stack.streams.deliver()
    s3, bucket = client("s3"), stack.outputs["BackupBucketName"]
    prefix = stack.functions[next(iter(stack.functions))].environment.get("BACKUP_PREFIX", "")
    keys = set()
    for key in archive.list_keys(s3, bucket, f"{prefix}{table}/changes/"):
        if key.endswith(".jsonl.gz"):
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            keys |= {json.loads(line)["Keys"]["pk"]["S"] for line in body.splitlines() if line.strip()}
    return keys


def _mappings(stack: LocalStack) -> list[dict[str, Any]]:
    """The archiver's event source mappings (listed by its ARN, as the custom resource made them)."""
    arn = f"arn:aws:lambda:{stack.region}:123456789012:function:{stack.physical['ArchiveChangesFunction']}"
    return list(client("lambda").list_event_source_mappings(FunctionName=arn)["EventSourceMappings"])


def _stream_mappings(stack: LocalStack) -> list[str]:
    return sorted(m["EventSourceArn"] for m in _mappings(stack) if ":dynamodb:" in m["EventSourceArn"])


def test_named_and_prefixed_tables_are_each_archived_under_their_own_prefix(archiving: LocalStack) -> None:
    ddb = client("dynamodb")
    for table in TABLES:
        _put(table, f"{table}-1")
    _put("unrelated-Table", "unrelated-1")
    for table in TABLES:
        assert _archived(archiving, table) == {f"{table}-1"}
    assert _archived(archiving, "unrelated-Table") == set()
    views = {t: ddb.describe_table(TableName=t)["Table"]["StreamSpecification"]["StreamViewType"] for t in TABLES}
    assert views == {"alpha-Table": "NEW_AND_OLD_IMAGES", "beta-Table": "NEW_IMAGE", "pre-One": "NEW_AND_OLD_IMAGES"}
    stream = next(m for m in _mappings(archiving) if ":dynamodb:" in m["EventSourceArn"])
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["MaximumRecordAgeInSeconds"] == 23 * 3600  # under the stream's 24 h: a dropped batch is a gap
    assert stream["DestinationConfig"]["OnFailure"]["Destination"].endswith("ChangeArchiveFailures")


def test_a_table_matching_the_prefix_after_deploy_is_archived_from_the_next_stack_update(
    archiving: LocalStack,
) -> None:
    create_table(client("dynamodb"), "pre-Two", None)
    _put("pre-Two", "before-update")
    assert _archived(archiving, "pre-Two") == set()  # no stream yet: the next update enables and maps it
    archiving.custom_resource("ChangeArchiveStreams", "Update")
    _put("pre-Two", "after-update")
    assert _archived(archiving, "pre-Two") == {"after-update"}
    assert len(_stream_mappings(archiving)) == 4


def test_stack_delete_removes_the_stream_mappings_and_leaves_the_streams_on(archiving: LocalStack) -> None:
    assert len(_stream_mappings(archiving)) == 3
    archiving.custom_resource("ChangeArchiveStreams", "Delete")
    assert _stream_mappings(archiving) == []
    for table in TABLES:
        assert client("dynamodb").describe_table(TableName=table)["Table"]["StreamSpecification"]["StreamEnabled"]
    _put("alpha-Table", "after-delete")
    assert _archived(archiving, "alpha-Table") == set()


@pytest.mark.parametrize("view", ["KEYS_ONLY", "OLD_IMAGE"])
def test_a_table_whose_stream_lacks_new_images_is_refused_by_name_with_the_way_out(view: str) -> None:
    def tables() -> None:
        _create_tables()
        create_table(client("dynamodb"), "keys-Table", view)

    stack = LocalStack(before_deploy=tables)
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": "alpha-Table,keys-Table"}
    with pytest.raises(DdbBackupError) as refused, stack:
        pass
    message = str(refused.value)
    assert "ChangeArchiveStreams Create FAILED" in message
    assert f"'keys-Table' has a {view} stream" in message
    assert "--stream-specification StreamEnabled=false" in message


def test_a_named_table_that_does_not_exist_is_refused_by_name() -> None:
    stack = LocalStack(before_deploy=_create_tables)
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": "alpha-Table,missing-Table"}
    with pytest.raises(DdbBackupError, match=r"'missing-Table' \(named in ChangeArchiveTables\) does not exist"), stack:
        pass
