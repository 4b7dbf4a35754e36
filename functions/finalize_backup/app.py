"""Finalize one table's backup: check every segment finished, write manifest.json last."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.backup.finalize import all_parts, finalize_table
from ddb_backup.events import FinalizeTableEvent
from ddb_backup.format.catalog import newest_backup_ages
from ddb_backup.observability import logger, metrics, table_metrics, tracer


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
    table_metrics(
        event.table,
        {
            "BackupItems": (MetricUnit.Count, summary["items"]),
            "BackupBytes": (MetricUnit.Bytes, summary["bytes"]),
            "BackupParts": (MetricUnit.Count, summary["parts"]),
            "BackupSeconds": (MetricUnit.Seconds, summary["seconds"]),
            "BackupCompleted": (MetricUnit.Count, 1),
        },
    )
    # The stale-backup alarm watches the oldest "newest complete backup" of all tables.
    ages = newest_backup_ages(client("s3"), config.bucket(), config.prefix())
    if ages:
        metrics.add_metric(name="MaxNewestBackupAgeHours", unit=MetricUnit.Count, value=min(max(ages.values()), 1e6))
    logger.info("backup complete", extra=summary)
    return summary
