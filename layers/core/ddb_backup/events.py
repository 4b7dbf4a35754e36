"""Event models of the Lambda handlers, validated at the door (Powertools parser / pydantic).

A malformed event is rejected with a message naming the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ddb_backup import names
from ddb_backup.names import (
    BUCKET,
    NAME_PREFIX,
    RUN_ID,
    TABLE_NAME,
    UNSAFE_IN_KEY,
    check_key,
    check_s3_url,
    is_s3_url,
    parse_duration,
    parse_time,
    s3_url_key,
)


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
    read_rate: float | None = Field(default=None, alias="readRate", gt=0, allow_inf_nan=False)
    read_percent: float | None = Field(default=None, alias="readPercent", gt=0, le=100, allow_inf_nan=False)
    # exact to a moment from the table's stream (issue 14); None: wherever a stream of new images allows
    consistent: bool | None = None

    @field_validator("tables")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            names.check_table_name(name)
        return value

    @field_validator("backup_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return names.check_backup_id(value) if value else value

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
    read_rate: float = Field(default=0, alias="readRate", ge=0, allow_inf_nan=False)  # units/s; 0: no limit

    @field_validator("backup_dir")
    @classmethod
    def _dir(cls, value: str) -> str:
        return check_key(value, "backupDir", prefix=True)

    @model_validator(mode="after")
    def _segment_in_range(self) -> SegmentTask:
        if self.segment >= self.total_segments:
            raise ValueError(f"segment {self.segment} is not below totalSegments {self.total_segments}")
        return self


class FinalizeBackupEvent(_Event):
    """What the finalize function is given: one table of the finalize Map, or the run's report step.

    A table: ``table``, ``backupDir`` and (to note its outcome for the report) ``runPrefix``.
    The report (``report: true``): ``backupId``, ``runPrefix`` and ``scanError`` (the scan Map's, if caught).
    """

    table: str | None = Field(default=None, pattern=TABLE_NAME)
    backup_dir: str | None = Field(default=None, alias="backupDir", min_length=1)
    total_segments: int | None = Field(default=None, alias="totalSegments")
    run_prefix: str | None = Field(default=None, alias="runPrefix", min_length=1)
    report: bool = False
    backup_id: str | None = Field(default=None, alias="backupId")
    scan_error: dict[str, Any] | None = Field(default=None, alias="scanError")

    @field_validator("backup_dir", "run_prefix")
    @classmethod
    def _prefix(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = "backupDir" if info.field_name == "backup_dir" else "runPrefix"
        return check_key(value, name, prefix=True) if value is not None else value

    @field_validator("backup_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        return names.check_backup_id(value) if value is not None else value

    @model_validator(mode="after")
    def _one_kind(self) -> FinalizeBackupEvent:
        if self.report:
            if not (self.backup_id and self.run_prefix) or self.table or self.backup_dir:
                raise ValueError("the run's report takes 'backupId' and 'runPrefix', not 'table' or 'backupDir'")
        elif not (self.table and self.backup_dir):
            raise ValueError("finalizing a table takes 'table' and 'backupDir'")
        return self


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


class SelectRequest(BaseModel):
    """Some items only (issue 28): ``keys`` (``"pk=V[,sk=V]"``, the partition key alone: its whole partition),
    ``keyPrefixes`` (``"pk=PREFIX[,sk=PREFIX]"``, string keys), ``keysFile`` (an ``s3://`` URL of JSON lines,
    one key each, typed or plain). An item any of them matches is restored; one that matches nothing fails the
    plan, naming it, before any table is created."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    keys: list[Annotated[str, Field(min_length=3, max_length=4096)]] | None = Field(default=None, min_length=1)
    key_prefixes: list[Annotated[str, Field(min_length=2, max_length=4096)]] | None = Field(
        default=None, alias="keyPrefixes", min_length=1
    )
    keys_file: str | None = Field(default=None, alias="keysFile")

    @field_validator("keys_file")
    @classmethod
    def _file(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError(
                f"select.keysFile {value!r:.200} must be an s3:// URL (the machine reads it from S3): "
                "copy the file there first (aws s3 cp FILE s3://BUCKET/KEY)"
            )
        return check_s3_url(value, "select.keysFile", prefix=False) if value is not None else value

    @model_validator(mode="after")
    def _some(self) -> SelectRequest:
        if not (self.keys or self.key_prefixes or self.keys_file):
            raise ValueError("'select' takes 'keys', 'keyPrefixes' or 'keysFile' (leave it out to restore every item)")
        return self


MIRROR_IS_CLI_ONLY = (
    "mode 'mirror' is offered by the command line only (ddb-backup restore SOURCE --table T --mode mirror): "
    "the state machine restores in mode 'new' or 'overwrite'"
)


class RestoreRequest(BaseModel):
    """What a person asks the restore state machine for.

    ``source``: an ``s3://`` URL or a key in the backup bucket (a backup directory or manifest, a native
    export, a cumulus-api or local file; with ``backupId`` or ``map``, the prefix holding a backup run).
    ``table`` (or ``target``): the table to restore into; ``map``: prefix swaps for a set; ``tables``: only
    these source tables of the set; ``allowPartial``: restore what the run holds complete and name the rest
    (else a set lacking a planned table is refused). ``mode``: ``new`` (create, or an empty existing table)
    or ``overwrite`` (upsert). ``keys``/``keySchema``: the keys, for sources without a schema. ``method``:
    ``write`` (BatchWriteItem), ``import`` (ImportTable into a new table) or ``auto`` (import where it can).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(min_length=1)
    table: str | None = Field(default=None, pattern=TABLE_NAME)
    map: list[NameSwap] | None = Field(default=None, min_length=1)
    backup_id: str | None = Field(default=None, alias="backupId")
    tables: list[Annotated[str, Field(pattern=TABLE_NAME)]] | None = Field(default=None, min_length=1)
    allow_partial: bool = Field(default=False, alias="allowPartial")
    mode: str = Field(default="new", pattern="^(new|overwrite)$")
    allow_source: bool = Field(default=False, alias="allowSource")
    keys: list[str] | None = Field(default=None, min_length=1, max_length=2)
    key_schema: list[KeyAttribute] | None = Field(default=None, alias="keySchema", min_length=1, max_length=2)
    write_rate: float | None = Field(default=None, alias="writeRate", gt=0, allow_inf_nan=False)
    write_percent: float | None = Field(default=None, alias="writePercent", gt=0, le=100, allow_inf_nan=False)
    load_billing: Literal["saved", "on-demand"] | None = Field(default=None, alias="loadBilling")
    within: str | None = Field(default=None, min_length=1, max_length=20)  # pre-warm: e.g. "2h", "90m"
    to_time: str | None = Field(default=None, alias="toTime", min_length=1, max_length=64)  # restore to (issue 14)
    method: Literal["auto", "import", "write"] = "write"  # issue 13
    select: SelectRequest | None = None  # some items only (issue 28)

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
        return names.check_backup_id(value) if value else value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        if value == "mirror":  # clearer than the pattern's word for the one mode the state machine lacks
            raise ValueError(MIRROR_IS_CLI_ONLY)
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        # A key in the backup bucket (leading slashes are dropped) or an s3:// URL; either may end in '/'.
        key = s3_url_key(value) if is_s3_url(value) else value.lstrip("/")
        if UNSAFE_IN_KEY.search(key) or any(segment in (".", "..") for segment in key.split("/")):
            raise ValueError(
                f"source {value!r:.200} must not hold '.' or '..' segments, backslashes or control characters"
            )
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RestoreRequest:
        if (self.tables or self.allow_partial) and not self.map:
            raise ValueError("'tables' and 'allowPartial' choose within a set: give 'map' with them")
        if self.table and self.map:
            raise ValueError("give 'table' (one target) or 'map' (prefix swaps for a set), not both")
        if self.keys and self.key_schema:
            raise ValueError("give 'keys' or 'keySchema', not both")
        if self.write_rate is not None and self.write_percent is not None:
            raise ValueError("give 'writeRate' or 'writePercent', not both")
        if self.write_percent is not None and self.load_billing == "on-demand":
            raise ValueError(
                "'writePercent' is a share of provisioned capacity, which loadBilling 'on-demand' sets aside: "
                "give 'writeRate' (units a second) instead"
            )
        if self.within is not None:
            parse_duration(self.within)
        if self.to_time and (not self.table or self.backup_id):
            raise ValueError("'toTime' restores one table: give 'source' (the table's backups) and 'table'")
        if self.to_time:
            parse_time(self.to_time, "toTime")  # a clear error for a time that is not ISO
        if self.select and (not self.table or self.method != "write"):
            raise ValueError(
                "'select' restores some items of one table with BatchWriteItem: give 'table' (not 'map') "
                "and leave 'method' out (ImportTable loads a whole backup)"
            )
        return self

    def to_request(self) -> dict[str, Any]:
        doc = self.model_dump(by_alias=True, exclude_none=True)
        if self.map:
            doc["map"] = [{"from": m.from_, "to": m.to} for m in self.map]
        return doc


class PlanRestoreEvent(_Event):
    request: RestoreRequest


_PART_KEYS = {"id", "url", "dialect", "items", "sha256", "md5", "bytes", "linesSha256"}
_DIALECTS = ("item", "local", "typed", "plain")


class _RestoreRunEvent(_Event):
    """What every step of a restore run carries: the run, its bucket and bookkeeping prefix."""

    run_id: str = Field(alias="runId", pattern=RUN_ID)
    bucket: str = Field(pattern=BUCKET)
    run_prefix: str = Field(alias="runPrefix", min_length=1)

    @field_validator("run_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_key(value, "runPrefix", prefix=True)

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str) -> str:
        return check_key(value, "runId", prefix=False)


class RestorePartTask(_RestoreRunEvent):
    table: int = Field(ge=0)
    target: str = Field(pattern=TABLE_NAME)
    part: dict[str, Any]
    dead_letter: str = Field(alias="deadLetter", min_length=1)
    next: int = Field(default=0, ge=0)
    done: bool = False
    written: int = Field(default=0, ge=0)
    duplicate_keys: int = Field(default=0, alias="duplicateKeys", ge=0)
    retries: int = Field(default=0, ge=0)
    seconds: float = Field(default=0, ge=0, allow_inf_nan=False)
    write_rate: float = Field(default=0, alias="writeRate", ge=0, allow_inf_nan=False)  # units/s; 0: no limit

    @field_validator("part")
    @classmethod
    def _part(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A ``PartRef.to_json()`` of the plan: an S3 object, a dialect the reader knows, counts and digests."""
        missing = {"id", "url", "dialect"} - set(value)
        if missing:
            raise ValueError(f"part lacks {sorted(missing)}")
        unknown = set(value) - _PART_KEYS
        if unknown:
            raise ValueError(f"part has unknown keys {sorted(unknown)}")
        if not isinstance(value["id"], str) or not value["id"]:
            raise ValueError("part.id must be a non-empty string")
        check_s3_url(value["url"], "part.url", prefix=False)
        if value["dialect"] not in _DIALECTS:
            raise ValueError(f"part.dialect must be one of {', '.join(_DIALECTS)}, got {value['dialect']!r:.50}")
        for name in ("items", "bytes"):
            count = value.get(name)
            if count is not None and (type(count) is not int or count < 0):
                raise ValueError(f"part.{name} must be a count, got {count!r:.50}")
        for name in ("sha256", "linesSha256"):
            sha = value.get(name)
            if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
                raise ValueError(f"part.{name} must be 64 hex digits, got {sha!r:.80}")
        if value.get("md5") is not None and not isinstance(value["md5"], str):
            raise ValueError("part.md5 must be a string (base64)")
        return value

    @field_validator("dead_letter")
    @classmethod
    def _dead_letter(cls, value: str) -> str:
        return check_s3_url(value, "deadLetter", prefix=True)


class ChangesPartitionTask(BaseModel):
    """One partition of an exact table's changes, for a child of the machine's *Apply the changes* Map."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    table: int = Field(ge=0)
    target: str = Field(pattern=TABLE_NAME)
    partition: int = Field(ge=0)
    write_rate: float = Field(default=0, alias="writeRate", ge=0, allow_inf_nan=False)  # units/s; 0: no limit


class FinalizeRestoreEvent(_RestoreRunEvent):
    map_failed: bool = Field(default=False, alias="mapFailed")
    check_imports: bool = Field(default=False, alias="checkImports")  # only count the imports still running
    partition_changes: bool = Field(default=False, alias="partitionChanges")  # split exact tables' changes
    max_concurrency: int = Field(default=40, alias="maxConcurrency", ge=1)  # the Map's children at once
    apply_changes: ChangesPartitionTask | None = Field(default=None, alias="applyChanges")  # write one partition


# ------------------------------------------------------------------ AWS-native backups (PITR, on-demand)
#: The Cumulus metadata tables covered when only a prefix is given.
DEFAULT_CUMULUS_TABLES = ("Collections", "Executions", "Files", "Granules", "Pdrs", "Providers", "Rules", "Users")
#: What DynamoDB uses when RecoveryPeriodInDays is not given (and reports for tables enabled before it existed).
DEFAULT_RECOVERY_DAYS = 35


class TableSelection(BaseModel):
    """The tables the stack manages: explicit names, or a Cumulus prefix plus the Cumulus table list."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tables: list[str] = Field(default_factory=list)
    cumulus_prefix: str = Field(default="", alias="cumulusPrefix", pattern=NAME_PREFIX)
    cumulus_tables: list[str] = Field(default_factory=lambda: list(DEFAULT_CUMULUS_TABLES), alias="cumulusTables")

    @field_validator("tables", "cumulus_tables", mode="before")
    @classmethod
    def _drop_blanks(cls, value: Any) -> Any:
        # A CommaDelimitedList parameter left empty arrives as [""].
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            # Non-strings are left for the type check, which names the field.
            return [v.strip() if isinstance(v, str) else v for v in value if not (isinstance(v, str) and not v.strip())]
        return value

    @field_validator("tables")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            names.check_table_name(name)
        return list(dict.fromkeys(value))

    @field_validator("cumulus_tables")
    @classmethod
    def _short_names(cls, value: list[str]) -> list[str]:
        for short in value:
            if not short.isalnum():
                raise ValueError(f"Cumulus table {short!r} is not a short name such as 'Granules'")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_selector(self) -> TableSelection:
        if self.tables and self.cumulus_prefix:
            raise ValueError("give either 'tables' or 'cumulusPrefix', not both")
        return self

    def names(self) -> list[str]:
        """The table names; empty when nothing is configured."""
        if self.tables:
            return list(self.tables)
        if not self.cumulus_prefix:
            return []
        return [names.check_table_name(f"{self.cumulus_prefix}{short}Table") for short in self.cumulus_tables]


class EnsurePitrEvent(TableSelection):
    """The scheduled (or hand-made) event of the PITR function."""

    recovery_period_in_days: int = Field(default=DEFAULT_RECOVERY_DAYS, alias="recoveryPeriodInDays", ge=1, le=35)


class OnDemandBackupEvent(TableSelection):
    """The scheduled (or hand-made) event of the on-demand backup function."""

    # Bounded so that "now minus the retention" (or the interval) is still a date: a century, a year.
    retention_days: int = Field(alias="retentionDays", ge=1, le=36_500)
    keep_latest: int = Field(default=1, alias="keepLatest", ge=1)
    min_interval_minutes: int = Field(default=60, alias="minIntervalMinutes", ge=0, le=366 * 24 * 60)
    prune: bool = True


class PitrResourceProperties(BaseModel):
    """``ResourceProperties`` of the PITR custom resource. CloudFormation sends every scalar as a string."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    service_token: str = Field(default="", alias="ServiceToken")
    service_timeout: str | int | None = Field(default=None, alias="ServiceTimeout")
    tables: list[str] = Field(default_factory=list, alias="Tables")
    cumulus_prefix: str = Field(default="", alias="CumulusPrefix")
    cumulus_tables: list[str] | str | None = Field(default=None, alias="CumulusTables")
    recovery_period_in_days: int = Field(default=DEFAULT_RECOVERY_DAYS, alias="RecoveryPeriodInDays", ge=1, le=35)

    def request(self) -> EnsurePitrEvent:
        """The same request as the scheduled event's."""
        doc: dict[str, Any] = {
            "tables": self.tables,
            "cumulusPrefix": self.cumulus_prefix,
            "recoveryPeriodInDays": self.recovery_period_in_days,
        }
        if self.cumulus_tables is not None:
            doc["cumulusTables"] = self.cumulus_tables
        return EnsurePitrEvent.model_validate(doc)
