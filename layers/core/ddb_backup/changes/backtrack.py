"""Backtrack (issue 28 point 2): put some items of a live table back, in place, to their state at a time.

The state at a time of each selected key is the newest exact backup at or before it (its items of those
keys, with its own changes) with the archive's changes up to the time folded in (as a restore to a time
reads them, refused for the same reasons). Every selected key that differs now from then is one step: an
item changed since is put back, one created since is deleted, one deleted since is put back.

Each write is conditional on the item still being as it was read (a consistent GetItem): every top-level
attribute of the read image equal (``#a = :a``), or ``attribute_not_exists`` of the partition key when it
was absent. An item changed between the read and the write fails the condition and is skipped, never
clobbered. The images read (the "before") are saved to ``<table_dir>backtracks/<run-id>.jsonl.gz`` before
any write, so :func:`undo_steps` can put them back with the same conditional writes against what the
backtrack left. A condition names attributes the read image has: an attribute *added* between the read and
the write (and nothing else changed) is not caught by it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ddb_backup.aws.retry import call_with_backoff
from ddb_backup.changes.replay import fold
from ddb_backup.changes.totime import changes_to, check_reach, newest_exact
from ddb_backup.errors import BadInput
from ddb_backup.format.ddbjson import Item, canonical, item_from_wire, item_to_wire
from ddb_backup.format.dialects import item_size
from ddb_backup.format.keys import key_value
from ddb_backup.format.sources import open_source
from ddb_backup.names import new_backup_id
from ddb_backup.selection import cost

#: Where a table's backtrack runs keep their "before" images, under the table's backups directory.
BACKTRACKS = "backtracks/"
#: DynamoDB's limit on the length of a ConditionExpression.
MAX_CONDITION = 4096

Pick = Callable[[Mapping[str, Any]], bool]


@dataclass
class Step:
    """One key: ``before`` the image read (None: absent), ``after`` the image to write (None: delete)."""

    key: Item
    before: Item | None
    after: Item | None

    @property
    def action(self) -> str:
        """``put back`` (changed since), ``delete`` (created since) or ``recreate`` (deleted since)."""
        if self.after is None:
            return "delete"
        return "recreate" if self.before is None else "put back"

    def attributes(self) -> list[str]:
        """The attribute names whose values the step changes (added, removed or different)."""
        old, new = self.before or {}, self.after or {}
        return sorted(n for n in {*old, *new} if n not in old or n not in new or canonical({n: old[n]}) != canonical({n: new[n]}))  # fmt: skip

    def label(self) -> str:
        """The key as ``pk=V,sk=V`` (binary in base64)."""
        wire = item_to_wire(self.key)
        return ",".join(f"{n}={next(iter(v.values()))}" for n, v in wire.items())


@dataclass
class Plan:
    """The steps of one run, and what they were read from."""

    steps: list[Step]
    key_names: list[str]
    source: str = ""
    consistent_at: str = ""
    selected: int = 0
    cost: dict[str, Any] = field(default_factory=dict)  # what reading and writing costs (selection.cost)


def key_schema(ddb: Any, table: str) -> list[dict[str, str]]:
    """The table's KeySchema, each key with its AttributeType."""
    desc = call_with_backoff(ddb.describe_table, TableName=table)["Table"]
    types = {a["AttributeName"]: a["AttributeType"] for a in desc["AttributeDefinitions"]}
    return [{**k, "AttributeType": types[k["AttributeName"]]} for k in desc["KeySchema"]]


def key_text(item: Mapping[str, Any], key_names: list[str]) -> str:
    """An item's key as comparable text (a number normalised)."""
    return json.dumps({n: key_value(item[n]) for n in key_names}, sort_keys=True, default=str)


