"""Finalize one table's backup: check every segment finished, write manifest.json last."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.clients import client
from ddb_backup.events import FinalizeTableEvent
from ddb_backup.finalize import all_parts, finalize_table
from ddb_backup.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=FinalizeTableEvent)
def lambda_handler(event: FinalizeTableEvent, context: LambdaContext) -> dict[str, Any]:
    if event.check_only:
        # Reached only after the scan failed: raise naming the unfinished segment, if any.
        parts = all_parts(client("s3"), config.bucket(), event.backup_dir)
        return {"table": event.table, "complete": True, "parts": len(parts)}
    summary = finalize_table(client("s3"), config.bucket(), event.backup_dir)
    metrics.add_dimension(name="table", value=event.table)
    metrics.add_metric(name="BackupItems", unit=MetricUnit.Count, value=summary["items"])
    metrics.add_metric(name="BackupBytes", unit=MetricUnit.Bytes, value=summary["bytes"])
    metrics.add_metric(name="BackupParts", unit=MetricUnit.Count, value=summary["parts"])
    metrics.add_metric(name="BackupSeconds", unit=MetricUnit.Seconds, value=summary["seconds"])
    # One datapoint per complete backup: an alarm on its absence catches a stale table.
    metrics.add_metric(name="BackupCompleted", unit=MetricUnit.Count, value=1)
    logger.info("backup complete", extra=summary)
    return summary
