"""Event models of the Lambda handlers, validated at the door (Powertools parser / pydantic).

A malformed event is rejected with a message naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import layout

TABLE_NAME = r"^[A-Za-z0-9_.-]{3,255}$"
#: The start of a table name: the same characters, any length.
NAME_PREFIX = r"^[A-Za-z0-9_.-]{0,255}$"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    execution_name: str | None = Field(default=None, alias="executionName")


class BackupRequest(BaseModel):
    """What a person or the schedule asks for: the tables, or a name prefix."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tables: list[str] | None = Field(default=None, min_length=1)
    table_prefix: str | None = Field(default=None, alias="tablePrefix", min_length=1, pattern=NAME_PREFIX)
    segments: int | None = Field(default=None, ge=1, le=1_000_000)
    backup_id: str | None = Field(default=None, alias="backupId")

    @field_validator("tables")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            layout.check_table_name(name)
        return value

    @field_validator("backup_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return layout.check_backup_id(value) if value else value

    @model_validator(mode="after")
    def _one_selector(self) -> BackupRequest:
        if bool(self.tables) == bool(self.table_prefix):
            raise ValueError("give either 'tables' or 'tablePrefix', not both and not neither")
        return self


class PlanBackupEvent(_Event):
    request: BackupRequest


class SegmentTask(_Event):
    table: str = Field(pattern=TABLE_NAME)
    backup_dir: str = Field(alias="backupDir", min_length=1)
    segment: int = Field(ge=0)
    total_segments: int = Field(alias="totalSegments", ge=1, le=1_000_000)
    seq: int = Field(default=0, ge=0)
    next_part: int = Field(default=0, alias="nextPart", ge=0)
    start_key: dict[str, Any] | None = Field(default=None, alias="startKey")
    done: bool = False
    items: int = Field(default=0, ge=0)
    bytes: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _segment_in_range(self) -> SegmentTask:
        if self.segment >= self.total_segments:
            raise ValueError(f"segment {self.segment} is not below totalSegments {self.total_segments}")
        if not self.backup_dir.endswith("/"):
            raise ValueError("backupDir must end with '/'")
        return self


class FinalizeTableEvent(_Event):
    table: str = Field(pattern=TABLE_NAME)
    backup_dir: str = Field(alias="backupDir", min_length=1)
    total_segments: int | None = Field(default=None, alias="totalSegments")
    check_only: bool = Field(default=False, alias="checkOnly")


# ------------------------------------------------------------------ restore
class NameSwap(BaseModel):
    """One prefix swap of a set restore: ``{"from": "prod-", "to": "restore-"}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, pattern=NAME_PREFIX)
    to: str = Field(pattern=NAME_PREFIX)


class KeyAttribute(BaseModel):
    model_config = ConfigDict(extra="forbid")

    AttributeName: str = Field(min_length=1)
    KeyType: str = Field(pattern="^(HASH|RANGE)$")
    AttributeType: str = Field(pattern="^(S|N|B)$")


class RestoreRequest(BaseModel):
    """What a person asks the restore state machine for.

    ``source``: an ``s3://`` URL or a key in the backup bucket (a backup
    directory or manifest, a native export, a cumulus-api or local file; with
    ``backupId`` or ``map``, the prefix holding a backup run). ``table`` (or
    ``target``): the table to restore into; ``map``: prefix swaps for a set.
    ``mode``: ``new`` (create, or an empty existing table) or ``overwrite``
    (upsert). ``keys``/``keySchema``: the keys, for sources without a schema.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(min_length=1)
    table: str | None = Field(default=None, pattern=TABLE_NAME)
    map: list[NameSwap] | None = Field(default=None, min_length=1)
    backup_id: str | None = Field(default=None, alias="backupId")
    mode: str = Field(default="new", pattern="^(new|overwrite)$")
    allow_source: bool = Field(default=False, alias="allowSource")
    keys: list[str] | None = Field(default=None, min_length=1, max_length=2)
    key_schema: list[KeyAttribute] | None = Field(default=None, alias="keySchema", min_length=1, max_length=2)

    @model_validator(mode="before")
    @classmethod
    def _target_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "target" in data:
            data = dict(data)
            if "table" in data:
                raise ValueError("give 'table' or 'target' (the same thing), not both")
            data["table"] = data.pop("target")
        return data

    @field_validator("backup_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return layout.check_backup_id(value) if value else value

    @model_validator(mode="after")
    def _one_target(self) -> RestoreRequest:
        if self.table and self.map:
            raise ValueError("give 'table' (one target) or 'map' (prefix swaps for a set), not both")
        if self.keys and self.key_schema:
            raise ValueError("give 'keys' or 'keySchema', not both")
        return self

    def to_request(self) -> dict[str, Any]:
        doc = self.model_dump(by_alias=True, exclude_none=True)
        if self.map:
            doc["map"] = [{"from": m.from_, "to": m.to} for m in self.map]
        return doc


class PlanRestoreEvent(_Event):
    request: RestoreRequest


class RestorePartTask(_Event):
    run_id: str = Field(alias="runId", min_length=1)
    bucket: str = Field(min_length=3)
    run_prefix: str = Field(alias="runPrefix", min_length=1)
    table: int = Field(ge=0)
    target: str = Field(pattern=TABLE_NAME)
    part: dict[str, Any]
    dead_letter: str = Field(alias="deadLetter", min_length=1)
    next: int = Field(default=0, ge=0)
    done: bool = False
    written: int = Field(default=0, ge=0)
    duplicate_keys: int = Field(default=0, alias="duplicateKeys", ge=0)
    retries: int = Field(default=0, ge=0)
    seconds: float = Field(default=0, ge=0)

    @field_validator("part")
    @classmethod
    def _part(cls, value: dict[str, Any]) -> dict[str, Any]:
        missing = {"id", "url", "dialect"} - set(value)
        if missing:
            raise ValueError(f"part lacks {sorted(missing)}")
        return value

    @field_validator("run_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.endswith("/"):
            raise ValueError("runPrefix must end with '/'")
        return value


class FinalizeRestoreEvent(_Event):
    run_id: str = Field(alias="runId", min_length=1)
    bucket: str = Field(min_length=3)
    run_prefix: str = Field(alias="runPrefix", min_length=1)
    map_failed: bool = Field(default=False, alias="mapFailed")
