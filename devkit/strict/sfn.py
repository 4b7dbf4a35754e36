"""Step Functions rules AWS enforces and moto does not: the local stack applies them with these patches.

- A Map state's result (the array of its children's outputs, or the ResultWriter's summary) is held to
  the 256 KiB payload quota before ResultPath applies, as on AWS: a run with many children and no
  ResultWriter dies with ``States.DataLimitExceeded``.
- ``States.DataLimitExceeded`` is terminal: no Retry or Catch handles it.
- A Distributed Map fails with ``States.ExceedToleratedFailureThreshold`` when more children failed
  than ``ToleratedFailureCount`` or ``ToleratedFailurePercentage`` allows (a threshold the ASL does not
  set does not apply; with neither set, one failed child fails the Map), where moto counts the
  failures and carries on.
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
from moto.stepfunctions.parser.quotas import is_within_size_quota

if TYPE_CHECKING:
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

DATA_LIMIT = StatesErrorNameType.StatesStatesDataLimitExceeded
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
        if isinstance(error_name, StatesErrorName) and error_name.typ == DATA_LIMIT:
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
        ):
            stack.enter_context(mock.patch.object(owner, name, wrap(getattr(owner, name))))
        parser_log = logging.getLogger(MOTO_ASL_PARSER)
        parser_log.addFilter(_thresholds_note)
        stack.callback(parser_log.removeFilter, _thresholds_note)
        yield
