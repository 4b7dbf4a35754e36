"""The soak's tables and the writers that change them every day, mirrored item for item in a model.

The model is what the tables must hold: every put, update and delete the writers make is made on the
table and on the model, so a night's snapshot of the model is what that night's backup must restore to.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ddb_backup.format import ddbjson
from devkit import sample

Snapshot = dict[str, Counter[str]]  # table -> its items (canonical text), counted


class World:
    """Tables named ``<prefix><Short>Table`` (Cumulus naming), their writers and their model."""

    def __init__(self, ddb: Any, prefix: str, *, seed: int = 26) -> None:
        self.ddb = ddb
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.model: dict[str, dict[str, dict[str, Any]]] = {}  # table -> key text -> item (client form)
        self.keys: dict[str, list[tuple[str, str]]] = {}
        self.next_index: dict[str, int] = {}
        self.counts: Counter[str] = Counter()  # puts, updates, deletes made

    def name(self, short: str) -> str:
        return sample.table_name(self.prefix, short)

    def _key(self, table: str, item: dict[str, Any]) -> str:
        return ddbjson.canonical({attr: item[attr] for attr, _ in self.keys[table]})

    def create(self, short: str, count: int) -> str:
        table = self.name(short)
        keys = sample.CUMULUS_TABLES[short]
        sample.create_table(self.ddb, table, keys, gsi=short == "Granules")
        self.keys[table], self.model[table], self.next_index[table] = keys, {}, count
        records = list(sample.items(keys, count, seed=self.rng.randrange(10**6), size=400))
        sample.fill(self.ddb, table, iter(records))
        for item in records:
            self.model[table][self._key(table, item)] = item
        return table

    def delete(self, short: str) -> str:
        table = self.name(short)
        self.ddb.delete_table(TableName=table)
        self.ddb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        del self.model[table]
        return table

    def churn(self, changes: int) -> None:
        """``changes`` writes on every table: about half puts of new items, a third updates, the rest deletes."""
        for table in sorted(self.model):
            for _ in range(changes):
                roll = self.rng.random()
                if roll < 0.5 or len(self.model[table]) < 10:
                    self._put(table)
                elif roll < 0.8:
                    self._update(table)
                else:
                    self._delete_item(table)

    def _put(self, table: str) -> None:
        index = self.next_index[table]
        self.next_index[table] += 1
        item = sample.make_item(self.keys[table], index, self.rng, size=400)
        self.ddb.put_item(TableName=table, Item=item)
        self.model[table][self._key(table, item)] = item
        self.counts["puts"] += 1

    def _pick(self, table: str) -> dict[str, Any]:
        key = self.rng.choice(sorted(self.model[table]))
        return self.model[table][key]

    def _update(self, table: str) -> None:
        item = self._pick(table)
        key = {attr: item[attr] for attr, _ in self.keys[table]}
        status, touched = self.rng.choice(["completed", "failed", "running"]), str(self.rng.randrange(10**9))
        self.ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :s, touched = :t REMOVE notes",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":t": {"N": touched}},
        )
        updated = {k: v for k, v in item.items() if k != "notes"}
        updated.update({"status": {"S": status}, "touched": {"N": touched}})
        self.model[table][self._key(table, item)] = updated
        self.counts["updates"] += 1

    def _delete_item(self, table: str) -> None:
        item = self._pick(table)
        self.ddb.delete_item(TableName=table, Key={attr: item[attr] for attr, _ in self.keys[table]})
        del self.model[table][self._key(table, item)]
        self.counts["deletes"] += 1

    def snapshot(self) -> Snapshot:
        return {table: Counter(ddbjson.canonical(i) for i in items.values()) for table, items in self.model.items()}


def table_snapshot(ddb: Any, table: str) -> Counter[str]:
    """A table's items as they are, in the model's form."""
    out: Counter[str] = Counter()
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        out.update(ddbjson.canonical(i) for i in page["Items"])
    return out
