"""Plan a restore: open and verify the backup, check or create every target, write the list of parts to S3."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.events import PlanRestoreEvent
from ddb_backup.observability import logger, metrics, tracer
from ddb_backup.restore.run import for_the_state, plan_restore_event


@logger.inject_lambda_context(correlation_id_path="executionName", log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PlanRestoreEvent)
def lambda_handler(event: PlanRestoreEvent, context: LambdaContext) -> dict[str, Any]:
    run = plan_restore_event(
        client("dynamodb"), client("s3"), client("dynamodbstreams"), config.restore_settings(), event
    )
    for warning in run["warnings"]:
        logger.warning(warning)
    logger.info("restore planned", extra={"runId": run["runId"], "parts": run["parts"], "tables": run["tables"]})
    return for_the_state(run)
