"""Checks before a restore (ddb_backup.restore.preflight): a part of any other size than its manifest's is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddb_backup.errors import IntegrityError
from ddb_backup.format.lines import PartRef
from ddb_backup.restore.preflight import check_parts_present


@pytest.mark.parametrize("size", [8, 10], ids=["shorter", "longer"])
def test_a_part_shorter_or_longer_than_its_manifest_says_is_refused_before_anything_is_done(
    tmp_path: Path, size: int
) -> None:
    path = tmp_path / "p0.jsonl"
    path.write_bytes(b"x" * size)
    part = PartRef(id="p0", url=str(path), dialect="item", items=1, bytes=9)
    with pytest.raises(IntegrityError, match=rf"is {size} bytes, the manifest says 9: nothing was created or written"):
        check_parts_present([part], None)
