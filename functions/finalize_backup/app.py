"""Finalize a backup: one table (check its segments, write manifest.json last), or the run's report."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.backup.report import finalize_noted, run_output, write_report
from ddb_backup.changes.gather import CHUNK, Limits
from ddb_backup.events import FinalizeBackupEvent
from ddb_backup.format.catalog import newest_backup_ages
from ddb_backup.names import deadline_from
from ddb_backup.observability import logger, metrics, table_metrics, tracer


def finalize_one_table(event: FinalizeBackupEvent, context: LambdaContext) -> dict[str, Any]:
    """One table; an exact backup's changes are gathered until the time budget runs out (``done``: false, the
    state machine calls again and the next call goes on from the checkpoint)."""
    assert event.table and event.backup_dir  # checked by the model
    limits = Limits(
        chunk=config.env_int("CHANGE_FILE_RECORDS", CHUNK, 1),
        time_left=deadline_from(
            context.get_remaining_time_in_millis, config.env_int("FINALIZE_TIME_BUDGET_SECONDS", 600)
        ),
    )
    summary = finalize_noted(
        client("s3"),
        config.bucket(),
        event.backup_dir,
        event.table,
        event.run_prefix,
        streams=client("dynamodbstreams"),
        settle=config.env_int("STREAM_SETTLE_SECONDS", 2),
        limits=limits,
    )
    if not summary["done"]:
        logger.info("exact backup's changes gathered in part; the next call goes on", extra=summary)
        return summary
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
    logger.info("backup complete", extra=summary)
    return summary


def report_the_run(event: FinalizeBackupEvent) -> dict[str, Any]:
    assert event.run_prefix and event.backup_id  # checked by the model
    s3, bucket = client("s3"), config.bucket()
    report = write_report(s3, bucket, event.run_prefix, event.backup_id, scan_error=event.scan_error)
    # The stale-backup alarm watches the oldest "newest complete backup" of the tables this run was to back up
    # (listed once a run); a table deleted since, whose backups wait for the lifecycle rule, is not stale.
    ages = newest_backup_ages(s3, bucket, config.prefix(), tables={row["table"] for row in report["tables"]})
    if ages:
        metrics.add_metric(name="MaxNewestBackupAgeHours", unit=MetricUnit.Count, value=min(max(ages.values()), 1e6))
    logger.info("backup run report", extra={"backupId": event.backup_id, **report["totals"]})
    return run_output(report, bucket, event.run_prefix)


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=FinalizeBackupEvent)
def lambda_handler(event: FinalizeBackupEvent, context: LambdaContext) -> dict[str, Any]:
    return report_the_run(event) if event.report else finalize_one_table(event, context)
