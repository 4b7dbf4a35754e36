"""The template's CloudWatch alarms evaluated over recorded datapoints, as CloudWatch evaluates them.

Datapoints come from the functions' Embedded Metric Format records (:func:`emf_datapoints`, the lines
Powertools prints) or from what a test knows AWS publishes (``AWS/States`` ``ExecutionsFailed`` when an
execution fails). :func:`evaluate` gives an alarm's state at the end of every period of a time span:

- datapoints are grouped into periods aligned to multiples of ``Period`` since the epoch (a day: UTC days),
  reduced with the alarm's ``Statistic`` (Sum, Maximum, Minimum, Average, SampleCount);
- the last ``EvaluationPeriods`` periods are compared with ``Threshold`` by ``ComparisonOperator``; the
  alarm is in ALARM when ``DatapointsToAlarm`` of them (default: all) breach;
- a period without datapoints counts by ``TreatMissingData``: ``breaching``, ``notBreaching``, ``ignore``
  (the state stays as it was) or ``missing`` (INSUFFICIENT_DATA when every period is empty).

Alarms on a single metric only; a metric-math alarm is refused by name.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

ALARM, OK, INSUFFICIENT = "ALARM", "OK", "INSUFFICIENT_DATA"

_COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_STATISTIC: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": lambda values: sum(values) / len(values),
    "SampleCount": len,
}


@dataclass(frozen=True)
class Datapoint:
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value) pairs
    time: float  # epoch seconds
    value: float


def emf_datapoints(record: dict[str, Any]) -> Iterator[Datapoint]:
    """The datapoints of one EMF record: every metric of every directive, under each of its dimension sets."""
    meta = record["_aws"]
    when = meta["Timestamp"] / 1000
    for directive in meta["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            dims = tuple(sorted((name, str(record[name])) for name in dimension_set))
            for metric in directive["Metrics"]:
                values = record[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    yield Datapoint(directive["Namespace"], metric["Name"], dims, when, float(value))


@dataclass(frozen=True)
class Alarm:
    name: str
    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...]
    statistic: str
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    threshold: float
    comparison: str
    treat_missing: str

    @classmethod
    def from_properties(cls, name: str, props: dict[str, Any]) -> Alarm:
        """An ``AWS::CloudWatch::Alarm``'s resolved properties."""
        if "Metrics" in props or "MetricName" not in props:
            raise ValueError(f"alarm {name} uses metric math: only single-metric alarms are evaluated")
        if props.get("Statistic") not in _STATISTIC or props["ComparisonOperator"] not in _COMPARE:
            raise ValueError(f"alarm {name}: {props.get('Statistic')} / {props['ComparisonOperator']} not supported")
        periods = int(props["EvaluationPeriods"])
        return cls(
            name=name,
            namespace=props["Namespace"],
            metric=props["MetricName"],
            dimensions=tuple(sorted((d["Name"], str(d["Value"])) for d in props.get("Dimensions", []))),
            statistic=props["Statistic"],
            period=int(props["Period"]),
            evaluation_periods=periods,
            datapoints_to_alarm=int(props.get("DatapointsToAlarm", periods)),
            threshold=float(props["Threshold"]),
            comparison=props["ComparisonOperator"],
            treat_missing=props.get("TreatMissingData", "missing"),
        )

    def watches(self, point: Datapoint) -> bool:
        return (point.namespace, point.name, point.dimensions) == (self.namespace, self.metric, self.dimensions)


def evaluate(alarm: Alarm, points: Iterable[Datapoint], start: float, end: float) -> list[tuple[float, str]]:
    """(period start, state at the end of that period) for every whole period from ``start`` to ``end``."""
    first = math.floor(start / alarm.period) * alarm.period
    count = max(0, math.floor((end - first) / alarm.period))
    values: dict[int, list[float]] = {}
    for point in points:
        if alarm.watches(point):
            values.setdefault(math.floor((point.time - first) / alarm.period), []).append(point.value)
    reduced = {i: _STATISTIC[alarm.statistic](v) for i, v in values.items()}
    state, out = INSUFFICIENT, list[tuple[float, str]]()
    for i in range(count):
        window = [reduced.get(j) for j in range(i - alarm.evaluation_periods + 1, i + 1)]
        state = _state(alarm, window, state)
        out.append((first + i * alarm.period, state))
    return out


def _state(alarm: Alarm, window: list[float | None], before: str) -> str:
    present = [v for v in window if v is not None]
    missing = len(window) - len(present)
    breaching = sum(_COMPARE[alarm.comparison](v, alarm.threshold) for v in present)
    if alarm.treat_missing == "breaching":
        breaching += missing
    elif not present and alarm.treat_missing in ("ignore", "missing"):
        return before if alarm.treat_missing == "ignore" else INSUFFICIENT
    return ALARM if breaching >= alarm.datapoints_to_alarm else OK


def alarm_days(alarm: Alarm, points: Iterable[Datapoint], start: float, end: float) -> list[dt.date]:
    """The UTC days on which the alarm was in ALARM at the end of some period."""
    days = {
        dt.datetime.fromtimestamp(when, dt.UTC).date()
        for when, state in evaluate(alarm, points, start, end)
        if state == ALARM
    }
    return sorted(days)


class EmfCapture(io.TextIOBase):
    """Stands in for ``sys.stdout``: keeps the EMF records Powertools prints (as CloudWatch Logs would
    turn them into metrics), passes every other write on. Thread-safe; one record per ``print``."""

    def __init__(self, passthrough: TextIO) -> None:
        self.passthrough = passthrough
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._after_record = threading.local()

    def write(self, text: str) -> int:
        if text.startswith('{"_aws"'):
            with self._lock:
                self.records.append(json.loads(text))
            self._after_record.flag = True
            return len(text)
        if text == "\n" and getattr(self._after_record, "flag", False):
            self._after_record.flag = False  # print's own end of line after a record
            return len(text)
        self._after_record.flag = False
        return self.passthrough.write(text)

    def flush(self) -> None:
        self.passthrough.flush()

    def datapoints(self) -> list[Datapoint]:
        with self._lock:
            return [point for record in self.records for point in emf_datapoints(record)]
