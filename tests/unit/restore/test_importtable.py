"""Restore by ImportTable (ddb_backup.restore.importtable): the import must hold every item the backup promises."""

from __future__ import annotations

from typing import Any

import pytest

from ddb_backup.errors import BadInput, RestoreIncomplete
from ddb_backup.format.lines import PartRef
from ddb_backup.format.sources import Source
from ddb_backup.restore.importtable import MAX_CONCURRENT_IMPORTS, choose, finish_import
from ddb_backup.restore.resume import MARK_KEY, Mark
from tests.helpers.aws import FakeDynamoDB, FakeS3


def _source(items: int) -> Source:
    part = PartRef(id="p0", url="s3://bkt/b/data/p0.json.gz", dialect="item", items=items)
    return Source(format="ddb-backup-v1", location="s3://bkt/b/", table="T", description=None, parts=[part])


def _import(imported: int, errors: int = 0) -> dict[str, Any]:
    return {
        "ImportStatus": "COMPLETED",
        "ImportArn": "arn:aws:dynamodb:us-east-1:1:table/T2/import/01",
        "ImportedItemCount": imported,
        "ProcessedItemCount": imported + errors,
        "ErrorCount": errors,
    }


def _finish(desc: dict[str, Any], ddb: FakeDynamoDB) -> dict[str, Any]:
    return finish_import(ddb, desc, _source(10), "T2", Mark("b", "run1"), sleep=lambda _: None)


@pytest.mark.parametrize("imported", [9, 11], ids=["fewer", "more"])
def test_an_import_of_another_count_than_the_backup_holds_fails_though_it_counts_no_error(imported: int) -> None:
    ddb = FakeDynamoDB()
    with pytest.raises(RestoreIncomplete, match=rf"T2: ImportTable COMPLETED imported {imported} of the backup's 10 "):
        _finish(_import(imported), ddb)
    (tags,) = ddb.tags.values()  # the table stays marked as a partial restore
    assert [t["Key"] for t in tags] == [MARK_KEY]


def test_an_import_of_every_item_without_errors_succeeds() -> None:
    done = _finish(_import(10), FakeDynamoDB())
    assert (done["imported"], done["errors"], done["processed"]) == (10, 0, 10)


def test_an_import_with_errors_fails_even_when_the_count_matches() -> None:
    with pytest.raises(RestoreIncomplete, match="with 1 error"):
        _finish(_import(10, errors=1), FakeDynamoDB())


def test_a_run_starts_no_more_imports_than_importtable_runs_at_once() -> None:
    """ImportTable runs 50 imports at once: a set restore of more tables writes the rest (auto), or is refused
    naming the limit (import), rather than starting imports that fail (issue 23 point 9)."""
    src, s3 = _source(10), FakeS3()  # counted, S3, one gzip part of items: importable
    s3.put_object(Bucket="bkt", Key="b/data/p0.json.gz", Body=b"")
    assert choose(s3, src, "T49", exists=False, method="auto", importing=49).method == "import"
    fifty_first = choose(s3, src, "T50", exists=False, method="auto", importing=MAX_CONCURRENT_IMPORTS)
    assert fifty_first.method == "write" and "50 imports" in fifty_first.reason
    with pytest.raises(BadInput, match="already starts 50 imports"):
        choose(s3, src, "T50", exists=False, method="import", importing=MAX_CONCURRENT_IMPORTS)
