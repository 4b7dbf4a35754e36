"""Finalize a restore: compare what every part wrote with the backup, report or fail naming each problem."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.events import FinalizeRestoreEvent
from ddb_backup.observability import logger, metrics, tracer
from ddb_backup.restore.finalize import finalize_restore, imports_running
from ddb_backup.restore.partitioned.machine import apply_task, partition_run
from ddb_backup.restore.partitioned.split import PARTITION_BYTES
from ddb_backup.restore.run import for_the_state
from ddb_backup.selection.selectors import changes_filter


@logger.inject_lambda_context(correlation_id_path="executionName")
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=FinalizeRestoreEvent)
def lambda_handler(event: FinalizeRestoreEvent, context: LambdaContext) -> dict[str, Any]:
    if event.check_imports:  # the state machine's wait loop: how many ImportTable runs have not ended
        return {"pending": imports_running(client("s3"), client("dynamodb"), event.bucket, event.run_prefix)}
    budget = float(config.env_int("CHANGES_TIME_BUDGET_SECONDS", 600))
    if event.partition_changes:  # exact tables' changes split by key (ChangesPending: the machine retries)
        return partition_run(
            client("s3"),
            event.bucket,
            event.run_prefix,
            concurrency=event.max_concurrency,
            budget=budget,
            partition_bytes=config.env_int("CHANGES_PARTITION_BYTES", PARTITION_BYTES),
            keep_for=lambda table: changes_filter(table.get("select"), client("s3")),  # selected keys' changes only
        )
    if event.apply_changes is not None:  # one child of the Map: its partition, until done or out of time
        task = event.apply_changes.model_dump(by_alias=True)
        return apply_task(client("dynamodb"), client("s3"), event.bucket, event.run_prefix, task, budget=budget)
    report = finalize_restore(
        client("s3"), event.bucket, event.run_prefix, map_failed=event.map_failed, ddb=client("dynamodb")
    )
    metrics.add_metric(name="RestoreItems", unit=MetricUnit.Count, value=report["itemsRestored"])
    metrics.add_metric(name="RestoreSeconds", unit=MetricUnit.Seconds, value=report["seconds"])
    metrics.add_metric(name="RestoreCompleted", unit=MetricUnit.Count, value=1)
    logger.info("restore complete", extra=report)
    return {"bucket": event.bucket, **for_the_state(report, f"{event.run_prefix}report.json")}
