"""Step Functions' 25,000 history events an execution (issue 23 point 9), enforced by the local stack
(devkit.strict.sfn): a restore whose import runs 48 hours waits within it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from devkit.emulator import LocalStack
from devkit.strict import sfn as strict_sfn
from tests.conftest import table_items
from tests.statemachine.test_restore_import_sm import _backup

HOURS = 48


class _ImportFor:
    """DescribeImport says IN_PROGRESS until the executions' Wait states have waited ``hours`` (simulated)."""

    def __init__(self, clock: strict_sfn.SimulatedClock, hours: float) -> None:
        self.clock, self.seconds, self.polls = clock, hours * 3600, 0
        client("dynamodb").meta.events.register("after-call.dynamodb.DescribeImport", self.running)

    def running(self, parsed: dict[str, Any], **_: Any) -> None:
        self.polls += 1
        if self.clock.seconds < self.seconds:
            parsed["ImportTableDescription"]["ImportStatus"] = "IN_PROGRESS"


def _history(execution_arn: str) -> int:
    sfn, events, token = client("stepfunctions"), 0, None
    while True:
        page = sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000, **({"nextToken": token} if token else {})
        )
        events += len(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def test_a_48_hour_import_is_polled_within_the_history_limit(stack: LocalStack) -> None:
    """With a wait of IMPORT_POLL_SECONDS every round (the stack's 1 s, or 30 s on AWS: ~2,700 rounds), the
    execution ran out of history events after ~23 h (fails on that ASL); the waits double to ~15 minutes."""
    manifest = _backup(stack)
    with strict_sfn.simulated_waits() as clock:
        slow = _ImportFor(clock, HOURS)
        desc = stack.run("RestoreStateMachine", {"source": manifest, "table": "restore-copy", "method": "import"})
    assert desc["status"] == "SUCCEEDED", desc.get("cause")
    assert clock.seconds >= HOURS * 3600 and slow.polls > clock.waits
    assert clock.waits < 250  # rounds: doubling from 1 s to 1,024 s, then 1,024 s each
    assert _history(desc["executionArn"]) < strict_sfn.MAX_HISTORY_EVENTS
    assert len(table_items(client("dynamodb"), "restore-copy")) == 120


def test_an_execution_past_its_history_limit_fails_with_states_runtime(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit itself (lowered to 400 events for speed): a loop that never ends fails the execution."""
    monkeypatch.setattr(strict_sfn, "MAX_HISTORY_EVENTS", 400)
    definition = {"StartAt": "Again", "States": {"Again": {"Type": "Pass", "Next": "Again"}}}
    sfn = client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/loop"
    arn = sfn.create_state_machine(name="forever", definition=json.dumps(definition), roleArn=role)["stateMachineArn"]
    desc = stack.wait(sfn.start_execution(stateMachineArn=arn)["executionArn"], timeout=300)
    assert desc["status"] == "FAILED", desc
    assert desc["error"] == "States.Runtime" and "maximum number of history events (400)" in desc["cause"]
    assert 400 <= _history(desc["executionArn"]) <= 405
