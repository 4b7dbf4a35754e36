"""A restore to a time of selected items through the restore state machine (issue 28 point 1), on the local
stack with the strict stream: the backup's selected items, then the archive's changes of the selected keys
only (a key the changes alone bring is selected too), equal to the model at the time for those keys."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ddb_backup.aws.clients import client
from devkit.emulator import LocalStack
from tests.changes.test_model import TABLE, Writer, create_table
from tests.conftest import backup_summaries, canonical, restore_report, table_items


@pytest.fixture
def archiving(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The stack archiving the model table's stream (the table exists before the deploy maps it)."""
    monkeypatch.setenv("STREAM_SETTLE_SECONDS", "0")
    stack = LocalStack(env={"PART_BYTES": str(16 * 1024)}, before_deploy=lambda: create_table(client("dynamodb")))
    stack.parameters = {**stack.parameters, "ChangeArchiveTables": TABLE}
    with stack:
        yield stack


def _selected(key: tuple[str, str], single: tuple[str, str]) -> bool:
    """The model's view of the selection below: partition p3, every partition starting p1, and the key
    ``single`` (in a keys file in S3)."""
    return key[0] == "p3" or key == single or key[0].startswith("p1")


def test_a_selection_restored_to_a_time_equals_the_model_then_for_the_selected_keys(archiving: LocalStack) -> None:
    stack, ddb = archiving, client("dynamodb")
    bucket = stack.outputs["BackupBucketName"]
    prefix = stack.functions[next(iter(stack.functions))].environment.get("BACKUP_PREFIX", "")
    writer = Writer(ddb, seed=28)
    writer.run(count=300)
    desc = stack.run("BackupStateMachine", {"tables": [TABLE]})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    [summary] = backup_summaries(desc)
    at_backup = set(writer.model)
    writer.snapshots.clear()
    writer.run(count=400, snapshot_every=200)
    stack.streams.deliver()
    when, state = writer.snapshots[0]
    single = min(k for k in state if k[0] not in ("p3", "p2") and not k[0].startswith("p1"))
    keys = json.dumps({"pk": {"S": single[0]}, "sk": {"N": single[1]}}) + "\n"
    client("s3").put_object(Bucket=bucket, Key="keys/one.jsonl", Body=keys)  # finalize reads the plan's copy
    select = {"keys": ["pk=p3"], "keyPrefixes": ["pk=p1"], "keysFile": f"s3://{bucket}/keys/one.jsonl"}

    desc = stack.run(
        "RestoreStateMachine",
        {"source": f"s3://{bucket}/{prefix}{TABLE}/", "table": "sel-pit", "toTime": when.isoformat(), "select": select},
    )

    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    expected = sorted(canonical(item) for key, item in state.items() if _selected(key, single))
    assert sorted(map(canonical, table_items(ddb, "sel-pit"))) == expected
    assert any(_selected(k, single) for k in set(state) - at_backup)  # some selected key came from the changes alone
    [row] = restore_report(desc)["tables"]
    assert row["until"] == when.isoformat() and row["changesApplied"] > 0
    assert row["itemsRestored"] < summary["items"]  # only the backup's selected items went through the parts
