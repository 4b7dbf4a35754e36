"""One logger, tracer and metrics object for the whole package (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "ddb-backup"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="DdbBackup")


def table_metrics(table: str, values: dict[str, tuple[MetricUnit, float]]) -> None:
    """Publish metrics with a ``table`` dimension, each as its own EMF record.

    Kept apart from the shared ``metrics`` object, whose dimensions apply to
    every metric of an invocation (and would clash between tables).
    """
    if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, read by Powertools as for its other metrics
        return
    for name, (unit, value) in values.items():
        with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="table", value=table)
