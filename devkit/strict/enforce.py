"""What AWS enforces and moto does not, switched on for one local stack.

- IAM (:mod:`devkit.strict.iam`): every call a function or state machine makes is checked against its own role
  as SAM expands it from template.yaml, KMS keys included;
- provisioned throughput (:mod:`devkit.strict.throughput`): PROVISIONED tables throttle at their units;
- Step Functions (:mod:`devkit.strict.sfn`): the 256 KiB payload quota on Map results, terminal
  ``States.DataLimitExceeded``, and Distributed Map child failures that fail the Map;
- S3 Replication (:mod:`devkit.strict.replication`): a bucket's replication rules carried out, as its
  replication role may.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
from botocore.handlers import BUILTIN_HANDLERS

from devkit.strict import iam
from devkit.strict import sfn as strict_sfn
from devkit.strict.replication import Replication
from devkit.strict.throughput import Throughput


@dataclass(frozen=True)
class Rules:
    """Which of AWS's rules a local stack enforces (all, unless a test says otherwise)."""

    iam: bool = True
    throughput: bool = True
    step_functions: bool = True
    replication: bool = True


class Enforcement:
    """The patches and botocore handlers that apply :class:`Rules` while a local stack runs."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.throughput = Throughput()
        self.roles: iam.Roles | None = None
        self.replication = Replication(lambda: self.roles)
        self._stack = ExitStack()
        self._handlers: list[tuple[str, Callable[..., Any]]] = []

    def start(self) -> None:
        """Before deployment: Step Functions rules, the thread-carried principal, throughput."""
        if self.rules.step_functions:
            self._stack.enter_context(strict_sfn.enforced())
        self._stack.enter_context(
            mock.patch.object(ThreadPoolExecutor, "submit", iam.carry_principal(ThreadPoolExecutor.submit))
        )
        self._stack.enter_context(iam.threads_keep_principal())
        if self.rules.throughput:
            # Ahead of moto's own before-send handler, which answers every request.
            self._add("before-send.dynamodb", self.throughput.before_send, first=True)
            self._add("after-call.dynamodb", self.throughput.after_call)
        if self.rules.replication:
            self._add("before-parameter-build.s3", self.replication.stash)
            self._add("after-call.s3", self.replication.after_call)
            self._stack.enter_context(self.replication.status_header())

    def deployed(
        self,
        template: dict[str, Any],
        root: Path,
        resolve: Callable[[Any], Any],
        machines: dict[str, str],
        deployed: set[str] | None = None,
    ) -> None:
        """After deployment (every name known): the roles, and who runs each state machine's states.

        ``deployed``: the logical ids deployed (a principal whose condition is false is left out:
        its policies may name resources that were not created either)."""
        if not self.rules.iam:
            return
        documents = iam.role_documents(iam.expand(template, root))
        if deployed is not None:
            documents = {k: v for k, v in documents.items() if k in deployed}
        self.roles = iam.Roles(documents, resolve)
        self._add("before-parameter-build", iam.enforcing(self.roles))
        self._stack.enter_context(state_machine_principals(machines))

    def _add(self, event: str, handler: Callable[..., Any], *, first: bool = False) -> None:
        entry = (event, handler)
        if first:
            BUILTIN_HANDLERS.insert(0, entry)
        else:
            BUILTIN_HANDLERS.append(entry)
        self._handlers.append(entry)
        boto3.DEFAULT_SESSION = None  # sessions made from now on carry the handler

    def stop(self) -> None:
        for entry in self._handlers:
            BUILTIN_HANDLERS.remove(entry)
        self._handlers.clear()
        boto3.DEFAULT_SESSION = None
        self._stack.close()


def state_machine_principals(machines: dict[str, str]) -> Any:
    """Run each state of a state machine as that machine's role (its ItemReader, invokes, ResultWriter).

    ``machines`` maps a state machine's name to its logical id.
    """
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original = CommonStateField._eval_body

    def eval_body(self: Any, env: Any) -> None:
        arn = str(env.states.context_object.context_object_data.get("StateMachine", {}).get("Id", ""))
        name = arn.split(":stateMachine:", 1)[-1].split("/", 1)[0]
        with iam.acting_as(machines.get(name)):
            original(self, env)

    return mock.patch.object(CommonStateField, "_eval_body", eval_body)
