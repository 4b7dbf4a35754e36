"""Scan the next pages of one segment into S3 parts; hand over before the time runs out."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.backup.scan import scan_segment
from ddb_backup.events import SegmentTask
from ddb_backup.names import deadline_from
from ddb_backup.observability import logger, metrics, table_metrics, tracer


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=SegmentTask)
def lambda_handler(event: SegmentTask, context: LambdaContext) -> dict[str, Any]:
    task = event.model_dump(by_alias=True, exclude_none=True)
    result = scan_segment(
        client("dynamodb"),
        client("s3"),
        config.scan_settings(),
        task,
        time_left=deadline_from(context.get_remaining_time_in_millis, config.scan_time_budget()),
    )
    scanned = result["items"] - event.items
    table_metrics(event.table, {"ItemsScanned": (MetricUnit.Count, scanned)})
    logger.info(
        "segment progress",
        extra={
            "table": event.table,
            "segment": event.segment,
            "seq": event.seq,
            "items": scanned,
            "done": result["done"],
        },
    )
    return result
