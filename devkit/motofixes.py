"""Patches the local stack applies to moto where it breaks under our use (not AWS rules: see devkit.strict)."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any
from unittest import mock


class ScaledTime:
    """``time`` for moto's retrier: its waits, scaled."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def item_count(self: Any) -> int:
    """moto's ``Table.__len__`` over a snapshot of its items, so a concurrent write cannot break it."""
    values = list(self.items.values())
    return sum(len(value) for value in values) if self.has_range_key else len(values)


def share_backend_deepcopy(self: Any, memo: dict[int, Any]) -> Any:
    import copy

    clone = self.__class__.__new__(self.__class__)
    memo[id(self)] = clone
    for name, value in vars(self).items():
        setattr(clone, name, value if name in ("backend", "executions") else copy.deepcopy(value, memo))
    return clone


def tag_replacing(self: Any, table_arn: str, tags: list[dict[str, str]]) -> None:
    """``DynamoDBBackend.tag_resource`` as DynamoDB does it: a key tagged again takes the new value.

    moto appends a second tag with the same key, so ListTagsOfResource returns both and a
    reader sees whichever comes first (a restore's re-mark would read as the old run's).
    """
    for table in self.tables.values():
        if table.table_arn == table_arn:
            keys = {tag["Key"] for tag in tags}
            table.tags = [tag for tag in table.tags if tag["Key"] not in keys] + list(tags)


class Endings:
    """Wakes :meth:`LocalStack.wait` when an execution ends, instead of polling DescribeExecution.

    Polling every 50 ms spent CPU (and the GIL) that the execution's own threads needed; this
    wraps moto's ``terminated`` hook, which runs once an execution's status is final.
    """

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def wrap(self, terminated: Any) -> Any:
        def ended(communication: Any) -> None:
            try:
                terminated(communication)
            finally:
                with self.changed:
                    self.count += 1
                    self.changed.notify_all()

        return ended

    def patches(self) -> list[Any]:
        """This, and :func:`parse_once`, as patches of moto's Step Functions."""
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser as Parser
        from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication as Communication

        return [
            mock.patch.object(Communication, "terminated", self.wrap(Communication.terminated)),
            mock.patch.object(Parser, "parse", staticmethod(parse_once(Parser.parse))),
        ]

    def wait_after(self, seen: int, timeout: float) -> None:
        """Until an execution ends after ``seen`` (a :attr:`count` read earlier), or ``timeout`` seconds."""
        with self.changed:
            self.changed.wait_for(lambda: self.count != seen, timeout)


@functools.cache
def parse_once(parse: Any) -> Any:
    """moto's ASL parser, remembering each definition's parse (the same few machines run hundreds of times).

    moto parses a definition when the machine is created and again at every execution (a
    Distributed Map child is one too): 0.1-0.5 s of CPU each. The parsed components hold no
    state of a run (runs share them already: a Map's iterations evaluate one tree at once).
    """
    return functools.lru_cache(maxsize=64)(parse)
