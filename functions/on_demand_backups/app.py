"""Make this week's on-demand backups of the configured tables and prune the stack's own old ones."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.events import OnDemandBackupEvent
from ddb_backup.native import snapshots
from ddb_backup.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=OnDemandBackupEvent)
def lambda_handler(event: OnDemandBackupEvent, context: LambdaContext) -> dict[str, Any]:
    report = snapshots.scheduled_run(client("dynamodb"), event, config.stack_marker(), config.retry_for_lambda(context))
    for key, name in (("created", "BackupsCreated"), ("deleted", "BackupsDeleted"), ("failed", "BackupFailures")):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=report["counts"][key])
    # under one key: the report's own "created" is a LogRecord attribute, which logging refuses to overwrite
    logger.info("on-demand backups", extra={"report": report})
    snapshots.check(report)  # failures fail the invocation; the retry skips tables backed up a moment ago
    return report
