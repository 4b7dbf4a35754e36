"""Part checks (ddb_backup.format.lines): a count or size other than promised, larger or smaller, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb_backup.errors import BackupIncomplete, IntegrityError
from ddb_backup.format.lines import PartRef, check_part_count, verified_copy


@pytest.mark.parametrize("count", [4, 6], ids=["fewer", "more"])
def test_a_local_file_holding_another_count_than_its_end_line_is_incomplete(count: int) -> None:
    part = PartRef(id="f", url="/tmp/f.jsonl", dialect="local")
    with pytest.raises(BackupIncomplete, match=rf"its end line says 5 items, it holds {count}"):
        check_part_count(part, "/tmp/f.jsonl", 5, count)


@pytest.mark.parametrize("count", [4, 6], ids=["fewer", "more"])
def test_a_part_holding_another_count_than_its_manifest_is_refused(count: int) -> None:
    part = PartRef(id="p0", url="s3://bkt/p0", dialect="item", items=5)
    with pytest.raises(IntegrityError, match=rf"holds {count} items, manifest says 5"):
        check_part_count(part, "s3://bkt/p0", None, count)


def test_a_part_holding_what_it_promises_passes() -> None:
    check_part_count(PartRef(id="f", url="/tmp/f.jsonl", dialect="local", items=5), "/tmp/f.jsonl", 5, 5)


@pytest.mark.parametrize("size", [8, 10], ids=["shorter", "longer"])
def test_a_part_of_another_size_than_its_manifest_is_corrupt(tmp_path: Path, size: int) -> None:
    path = tmp_path / "p0.jsonl"
    path.write_bytes(b"x" * size)
    part = PartRef(id="p0", url=str(path), dialect="item", bytes=9)
    with pytest.raises(IntegrityError, match=rf"{size} bytes, manifest says 9"):
        verified_copy(part, None)
