"""Event models of the Lambda handlers, validated at the door (Powertools parser / pydantic).

A malformed event is rejected with a message naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import layout

TABLE_NAME = r"^[A-Za-z0-9_.-]{3,255}$"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    execution_name: str | None = Field(default=None, alias="executionName")


class BackupRequest(BaseModel):
    """What a person or the schedule asks for: the tables, or a name prefix."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tables: list[str] | None = Field(default=None, min_length=1)
    table_prefix: str | None = Field(default=None, alias="tablePrefix", min_length=1)
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
