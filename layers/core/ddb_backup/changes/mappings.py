"""The change archive's custom resource: each named table's stream, mapped to the archiver (issue 14).

Create and Update enable a NEW_AND_OLD_IMAGES stream on every table named (or matching a
``prefix*``) that has none, and map each stream to the archiver Lambda; mappings of streams no
longer named are removed. Delete removes the archiver's stream mappings and leaves the streams on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ddb_backup.errors import BadInput, TableNotFound, TargetRefused
from ddb_backup.native.cfn import FAILURE, SUCCESS, CustomResourceOutcome, physical_id, validation_text

USABLE_VIEWS = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")
BATCH_SIZE = 1000
MAXIMUM_RETRY_ATTEMPTS = 20
#: A tumbling window makes Lambda name each batch's shard (``shardId``), so the archive keeps its reach per
#: shard: Lambda reads a stream's shards concurrently, and one shard's progress says nothing of another's.
TUMBLING_WINDOW_SECONDS = 60
#: Below the stream's 24 h retention: a batch Lambda cannot archive reaches the failure queue (a recorded
#: gap) before the stream trims it. At 24 h, records trimmed first leave no trace.
MAXIMUM_RECORD_AGE_SECONDS = 23 * 3600


class ChangeArchiveResourceProperties(BaseModel):
    """``ResourceProperties`` of the change archive custom resource (issue 14). Scalars arrive as strings."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_token: str = Field(default="", alias="ServiceToken")
    service_timeout: str | int | None = Field(default=None, alias="ServiceTimeout")
    tables: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,255}\*?$")]] = Field(alias="Tables", min_length=1)
    function_arn: str = Field(alias="FunctionArn", pattern=r"^arn:[a-z-]+:lambda:")
    failure_queue_arn: str = Field(alias="FailureQueueArn", pattern=r"^arn:[a-z-]+:sqs:")
    maximum_record_age_in_seconds: int = Field(
        default=MAXIMUM_RECORD_AGE_SECONDS, alias="MaximumRecordAgeInSeconds", ge=60, le=MAXIMUM_RECORD_AGE_SECONDS
    )


class ChangeArchiveEvent(BaseModel):
    """The CloudFormation custom resource request the change archive's function receives, every field of it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    request_type: Literal["Create", "Update", "Delete"] = Field(alias="RequestType")
    service_token: str = Field(alias="ServiceToken", min_length=1)
    response_url: str = Field(alias="ResponseURL", pattern=r"^https?://")
    stack_id: str = Field(alias="StackId", pattern=r"^arn:[a-z-]+:cloudformation:")
    request_id: str = Field(alias="RequestId", min_length=1)
    logical_resource_id: str = Field(alias="LogicalResourceId", min_length=1)
    resource_type: str = Field(alias="ResourceType", min_length=1)
    physical_resource_id: str | None = Field(default=None, alias="PhysicalResourceId")
    resource_properties: ChangeArchiveResourceProperties = Field(alias="ResourceProperties")
    old_resource_properties: dict[str, Any] | None = Field(default=None, alias="OldResourceProperties")


def table_names(ddb: Any, patterns: list[str]) -> list[str]:
    """The tables named, and those whose names start with a ``prefix*`` pattern's prefix; a missing named table fails."""
    prefixes = [p[:-1] for p in patterns if p.endswith("*")]
    names = [p for p in patterns if not p.endswith("*")]
    if prefixes:
        for page in ddb.get_paginator("list_tables").paginate():
            names += [t for t in page["TableNames"] if t.startswith(tuple(prefixes)) and t not in names]
    for name in names:
        try:
            ddb.describe_table(TableName=name)
        except ddb.exceptions.ResourceNotFoundException as exc:
            raise TableNotFound(f"table {name!r} (named in ChangeArchiveTables) does not exist") from exc
    return names


