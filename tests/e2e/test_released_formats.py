"""Upgrades keep old backups readable (issue 26 point 4): backups written by each released version of this tool,
kept here as they were written, restore with today's code item for item (CHANGELOG.md notes format changes).

``tests/fixtures/ddb-backup-0.1.0/``: a v1 backup in S3 (``s3/backups/mystack-GranulesTable/<id>/``), an exact
one with its ``changes/`` (``mystack-ExecutionsTable``, changed after its scan: a put and a delete only its
changes hold), and a local file (``mystack-CollectionsTable.json``, with its end line's count and sha256).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddb_backup.aws.clients import client
from ddb_backup_cli.main import main
from tests.conftest import table_items

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELEASES = sorted(p for p in FIXTURES.glob("ddb-backup-*") if p.is_dir())
BUCKET = "fixture-bucket"


def _expected(path: Path) -> list[str]:
    return sorted(json.dumps(json.loads(line), sort_keys=True) for line in path.read_text().splitlines() if line)


def _restored(table: str) -> list[str]:
    return sorted(json.dumps(item, sort_keys=True) for item in table_items(client("dynamodb"), table))


@pytest.fixture
def uploaded(aws: None, request: pytest.FixtureRequest) -> Path:
    release: Path = request.param
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for path in (release / "s3").rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=BUCKET, Key=str(path.relative_to(release / "s3")), Body=path.read_bytes())
    return release


def test_a_release_of_each_kind_is_kept() -> None:
    assert RELEASES and all((r / "s3" / "backups").is_dir() for r in RELEASES)


@pytest.mark.parametrize("uploaded", RELEASES, ids=[r.name for r in RELEASES], indirect=True)
def test_every_backup_a_released_version_wrote_restores_item_for_item(uploaded: Path) -> None:
    [plain] = list((uploaded / "s3/backups/mystack-GranulesTable").iterdir())
    assert (
        main(["-q", "restore", f"s3://{BUCKET}/backups/mystack-GranulesTable/{plain.name}/", "--table", "old-g"]) == 0
    )
    assert _restored("old-g") == _expected(FIXTURES / "expected/mystack-GranulesTable.jsonl")

    assert main(["-q", "restore", str(uploaded / "mystack-CollectionsTable.json"), "--table", "old-c"]) == 0
    assert _restored("old-c") == _expected(FIXTURES / "expected/mystack-CollectionsTable.jsonl")

    exact = _expected(uploaded / "exact-mystack-ExecutionsTable.expected.jsonl")
    assert exact != _expected(FIXTURES / "expected/mystack-ExecutionsTable.jsonl")  # its changes matter
    assert main(["-q", "restore", f"s3://{BUCKET}/backups/mystack-ExecutionsTable/", "--table", "old-e"]) == 0
    assert _restored("old-e") == exact
    [directory] = list((uploaded / "s3/backups/mystack-ExecutionsTable").iterdir())
    assert main(["-q", "restore", f"{directory}/", "--table", "old-e-local"]) == 0  # a copy on disk, changes too
    assert _restored("old-e-local") == exact
