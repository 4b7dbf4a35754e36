"""The change archiver's event (issue 14): a batch from a table's stream, or failure-queue messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STREAM_ARN = r"^arn:[a-z-]+:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/[0-9T:.-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamChange(_Strict):
    """The ``dynamodb`` part of a stream record as Lambda delivers it (images in DynamoDB JSON)."""

    ApproximateCreationDateTime: float | str
    Keys: dict[str, dict[str, Any]]
    NewImage: dict[str, dict[str, Any]] | None = None
    OldImage: dict[str, dict[str, Any]] | None = None
    SequenceNumber: str = Field(pattern=r"^[0-9]{1,40}$")
    SizeBytes: int | None = Field(default=None, ge=0)
    StreamViewType: Literal["NEW_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY", "OLD_IMAGE"]


class StreamRecord(_Strict):
    eventSource: Literal["aws:dynamodb"]
    eventID: str
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]
    eventVersion: str | None = None
    awsRegion: str | None = None
    eventSourceARN: str = Field(pattern=STREAM_ARN)
    dynamodb: StreamChange
    userIdentity: dict[str, str] | None = None  # TTL deletions


class FailureMessage(_Strict):
    """A message of the mapping's SQS failure destination (its body names the dropped batch)."""

    eventSource: Literal["aws:sqs"]
    messageId: str
    receiptHandle: str | None = None
    body: str
    attributes: dict[str, str] | None = None
    messageAttributes: dict[str, Any] | None = None
    md5OfBody: str | None = None
    md5OfMessageAttributes: str | None = None
    eventSourceARN: str | None = None
    awsRegion: str | None = None


class Window(_Strict):
    start: str
    end: str


class ArchiveChangesEvent(_Strict):
    """A batch from the table's stream, or messages from the failure queue.

    The stream's mapping has a tumbling window, so a batch names its shard (``shardId``) and window; the
    window's last invocation may carry no record.
    """

    Records: list[Annotated[StreamRecord | FailureMessage, Field(discriminator="eventSource")]]
    shardId: str | None = Field(default=None, pattern=r"^shardId-[A-Za-z0-9-]{1,100}$")
    eventSourceARN: str | None = Field(default=None, pattern=STREAM_ARN)
    window: Window | None = None
    state: dict[str, str] | None = None
    isFinalInvokeForWindow: bool | None = None
    isWindowTerminatedEarly: bool | None = None

    @model_validator(mode="after")
    def _records_or_window(self) -> ArchiveChangesEvent:
        if not self.Records and self.window is None:
            raise ValueError("an event without Records must be a tumbling window's invocation (window, shardId)")
        return self