def ensure_stream(ddb: Any, table: str) -> str:
    """The ARN of ``table``'s stream, enabling NEW_AND_OLD_IMAGES when it has none; other views are refused."""
    description = ddb.describe_table(TableName=table)["Table"]
    spec = description.get("StreamSpecification") or {}
    if spec.get("StreamEnabled"):
        view = spec.get("StreamViewType")
        if view not in USABLE_VIEWS:
            raise BadInput(
                f"table {table!r} has a {view} stream, which lacks the new item images the archive needs, and a "
                "stream's view type cannot be changed in place: disable it (aws dynamodb update-table --table-name "
                f"{table} --stream-specification StreamEnabled=false), then update the stack, which enables a "
                "NEW_AND_OLD_IMAGES stream (other readers of the old stream must move to the new one)"
            )
        return str(description["LatestStreamArn"])
    updated = ddb.update_table(
        TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )
    return str(updated["TableDescription"]["LatestStreamArn"])


def _named(table: str, step: Callable[[Any, str], str], ddb: Any) -> str:
    """``step(ddb, table)``, its failure naming the table (AccessDenied: outside TableNamePattern)."""
    try:
        return step(ddb, table)
    except ClientError as exc:
        raise TargetRefused(f"table {table!r}: {exc} (is it outside TableNamePattern?)") from exc


def stream_mappings(lam: Any, function_arn: str) -> dict[str, str]:
    """The archiver's mappings from DynamoDB streams: stream ARN -> mapping UUID."""
    found: dict[str, str] = {}
    for page in lam.get_paginator("list_event_source_mappings").paginate(FunctionName=function_arn):
        for mapping in page["EventSourceMappings"]:
            if ":dynamodb:" in mapping["EventSourceArn"]:
                found[mapping["EventSourceArn"]] = mapping["UUID"]
    return found


def sync_mappings(lam: Any, props: ChangeArchiveResourceProperties, streams: list[str]) -> dict[str, int]:
    """Map every stream in ``streams`` to the archiver, and unmap the archiver's other streams."""
    existing = stream_mappings(lam, props.function_arn)
    for stream in streams:
        if stream in existing:
            continue
        lam.create_event_source_mapping(
            EventSourceArn=stream,
            FunctionName=props.function_arn,
            StartingPosition="TRIM_HORIZON",
            BatchSize=BATCH_SIZE,
            BisectBatchOnFunctionError=True,
            MaximumRetryAttempts=MAXIMUM_RETRY_ATTEMPTS,
            MaximumRecordAgeInSeconds=props.maximum_record_age_in_seconds,
            DestinationConfig={"OnFailure": {"Destination": props.failure_queue_arn}},
            TumblingWindowInSeconds=TUMBLING_WINDOW_SECONDS,
        )
    stale = [uuid for stream, uuid in existing.items() if stream not in streams]
    for uuid in stale:
        lam.delete_event_source_mapping(UUID=uuid)
    return {"created": len(set(streams) - set(existing)), "removed": len(stale)}


def custom_resource_outcome(ddb: Any, lam: Any, event: dict[str, Any]) -> CustomResourceOutcome:
    """What to answer CloudFormation; never raises. A table that cannot be archived fails the deploy, by name."""
    physical = physical_id(event)
    request_type = event.get("RequestType")
    if request_type not in ("Create", "Update", "Delete"):
        return CustomResourceOutcome(FAILURE, f"unknown RequestType {request_type!r}", physical)
    try:
        props = ChangeArchiveResourceProperties.model_validate(event.get("ResourceProperties") or {})
        if request_type == "Delete":
            removed = sync_mappings(lam, props, [])["removed"]
            return CustomResourceOutcome(SUCCESS, f"{removed} stream mapping(s) removed; streams left on", physical)
        tables = table_names(ddb, props.tables)
        streams = [_named(table, ensure_stream, ddb) for table in tables]
        counts = sync_mappings(lam, props, streams)
    except ValidationError as exc:
        return CustomResourceOutcome(FAILURE, "invalid ResourceProperties: " + validation_text(exc), physical)
    except Exception as exc:
        return CustomResourceOutcome(FAILURE, f"{type(exc).__name__}: {exc}".replace("\n", " "), physical)
    reason = f"archiving {len(tables)} table(s): {', '.join(tables) or 'none yet'}"
    return CustomResourceOutcome(
        SUCCESS, reason, physical, {"Tables": str(len(tables)), **{k: str(v) for k, v in counts.items()}}
    )
