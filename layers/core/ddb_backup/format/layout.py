"""Where things live in the bucket (backup format v1).

    <prefix><table>/<backup-id>/data/<segment>-<part>.json.gz   the items
    <prefix><table>/<backup-id>/manifest.json                   written last
    <prefix><table>/<backup-id>/plan.json                       run bookkeeping
    <prefix><table>/<backup-id>/checkpoints/<segment>-<seq>.json one per scan invocation
    <prefix><table>/<backup-id>/errors/<segment>.json           why a segment failed
    <prefix>@ddb-backup/runs/<backup-id>/run.json               the tables a backup run planned
    <prefix>@ddb-backup/restores/<run-id>/                      a restore run's bookkeeping

Bookkeeping lives under ``@ddb-backup/``: '@' cannot occur in a table name, so
no table's directory can be it (before, ``_runs/`` and ``_restores/`` shared
their namespace with tables named ``_...``).

Keys inside a manifest are relative to the backup directory, so a backup can be
copied or moved as a whole.
"""

from __future__ import annotations

from ddb_backup.errors import BadInput

MANIFEST = "manifest.json"
PLAN = "plan.json"
RUN_RECORD = "run.json"
#: The bookkeeping directory under a prefix: not a valid table name, so no table can take it.
BOOKKEEPING = "@ddb-backup/"
#: Where bookkeeping lived before: also valid table names, so only complete backups count there.
LEGACY_BOOKKEEPING = ("_runs", "_restores")
DATA_DIR = "data/"


def run_dir(prefix: str, backup_id: str) -> str:
    """A backup run's bookkeeping: its work list and ``run.json`` (the tables it planned)."""
    return f"{prefix}{BOOKKEEPING}runs/{backup_id}/"


def restore_dir(prefix: str, run_id: str) -> str:
    """A restore run's bookkeeping: plan, work list, results, errors, report."""
    return f"{prefix}{BOOKKEEPING}restores/{run_id}/"


def backup_dir(prefix: str, table: str, backup_id: str) -> str:
    return f"{prefix}{table}/{backup_id}/"


def part_key(segment: int, part: int) -> str:
    """A part's key relative to the backup directory."""
    return f"{DATA_DIR}{segment:06d}-{part:06d}.json.gz"


def checkpoint_key(segment: int, seq: int) -> str:
    return f"checkpoints/{segment:06d}-{seq:06d}.json"


def error_key(segment: int) -> str:
    return f"errors/{segment:06d}.json"


def check_relative_key(key: str, where: str) -> str:
    """Refuse manifest entries that would reach outside the backup directory."""
    if (
        not isinstance(key, str)
        or not key.startswith(DATA_DIR)
        or key.startswith("/")
        or "\\" in key
        or any(ord(c) < 0x20 or c == "\x7f" for c in key)
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise BadInput(f"{where}: part key {key!r} points outside the backup's data/ directory")
    return key
