"""Every Lambda task of the state machines times out, and is retried, as its function can fail on AWS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devkit.cfn import CfnLoader

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = CfnLoader.load((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
MACHINES = {"BackupStateMachine": "backup.asl.json", "RestoreStateMachine": "restore.asl.json"}
#: Errors of a Lambda that died (timeout, out of memory, crash): worth another try when the step is idempotent.
DIED = {"Sandbox.Timedout", "Runtime.OutOfMemory", "Runtime.ExitError", "States.Timeout"}
#: Steps that may safely run twice: they rewrite the same objects from the same input.
IDEMPOTENT = {"Scan the next pages of this segment", "Restore the next items of this part", "Write the manifest",
              "Report the run"}  # fmt: skip


def _tasks(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, state in states.items():
        if state.get("Resource") == "arn:aws:states:::lambda:invoke":
            out.append((name, state))
        if "ItemProcessor" in state:
            out.extend(_tasks(state["ItemProcessor"]["States"]))
    return out


def _function_timeout(machine: str, task: dict[str, Any]) -> int:
    substitution = task["Parameters"]["FunctionName"].strip("${}")
    function = RESOURCES[machine]["Properties"]["DefinitionSubstitutions"][substitution]["Fn::GetAtt"][0]
    default = TEMPLATE["Globals"]["Function"]["Timeout"]
    return int(RESOURCES[function]["Properties"].get("Timeout", default))


CASES = [
    (machine, name, task)
    for machine, path in MACHINES.items()
    for name, task in _tasks(json.loads((ROOT / "statemachine" / path).read_text())["States"])
]


@pytest.mark.parametrize(("machine", "name", "task"), CASES, ids=[f"{m}:{n}" for m, n, _ in CASES])
def test_each_lambda_task_times_out_just_after_its_function(machine, name, task):
    """Without TimeoutSeconds a task waits forever and a States.Timeout retry never fires; the task's timeout
    must leave the function its whole Timeout (Lambda's own timeout, Sandbox.Timedout, comes first)."""
    timeout = _function_timeout(machine, task)
    assert "TimeoutSeconds" in task, f"{machine} {name!r}: no TimeoutSeconds"
    assert timeout < task["TimeoutSeconds"] <= timeout + 120, (name, timeout, task["TimeoutSeconds"])


@pytest.mark.parametrize("name", sorted(IDEMPOTENT))
def test_idempotent_steps_retry_a_lambda_that_died(name):
    retried: set[str] = set()
    for path in MACHINES.values():
        for task_name, task in _tasks(json.loads((ROOT / "statemachine" / path).read_text())["States"]):
            if task_name == name:
                retried |= {e for r in task.get("Retry", []) for e in r["ErrorEquals"]}
    assert retried >= DIED, f"{name!r} does not retry {sorted(DIED - retried)}"
