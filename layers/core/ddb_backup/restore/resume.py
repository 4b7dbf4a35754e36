"""The mark a restore leaves on its target until the restore is complete.

A restore tags every target (``ddb-backup:restore-in-progress``) before it
writes: with CreateTable itself for a table it creates, so a run killed at
any point leaves a table that says which backup and run it came from, and
whether that run created it. The tag is removed when the run has written and
checked every item; a later run that finds it refuses mode ``new`` (naming
the backup and run, and the command that resumes) and, in mode
``overwrite``, finishes what the first run left undone (the settings a
created table lacks) before writing every item again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import call_with_backoff, error_code

MARK_KEY = "ddb-backup:restore-in-progress"
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.:/=+\-@]")  # what a DynamoDB tag value may hold


@dataclass(frozen=True)
class Mark:
    """A target's restore in progress: the backup restored, the run restoring it, and whether that run created it."""

    backup: str
    run: str
    created: bool = False

    def value(self) -> str:
        return f"backup={_safe(self.backup)} run={_safe(self.run)} created={'yes' if self.created else 'no'}"

    def tag(self) -> dict[str, str]:
        return {"Key": MARK_KEY, "Value": self.value()}

    @classmethod
    def parse(cls, value: str) -> Mark:
        fields = dict(part.partition("=")[::2] for part in value.split())
        return cls(fields.get("backup", "?"), fields.get("run", "?"), fields.get("created") == "yes")

    def partial(self, table: str) -> str:
        """The sentence that names a half-made target."""
        return f"table {table} holds a partial restore of backup {self.backup}, from run {self.run}"


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)[:100] or "?"


def read_mark(ddb: Any, arn: str) -> Mark | None:
    """The mark on the table ``arn``, if a restore left one."""
    request: dict[str, Any] = {"ResourceArn": arn}
    while True:
        page = call_with_backoff(ddb.list_tags_of_resource, **request)
        for tag in page.get("Tags", []):
            if tag.get("Key") == MARK_KEY:
                return Mark.parse(str(tag.get("Value", "")))
        if not page.get("NextToken"):
            return None
        request["NextToken"] = page["NextToken"]


def set_mark(ddb: Any, arn: str, mark: Mark) -> None:
    call_with_backoff(ddb.tag_resource, ResourceArn=arn, Tags=[mark.tag()])


def clear_mark(ddb: Any, table: str) -> bool:
    """Remove the mark from ``table`` (its restore is complete); False when the table is gone."""
    try:
        arn = call_with_backoff(ddb.describe_table, TableName=table)["Table"]["TableArn"]
        call_with_backoff(ddb.untag_resource, ResourceArn=arn, TagKeys=[MARK_KEY])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True
