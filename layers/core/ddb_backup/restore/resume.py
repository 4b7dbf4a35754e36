"""The mark a restore leaves on its target until the restore is complete.

A restore tags every target (``ddb-backup:restore-in-progress``) before it
writes: with CreateTable itself for a table it creates, so a run killed at
any point leaves a table that says which backup and run it came from, and
whether that run created it. Beside it, ``ddb-backup:restore-source`` names
the exact backup (a table's directory resolved to the backup it held then),
and ``ddb-backup:restore-billing`` the provisioned units of a target loaded
on-demand, so a resume finishes with that backup and switches the units back
even after a SIGKILL. The tags are removed when the run has written and
checked every item; a later run that finds it refuses mode ``new`` (naming
the backup and run, and the command that resumes) and, in mode
``overwrite``, finishes what the first run left undone (the settings a
created table lacks) before writing every item again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import call_with_backoff, error_code

MARK_KEY = "ddb-backup:restore-in-progress"
SOURCE_KEY = "ddb-backup:restore-source"
BILLING_KEY = "ddb-backup:restore-billing"
_VALUE = 256  # a DynamoDB tag value's length
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")  # what a DynamoDB tag value may hold


@dataclass(frozen=True)
class Mark:
    """A target's restore in progress: the backup restored, the run restoring it, and whether that run created it.

    ``source``: the exact backup's location (empty when it cannot be a tag's value); ``mode``: the run's mode
    (a mirror is resumed as a mirror); ``billing``: the units to put back, read from the billing tag.
    """

    backup: str
    run: str
    created: bool = False
    source: str = ""
    mode: str = ""
    billing: dict[str, Any] | None = field(default=None, compare=False)

    def value(self) -> str:
        text = f"backup={_safe(self.backup)} run={_safe(self.run)} created={'yes' if self.created else 'no'}"
        return text + (f" mode={_safe(self.mode)}" if self.mode else "")

    def tag(self) -> dict[str, str]:
        return {"Key": MARK_KEY, "Value": self.value()}

    def tags(self) -> list[dict[str, str]]:
        """The mark's tags: the mark, and the exact source when a tag can hold it as it is."""
        fits = self.source and len(self.source) <= _VALUE and not _UNSAFE.search(self.source)
        return [self.tag(), *([{"Key": SOURCE_KEY, "Value": self.source}] if fits else [])]

    def same_backup(self, other: Mark) -> bool:
        """Whether ``other`` restores the backup this mark names (as a tag stores the names)."""
        return _safe(self.backup) == _safe(other.backup)

    @classmethod
    def parse(cls, value: str, source: str = "", billing: dict[str, Any] | None = None) -> Mark:
        fields = dict(part.partition("=")[::2] for part in value.split())
        created = fields.get("created") == "yes"
        return cls(fields.get("backup", "?"), fields.get("run", "?"), created, source, fields.get("mode", ""), billing)

    def partial(self, table: str) -> str:
        """The sentence that names a half-made target."""
        return f"table {table} holds a partial restore of backup {self.backup}, from run {self.run}"


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)[:100] or "?"


def _tags(ddb: Any, arn: str) -> dict[str, str]:
    """Every tag of the table ``arn``: key -> value."""
    request: dict[str, Any] = {"ResourceArn": arn}
    found: dict[str, str] = {}
    while True:
        page = call_with_backoff(ddb.list_tags_of_resource, **request)
        found.update((str(t.get("Key")), str(t.get("Value", ""))) for t in page.get("Tags", []))
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def read_mark(ddb: Any, arn: str) -> Mark | None:
    """The mark on the table ``arn``, if a restore left one (with its source and the billing to put back)."""
    tags = _tags(ddb, arn)
    if MARK_KEY not in tags:
        return None
    return Mark.parse(tags[MARK_KEY], tags.get(SOURCE_KEY, ""), _billing(tags))


def read_billing(ddb: Any, arn: str) -> dict[str, Any] | None:
    """The provisioned units a restore's load left recorded on the table ``arn`` (marked or not), if any."""
    return _billing(_tags(ddb, arn))


def set_mark(ddb: Any, arn: str, mark: Mark) -> None:
    call_with_backoff(ddb.tag_resource, ResourceArn=arn, Tags=mark.tags())


def billing_tags(spec: dict[str, Any]) -> list[dict[str, str]]:
    """The tags that record ``spec`` (``capacity.provisioned_spec``), ``R/W`` then ``index=R/W`` for each index,
    across as many tags as it takes (index names hold only characters a tag value may)."""

    def units(u: dict[str, int]) -> str:
        return f"{u['ReadCapacityUnits']}/{u['WriteCapacityUnits']}"

    indexes = spec["GlobalSecondaryIndexes"].items()
    text = " ".join([units(spec["ProvisionedThroughput"]), *(f"{name}={units(u)}" for name, u in indexes)])
    chunks = [text[i : i + _VALUE] for i in range(0, len(text), _VALUE)]
    return [{"Key": BILLING_KEY + (f"-{n}" if n else ""), "Value": chunk} for n, chunk in enumerate(chunks)]


def _billing(tags: dict[str, str]) -> dict[str, Any] | None:
    """The spec :func:`billing_tags` recorded, or None."""
    chunks: list[str] = []
    while (chunk := tags.get(BILLING_KEY + (f"-{len(chunks)}" if chunks else ""))) is not None:
        chunks.append(chunk)
    if not chunks:
        return None

    def units(text: str) -> dict[str, int]:
        read, _, write = text.partition("/")
        return {"ReadCapacityUnits": int(read), "WriteCapacityUnits": int(write)}

    table, *indexes = "".join(chunks).split()
    return {
        "ProvisionedThroughput": units(table),
        "GlobalSecondaryIndexes": {name: units(u) for name, _, u in (i.partition("=") for i in indexes)},
    }


def set_billing(ddb: Any, arn: str, spec: dict[str, Any]) -> None:
    """Record the units to put back on a target loaded on-demand, before it is switched."""
    call_with_backoff(ddb.tag_resource, ResourceArn=arn, Tags=billing_tags(spec))


def clear_billing(ddb: Any, arn: str) -> None:
    """Forget the recorded units: the target is provisioned again."""
    keys = [k for k in _tags(ddb, arn) if k == BILLING_KEY or k.startswith(BILLING_KEY + "-")]
    if keys:
        call_with_backoff(ddb.untag_resource, ResourceArn=arn, TagKeys=keys)


def clear_mark(ddb: Any, table: str) -> bool:
    """Remove the mark and its source from ``table`` (its restore is complete); False when the table is gone."""
    try:
        arn = call_with_backoff(ddb.describe_table, TableName=table)["Table"]["TableArn"]
        call_with_backoff(ddb.untag_resource, ResourceArn=arn, TagKeys=[MARK_KEY, SOURCE_KEY])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True