def state_at(
    s3: Any, streams: Any, bucket: str, table_dir: str, when: dt.datetime, pick: Pick, key_names: list[str]
) -> tuple[dict[str, Item], str, dict[str, Any], dict[str, Any]]:
    """The selected items as they were at ``when`` (key text -> item; a key absent then is left out), the
    exact backup read, its manifest and what reading it cost (every part: backups are laid out by scan
    segment, not by key). Refused, naming why, as a restore to ``when`` would be."""
    directory, manifest = newest_exact(s3, bucket, table_dir, when)
    check_reach(streams, s3, bucket, table_dir, manifest, when)
    changes = [c for c in changes_to(s3, bucket, table_dir, manifest, when) if pick(item_from_wire(c["Keys"]))]
    src = open_source(f"s3://{bucket}/{directory}", s3)
    schema = [k["AttributeName"] for k in src.key_schema or []]
    if schema and schema != key_names:
        raise BadInput(
            f"{src.location}: the backup's key ({', '.join(schema)}) is not the table's ({', '.join(key_names)}): "
            "a backtrack reads the backups of the same table"
        )
    state = {key_text(item, key_names): item for item in src.items() if pick(item)}
    for change in fold(changes, when).values():
        keys = item_from_wire(change["Keys"])
        if change["event"] == "REMOVE":
            state.pop(key_text(keys, key_names), None)
        else:
            state[key_text(keys, key_names)] = item_from_wire(change["NewImage"])
    return state, src.location, manifest, cost.read_cost(src.parts, extra_gets=1 + len(manifest.get("changes") or []))


def current_items(
    ddb: Any, table: str, pick: Pick, partitions: tuple[str, list[dict[str, Any]]] | None = None
) -> tuple[list[Item], float, str]:
    """The selected items of ``table`` now: finds the keys created since. ``partitions`` (the partition key's name
    and values, when the selection names whole partitions): a consistent Query of each; else a consistent Scan
    of the whole table, filtered here. The read units it took, and how it read."""
    out: list[Item] = []
    units = 0.0
    if partitions is not None:
        name, values = partitions
        query = {"KeyConditionExpression": "#k = :v", "ExpressionAttributeNames": {"#k": name}}
        pages = (
            page
            for value in values
            for page in ddb.get_paginator("query").paginate(
                TableName=table, ConsistentRead=True, ExpressionAttributeValues={":v": value}, **query
            )
        )
        how = f"a consistent Query of {len(values):,} partition(s)"
    else:
        pages = ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        how = "a consistent Scan of the whole table"
    for page in pages:
        units += cost.read_units(sum(item_size(item) for item in page["Items"]))
        out.extend(item for item in page["Items"] if pick(item))
    return out, max(units, 1.0), how


def read_item(ddb: Any, table: str, key: Item) -> Item | None:
    """The item's image now (a consistent GetItem), None when absent: what its write is conditional on."""
    got: Item | None = call_with_backoff(ddb.get_item, TableName=table, Key=key, ConsistentRead=True).get("Item")
    return got


def plan(
    ddb: Any,
    s3: Any,
    streams: Any,
    table: str,
    where: tuple[str, str],
    when: dt.datetime,
    pick: Pick,
    partitions: list[dict[str, Any]] | None = None,
) -> Plan:
    """The steps that bring the selected items of ``table`` to ``when`` (``where``: bucket, table directory;
    ``partitions``: the partition key values when the selection names whole partitions, read by Query)."""
    key_names = [k["AttributeName"] for k in key_schema(ddb, table)]
    state, source, manifest, read = state_at(s3, streams, where[0], where[1], when, pick, key_names)
    keys = {k: {n: item[n] for n in key_names} for k, item in state.items()}
    now, units, how = current_items(ddb, table, pick, (key_names[0], partitions) if partitions is not None else None)
    for item in now:
        keys.setdefault(key_text(item, key_names), {n: item[n] for n in key_names})
    steps = []
    for text, key in sorted(keys.items()):
        before, after = read_item(ddb, table, key), state.get(text)
        units += cost.read_units(item_size(before) if before else 1)
        if (before and canonical(before)) != (after and canonical(after)):
            steps.append(Step(key, before, after))
    sizes = [item_size(s.after or s.before or s.key) for s in steps]
    spent = {"read": read, "readUnits": units, "readHow": f"{how}, then a consistent GetItem a key"}
    spent.update(items=len(steps), writeUnits=cost.write_units(sizes))
    return Plan(steps, key_names, source, manifest["consistentAt"], len(keys), spent)


