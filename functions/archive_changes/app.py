"""Append a table stream's changes to the archive in S3; record the batches the mapping dropped as gaps."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.changes.events import ArchiveChangesEvent
from ddb_backup.changes.lambda_event import handle
from ddb_backup.observability import logger, metrics, tracer


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ArchiveChangesEvent)
def lambda_handler(event: ArchiveChangesEvent, context: LambdaContext) -> dict[str, Any]:
    batch = event.model_dump(exclude_none=True)
    counts = handle(client("s3"), client("dynamodbstreams"), config.bucket(), config.prefix(), batch)
    metrics.add_metric(name="ChangesArchived", unit=MetricUnit.Count, value=counts["changes"])
    metrics.add_metric(name="ChangeArchiveGaps", unit=MetricUnit.Count, value=counts["gaps"])
    if counts["gaps"]:
        logger.error("change archive gap recorded", extra=counts)
    return counts
