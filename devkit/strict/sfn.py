"""Step Functions rules AWS enforces and moto does not: the local stack applies them with these patches.

- A Map state's result (the array of its children's outputs, or the ResultWriter's summary) is held to
  the 256 KiB payload quota before ResultPath applies, as on AWS: a run with many children and no
  ResultWriter dies with ``States.DataLimitExceeded``.
- ``States.DataLimitExceeded`` is terminal: no Retry or Catch handles it.
- A Distributed Map fails with ``States.ExceedToleratedFailureThreshold`` when more children failed
  than ``ToleratedFailureCount`` or ``ToleratedFailurePercentage`` allows (a threshold the ASL does not
  set does not apply; with neither set, one failed child fails the Map), where moto counts the
  failures and carries on.
- An execution's history holds at most 25,000 events: a state that would start past them fails the execution
  with ``States.Runtime`` (no Retry or Catch handles it), where moto's history grows without end. A poll
  loop of a Task, a Choice and a Wait adds about 9 events a round.

:func:`simulated_waits` (for tests) makes Wait states return at once, adding their seconds to a clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, cast
from unittest import mock

from moto.stepfunctions.parser.api import EvaluationFailedEventDetails, HistoryEventType
from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
    ToleratedFailureCountDecl,
    ToleratedFailurePercentageDecl,
)
from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.quotas import is_within_size_quota

if TYPE_CHECKING:
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

DATA_LIMIT = StatesErrorNameType.StatesStatesDataLimitExceeded
RUNTIME = StatesErrorNameType.StatesRuntime
#: Most events one execution's history holds (AWS quota, standard workflows).
MAX_HISTORY_EVENTS = 25_000
TOLERATED = StatesErrorNameType.StatesExceedToleratedFailureThreshold
#: The thresholds the running Map's ASL sets: (ToleratedFailureCount, ToleratedFailurePercentage).
_running = threading.local()


def _details(failed: EvaluationFailedEventDetails) -> EventDetails:
    details: Any = {"evaluationFailedEventDetails": failed}
    return cast("EventDetails", details)


def _fail(env: Any, typ: StatesErrorNameType, cause: str) -> FailureEventException:
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=typ),
            event_type=HistoryEventType.EvaluationFailed,
            event_details=_details(EvaluationFailedEventDetails(error=typ.to_name(), cause=cause)),
        )
    )


def _note_thresholds(original: Callable[..., None]) -> Callable[..., None]:
    def from_state_props(self: StateMap, state_props: Any) -> None:
        original(self, state_props)
        declared = (state_props.get(ToleratedFailureCountDecl), state_props.get(ToleratedFailurePercentageDecl))
        self.declared_thresholds = tuple(d is not None for d in declared)  # type: ignore[attr-defined]

    return from_state_props


def _map_result_within_quota(original: Callable[..., None]) -> Callable[..., None]:
    def eval_execution(self: StateMap, env: Any) -> None:
        _running.thresholds = getattr(self, "declared_thresholds", (False, False))
        original(self, env)
        if env.stack and not is_within_size_quota(env.stack[-1]):
            raise _fail(
                env,
                DATA_LIMIT,
                f"The state/task '{self.name}' returned a result with a size exceeding the maximum number of "
                "bytes service limit (256 KiB): the Map's results are collected before ResultPath applies; "
                "give it a ResultWriter or smaller child outputs.",
            )

    return eval_execution


def _data_limit_is_terminal(original: Callable[..., None]) -> Callable[..., None]:
    def eval_body(self: ErrorEqualsDecl, env: Any) -> None:
        error_name = env.stack[-1]
        original(self, env)
        if isinstance(error_name, StatesErrorName) and error_name.typ in (DATA_LIMIT, RUNTIME):
            env.stack[-1] = False

    return eval_body


def _children_failures_fail_the_map(original: Callable[..., None]) -> Callable[..., None]:
    def map_run(self: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
        original(self, env, eval_input)
        counter = eval_input.map_run_record.item_counter
        failed = counter.failed.get() + counter.timed_out.get()
        total = failed + counter.succeeded.get() + counter.aborted.get()
        allowed = int(eval_input.tolerated_failure_count or 0)
        percent = float(eval_input.tolerated_failure_percentage or 0)
        count_set, percent_set = getattr(_running, "thresholds", (False, False))
        over_count, over_percent = failed > allowed, 100.0 * failed / max(total, 1) > percent
        if (count_set and over_count) or (percent_set and over_percent) or (not (count_set or percent_set) and failed):
            raise _fail(
                env,
                TOLERATED,
                f"The specified tolerated failure threshold was exceeded: {failed} of {total} child "
                f"executions failed (tolerated: {allowed}, {percent:g} %).",
            )

    return map_run


def _history_within_limit(original: Callable[..., None]) -> Callable[..., None]:
    def eval_body(self: CommonStateField, env: Any) -> None:
        events = len(env.event_manager._history_event_list)
        if events >= MAX_HISTORY_EVENTS:
            raise _fail(
                env,
                RUNTIME,
                f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS:,}) before "
                f"state '{self.name}': a long poll loop must wait longer between rounds, or continue in a new "
                "execution.",
            )
        original(self, env)

    return eval_body


class SimulatedClock:
    """The seconds the Wait states of executions would have waited (:func:`simulated_waits`)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.waits = 0


@contextmanager
def simulated_waits() -> Iterator[SimulatedClock]:
    """While the block runs, a Wait state returns at once and adds its seconds to the clock it yields."""
    clock = SimulatedClock()

    def wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
        clock.seconds += max(0, wait_seconds)
        clock.waits += 1

    with mock.patch.object(WaitFunction, "_wait_interval", wait_interval):
        yield clock


#: The logger of moto's ASL preprocessor, which notes on every execution the Map thresholds it ignores.
MOTO_ASL_PARSER = "moto.stepfunctions.parser.asl.parse.preprocessor"


def _thresholds_note(record: logging.LogRecord) -> bool:
    """A logging filter: drop moto's "ToleratedFailure... declarations currently have no effect", wrong while
    :func:`enforced` runs (it applies them) and printed on every execution by ``make demo`` and ``local-stack``."""
    text = record.getMessage()
    return not ("Tolerated" in text and "have no effect" in text)


@contextmanager
def enforced() -> Iterator[None]:
    """Apply AWS's Step Functions quotas and Map failure rules to moto while the block runs."""
    with ExitStack() as stack:
        for owner, name, wrap in (
            (StateMap, "from_state_props", _note_thresholds),
            (StateMap, "_eval_execution", _map_result_within_quota),
            (ErrorEqualsDecl, "_eval_body", _data_limit_is_terminal),
            (DistributedIterationComponent, "_map_run", _children_failures_fail_the_map),
            (CommonStateField, "_eval_body", _history_within_limit),
        ):
            stack.enter_context(mock.patch.object(owner, name, wrap(getattr(owner, name))))
        parser_log = logging.getLogger(MOTO_ASL_PARSER)
        parser_log.addFilter(_thresholds_note)
        stack.callback(parser_log.removeFilter, _thresholds_note)
        yield