def condition(before: Item | None, key_names: list[str]) -> dict[str, Any]:
    """The ConditionExpression (with its names and values) that holds while the item is still ``before``."""
    if before is None:
        return {
            "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": key_names[0]},
        }
    names = {f"#a{i}": n for i, n in enumerate(sorted(before))}
    values = {f":a{i}": before[n] for i, n in enumerate(sorted(before))}
    return {
        "ConditionExpression": " AND ".join(f"#a{i} = :a{i}" for i in range(len(names))),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def write(ddb: Any, table: str, step: Step, key_names: list[str]) -> str | None:
    """Write one step, conditional on the item still being ``step.before``; None when written, else why not."""
    cond = condition(step.before, key_names)
    if len(cond["ConditionExpression"]) > MAX_CONDITION:
        return f"{len(step.before or ())} attributes are too many for one condition: left as it is"
    try:
        if step.after is None:
            call_with_backoff(ddb.delete_item, TableName=table, Key=step.key, **cond)
        else:
            call_with_backoff(ddb.put_item, TableName=table, Item=step.after, **cond)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        now = read_item(ddb, table, step.key)  # a retried write that had landed fails its own condition
        if (now and canonical(now)) == (step.after and canonical(step.after)):
            return None
        return "changed since it was read: left as it is"
    return None


def write_all(ddb: Any, table: str, steps: Iterable[Step], key_names: list[str]) -> list[tuple[Step, str]]:
    """Write every step; the steps skipped (changed since read), with why."""
    skipped = []
    for step in steps:
        why = write(ddb, table, step, key_names)
        if why:
            skipped.append((step, why))
    return skipped


def run_key(table_dir: str, run_id: str) -> str:
    """The S3 key of a run's saved images."""
    return f"{table_dir}{BACKTRACKS}{run_id}.jsonl.gz"


def save(s3: Any, bucket: str, table_dir: str, table: str, when: dt.datetime, steps: list[Step]) -> str:
    """Save every step's images (before and after) under a new run id, before any write; the run id."""
    run_id = new_backup_id()
    head = {"backtrack": run_id, "table": table, "toTime": when.isoformat(), "steps": len(steps)}
    lines = [head] + [
        {
            "Keys": item_to_wire(s.key),
            "before": s.before and item_to_wire(s.before),
            "after": s.after and item_to_wire(s.after),
        }
        for s in steps
    ]
    body = gzip.compress("".join(json.dumps(doc) + "\n" for doc in lines).encode("utf-8"), mtime=0)
    s3.put_object(Bucket=bucket, Key=run_key(table_dir, run_id), Body=body, ContentEncoding="gzip")
    return run_id


def load(s3: Any, bucket: str, table_dir: str, table: str, run_id: str) -> tuple[dict[str, Any], list[Step]]:
    """A saved run: its head, and its steps as it wrote them (``before`` the image it read)."""
    key = run_key(table_dir, run_id)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
            raise
        raise BadInput(
            f"s3://{bucket}/{key}: no backtrack {run_id} of {table} (its run id is printed by backtrack; "
            f"aws s3 ls s3://{bucket}/{table_dir}{BACKTRACKS} lists them)"
        ) from None
    head, *docs = [json.loads(line) for line in gzip.decompress(body).splitlines() if line.strip()]
    if head.get("table") != table:
        raise BadInput(f"s3://{bucket}/{key}: backtrack {run_id} was of {head.get('table')}, not {table}")
    return head, [
        Step(
            item_from_wire(d["Keys"]),
            d["before"] and item_from_wire(d["before"]),
            d["after"] and item_from_wire(d["after"]),
        )
        for d in docs
    ]


def undo_steps(ddb: Any, table: str, done: list[Step]) -> tuple[list[Step], list[tuple[Step, str]]]:
    """The steps that put a run's "before" images back, each item read now and conditional on that read; and
    the keys left alone: changed since the backtrack left them (or never written by it)."""
    steps, left = [], []
    for step in done:
        now = read_item(ddb, table, step.key)
        text = now and canonical(now)
        if text == (step.before and canonical(step.before)):
            continue  # already as before the backtrack (skipped by it, or undone already)
        if text != (step.after and canonical(step.after)):
            left.append((step, "changed since the backtrack (or left alone by it): left as it is"))
            continue
        steps.append(Step(step.key, now, step.before))
    return steps, left
