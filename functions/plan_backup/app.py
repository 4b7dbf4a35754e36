"""Plan a backup run: resolve the tables, describe them, write the work list to S3."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.aws.ratelimit import Limit
from ddb_backup.backup.exact import noter
from ddb_backup.backup.plan import for_the_state, plan_run
from ddb_backup.estimate import Plan, estimate
from ddb_backup.events import PlanBackupEvent
from ddb_backup.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path="executionName", log_event=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=PlanBackupEvent)
def lambda_handler(event: PlanBackupEvent, context: LambdaContext) -> dict[str, Any]:
    concurrency = config.max_concurrency()
    ddb = client("dynamodb")
    run = plan_run(
        ddb,
        client("s3"),
        config.plan_settings(),
        tables=event.request.tables,
        table_prefix=event.request.table_prefix,
        segments=event.request.segments,
        backup_id=event.request.backup_id,
        limit=Limit(rate=event.request.read_rate, percent=event.request.read_percent),
        exact=noter(ddb, client("dynamodbstreams"), event.request.consistent, concurrency),
    )
    logger.info("planned", extra={"backupId": run["backupId"], "segments": run["segments"]})
    for table in run["tables"]:
        if table.get("warning"):
            logger.warning(table["warning"])
        plan = Plan(table["totalSegments"], concurrency, table["readRate"] or None)
        logger.info("estimate", extra=estimate(table["items"], table["bytes"], plan, table=table["table"]))
    return {**for_the_state(run), "maxConcurrency": concurrency}
