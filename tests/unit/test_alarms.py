"""The alarm evaluator (devkit.soak.alarms) and EventBridge schedules (devkit.soak.schedule) the soak relies on."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from devkit.soak.alarms import (
    ALARM,
    INSUFFICIENT,
    OK,
    Alarm,
    Datapoint,
    EmfCapture,
    alarm_days,
    emf_datapoints,
    evaluate,
)
from devkit.soak.schedule import due_times

DAY = 86400
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp()


def alarm(**overrides: object) -> Alarm:
    props = {
        "Namespace": "DdbBackup", "MetricName": "Age", "Dimensions": [{"Name": "service", "Value": "s"}],
        "Statistic": "Maximum", "Period": DAY, "EvaluationPeriods": 1, "Threshold": 26,
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "breaching", **overrides,
    }  # fmt: skip
    return Alarm.from_properties("A", props)


def point(day: float, value: float, name: str = "Age") -> Datapoint:
    return Datapoint("DdbBackup", name, (("service", "s"),), T0 + day * DAY, value)


def test_a_daily_maximum_breaches_and_a_missing_day_breaches_when_told():
    points = [point(0.1, 24), point(1.1, 48), point(1.5, 3), point(3.1, 20), point(2.1, 99, name="Other")]
    states = [state for _, state in evaluate(alarm(), points, T0, T0 + 4 * DAY)]
    assert states == [OK, ALARM, ALARM, OK]  # day 2 has no datapoint of this metric: breaching
    assert [state for _, state in evaluate(alarm(TreatMissingData="notBreaching"), points, T0, T0 + 4 * DAY)] == [
        OK, ALARM, OK, OK,
    ]  # fmt: skip
    assert alarm_days(alarm(), points, T0, T0 + 4 * DAY) == [dt.date(2026, 11, 2), dt.date(2026, 11, 3)]


def test_datapoints_to_alarm_of_evaluation_periods_and_missing_data_kinds():
    three = alarm(Period=3600, EvaluationPeriods=3, DatapointsToAlarm=3, Threshold=1, Statistic="Sum",
                  ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching")  # fmt: skip
    hours = [Datapoint("DdbBackup", "Age", (("service", "s"),), T0 + h * 3600 + 5, 1) for h in (0, 1, 3, 4, 5)]
    assert [s for _, s in evaluate(three, hours, T0, T0 + 6 * 3600)] == [OK, OK, OK, OK, OK, ALARM]
    assert [s for _, s in evaluate(alarm(TreatMissingData="missing"), [], T0, T0 + DAY)] == [INSUFFICIENT]
    ignore = alarm(TreatMissingData="ignore")
    assert [s for _, s in evaluate(ignore, [point(0.5, 30)], T0, T0 + 3 * DAY)] == [ALARM, ALARM, ALARM]


def test_metric_math_alarms_are_refused_by_name():
    with pytest.raises(ValueError, match="ExecutionsAbortedAlarm uses metric math"):
        Alarm.from_properties("ExecutionsAbortedAlarm", {"Metrics": [], "EvaluationPeriods": 1})


def test_emf_records_are_captured_from_print_and_read_as_datapoints():
    out = io.StringIO()
    capture = EmfCapture(out)
    record = (
        '{"_aws":{"Timestamp":1793750400000,"CloudWatchMetrics":[{"Namespace":"DdbBackup","Dimensions":[["service"]],'
        '"Metrics":[{"Name":"PitrEnabled","Unit":"Count"}]}]},"service":"ddb-backup","PitrEnabled":[3.0]}'
    )
    print(record, file=capture)
    print("a log line", file=capture)
    assert out.getvalue() == "a log line\n"
    assert capture.datapoints() == [
        Datapoint("DdbBackup", "PitrEnabled", (("service", "ddb-backup"),), 1793750400.0, 3.0)
    ]
    assert list(emf_datapoints(capture.records[0])) == capture.datapoints()


def test_schedules_come_due_as_eventbridge_says():
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)  # a Sunday
    end = start + dt.timedelta(days=15)
    assert [w.day for w in due_times("cron(0 4 ? * SUN *)", start, end, created=start)] == [1, 8, 15]
    assert [w.hour for w in due_times("cron(0 3 * * ? *)", start, end, created=start)] == [3] * 15
    assert len(list(due_times("rate(1 hour)", start, end, created=start - dt.timedelta(minutes=30)))) == 15 * 24
    assert [w.weekday() for w in due_times("cron(30 1 ? * MON-FRI *)", start, end, created=start)][:5] == [
        0,
        1,
        2,
        3,
        4,
    ]
    with pytest.raises(ValueError, match="L, W and # are not supported"):
        list(due_times("cron(0 0 L * ? *)", start, end, created=start))
