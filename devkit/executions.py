"""Running the local stack's state machines: start an execution, wait for its end (woken, not polled)."""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from ddb_backup.aws.clients import client

if TYPE_CHECKING:
    from devkit.motofixes import Endings


class Executions:
    """What :class:`devkit.emulator.LocalStack` runs its machines with (it sets :attr:`physical`)."""

    physical: dict[str, str]  # logical id -> ARN or name
    endings: Endings  # wakes wait() when an execution ends

    def start_execution(self, logical_id: str, payload: dict[str, Any], name: str | None = None) -> str:
        arn = self.physical[logical_id]
        name = name or f"local-{uuid.uuid4().hex[:12]}"
        return str(
            client("stepfunctions").start_execution(stateMachineArn=arn, name=name, input=json.dumps(payload))[
                "executionArn"
            ]
        )

    def wait(self, execution_arn: str, timeout: float = 600, poll: float = 1.0) -> dict[str, Any]:
        sfn, end = client("stepfunctions"), time.monotonic() + timeout
        while True:
            seen = self.endings.count  # read first: an end between it and the describe is not missed
            desc: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return desc
            if time.monotonic() > end:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout} s")
            self.endings.wait_after(seen, poll)

    def run(self, logical_id: str, payload: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        """Start an execution and wait for it; returns DescribeExecution (``output`` parsed when present)."""
        desc = self.wait(self.start_execution(logical_id, payload), timeout)
        if desc.get("output"):
            desc["output"] = json.loads(desc["output"])
        return desc
