"""Restore the next items of one part: verify it, write it in 25-item batches, hand over before the time runs out."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.events import RestorePartTask
from ddb_backup.names import deadline_from
from ddb_backup.observability import logger, metrics, table_metrics, tracer
from ddb_backup.restore.write import restore_part


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=RestorePartTask)
def lambda_handler(event: RestorePartTask, context: LambdaContext) -> dict[str, Any]:
    settings = config.restore_settings()
    result = restore_part(
        client("dynamodb"),
        client("s3"),
        event,
        time_left=deadline_from(context.get_remaining_time_in_millis, settings.time_budget),
        concurrency=settings.write_concurrency,
        attempts=settings.attempts,
    )
    written = result["written"] - event.written
    table_metrics(event.target, {"ItemsRestored": (MetricUnit.Count, written)})
    logger.info(
        "part progress",
        extra={"target": event.target, "part": event.part["id"], "items": written, "done": result["done"]},
    )
    return result
