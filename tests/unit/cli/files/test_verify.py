"""``ddb-backup verify``: differences found across partitions, in memory that does not grow with the table."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from ddb_backup import compare
from ddb_backup.format import location
from ddb_backup.format.localfile import write_local_file
from ddb_backup_cli.files import verify


def _item(i: int, value: int | None = None) -> dict[str, Any]:
    return {"pk": {"S": f"k{i:08d}"}, "v": {"N": str(i if value is None else value)}, "pad": {"S": "x" * 20}}


class _Table:
    """A DynamoDB client for one table whose scan pages are made on the fly (nothing held)."""

    def __init__(self, items: Any, count: int) -> None:
        self._items, self._count = items, count

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}], "ItemCount": self._count}}

    meta = SimpleNamespace(events=SimpleNamespace(register=lambda *a, **kw: None))  # fastscan's hook: not used

    def scan(self, TableName: str, ExclusiveStartKey: Any = None, Segment: int = 0, **_: Any) -> dict[str, Any]:
        if Segment:  # every item is in segment 0 of this fake
            return {"Items": []}
        if ExclusiveStartKey is None:
            self._pages = self._paginate()
        page = next(self._pages)
        return {"Items": page, "LastEvaluatedKey": {"pk": {"S": "more"}}} if page else {"Items": []}

    def _paginate(self) -> Iterator[list[dict[str, Any]]]:
        page: list[dict[str, Any]] = []
        for item in self._items():
            page.append(item)
            if len(page) == 100:
                yield page
                page = []
        yield page
        yield []

    def get_item(self, TableName: str, Key: dict[str, Any], ConsistentRead: bool) -> dict[str, Any]:
        found = [item for item in self._items() if item["pk"] == Key["pk"]]
        return {"Item": found[-1]} if found else {}


@pytest.fixture
def small_partitions(monkeypatch):
    monkeypatch.setattr(compare, "PARTITION_ITEMS", 500)
    monkeypatch.setattr(compare, "BUFFER_BYTES", 64 * 1024)
    monkeypatch.setattr(location, "CHUNK", 64 * 1024)  # files are read in pieces of this size


def test_differences_are_found_across_partitions_with_examples(tmp_path, small_partitions):
    path = tmp_path / "T.json"
    write_local_file(path, (_item(i) for i in range(3000)), table="T", description=None)

    def table() -> Iterator[dict[str, Any]]:
        for i in range(3000):
            if i == 7:
                continue  # missing
            yield _item(i, 0) if i == 2500 else _item(i)
        yield _item(99999)  # extra

    report = verify.verify_table(_Table(table, 3000), None, "T", str(path), limit=10)
    assert (report["backupItems"], report["tableItems"]) == (3000, 3000)
    assert (report["missing"], report["extra"], report["changed"], report["identical"]) == (1, 1, 1, False)
    assert sorted((e["kind"], e["key"]["pk"]["S"]) for e in report["examples"]) == [
        ("changed", "k00002500"),
        ("extra in table", "k00099999"),
        ("missing from table", "k00000007"),
    ]
    same = verify.verify_table(_Table(lambda: (_item(i) for i in range(3000)), 3000), None, "T", str(path))
    assert same["identical"] and same["examples"] == []


def _peak(tmp_path, n: int) -> int:
    path = tmp_path / f"T{n}.json"
    write_local_file(path, (_item(i) for i in range(n)), table="T", description=None)
    tracemalloc.start()
    try:
        report = verify.verify_table(_Table(lambda: (_item(i) for i in range(n)), n), None, "T", str(path))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert report["identical"] and report["tableItems"] == n


def test_memory_does_not_grow_with_the_number_of_items(tmp_path, small_partitions):
    """Once ~210 bytes per item (a dict of every key): 20,000 more items were ~4 MB more."""
    small, large = _peak(tmp_path, 4000), _peak(tmp_path, 24000)
    assert large - small < 1_000_000, f"peak {small:,} B at 4,000 items, {large:,} B at 24,000"


def test_a_changed_item_names_the_attributes_that_differ(tmp_path):
    """Issue 16: verify says which attributes differ: added (only the table), removed (only the backup), changed."""
    path = tmp_path / "T.json"
    write_local_file(path, (_item(i) for i in range(50)), table="T", description=None)

    def table() -> Iterator[dict[str, Any]]:
        for i in range(50):
            item = _item(i)
            if i == 20:
                item = {"pk": item["pk"], "v": {"N": "-1"}, "note": {"S": "edited by hand"}}  # pad gone
            if i == 30:
                item["tags"] = {"SS": ["a"]}
            yield item

    report = verify.verify_table(_Table(table, 50), None, "T", str(path), limit=10)
    assert report["changed"] == 2 and not report["identical"]
    by_key = {e["key"]["pk"]["S"]: e["attributes"] for e in report["examples"]}
    assert by_key == {
        "k00000020": {"added": ["note"], "removed": ["pad"], "changed": ["v"]},
        "k00000030": {"added": ["tags"], "removed": [], "changed": []},
    }
