"""The diff behind verify and mirror: two iterables of items in, counts, examples and callbacks out."""

from __future__ import annotations

from typing import Any

from ddb_backup import compare


def _item(i: int, v: int = 0) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}, "v": {"N": str(v)}}


def test_the_diff_counts_every_kind_and_calls_back_for_each_key():
    backup = [_item(1), _item(2), _item(3, v=1), _item(4)]
    table = [_item(1), _item(3, v=2), _item(4), _item(5)]
    differs: list[bytes] = []
    extra: list[dict[str, Any]] = []
    seen: list[tuple[int, int]] = []
    diff = compare.diff_items(
        iter(backup),
        iter(table),
        ["pk"],
        estimate=4,
        on_differs=differs.append,
        on_extra=extra.append,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (diff.backup_items, diff.table_items) == (4, 4)
    assert (diff.missing, diff.changed, diff.extra, diff.same, diff.duplicates) == (1, 1, 1, 2, 0)
    assert diff.examples == {
        "missing": [{"pk": {"S": "k2"}}],
        "changed": [{"pk": {"S": "k3"}}],
        "extra": [{"pk": {"S": "k5"}}],
    }
    assert sorted(differs) == sorted(compare.key_hash(_item(i), ["pk"]) for i in (2, 3))
    assert extra == [{"pk": {"S": "k5"}}]
    partitions = compare.partitions_for(4)
    assert seen == [(n, partitions) for n in range(partitions + 1)]  # 0 first, then one call a partition


def test_a_key_twice_in_the_backup_is_counted_and_the_last_one_wins():
    diff = compare.diff_items([_item(1, v=1), _item(1, v=2)], [_item(1, v=2)], ["pk"], estimate=1)
    assert (diff.duplicates, diff.same, diff.changed) == (1, 1, 0)


def test_the_examples_stop_at_the_limit_but_the_counts_do_not():
    diff = compare.diff_items((_item(i) for i in range(30)), [], ["pk"], estimate=30, limit=3)
    assert diff.missing == 30 and len(diff.examples["missing"]) == 3


def test_attribute_changes_name_what_was_added_removed_and_changed():
    saved = {"pk": {"S": "a"}, "gone": {"S": "x"}, "v": {"N": "1"}}
    now = {"pk": {"S": "a"}, "new": {"S": "y"}, "v": {"N": "2"}}
    assert compare.attribute_changes(saved, now) == {"added": ["new"], "removed": ["gone"], "changed": ["v"]}
