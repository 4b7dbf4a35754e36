"""Keep point-in-time recovery on for the configured tables: on deploy (custom resource) and on a schedule."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext

from ddb_backup import config
from ddb_backup.aws.clients import client
from ddb_backup.events import EnsurePitrEvent
from ddb_backup.native import cfn, pitr
from ddb_backup.observability import logger, metrics, tracer


def _count(results: list[pitr.PitrResult]) -> dict[str, Any]:
    summary = pitr.summarize(results)
    for status, name in ((pitr.ENABLED, "PitrEnabled"), (pitr.UPDATED, "PitrUpdated"), (pitr.FAILED, "PitrFailed")):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=summary["counts"][status])
    logger.info("PITR", extra=summary)
    return summary


# The event is not logged: a custom resource's ResponseURL is a pre-signed secret.
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    retry = config.retry_for_lambda(context)
    if cfn.is_custom_resource_event(event):
        outcome = cfn.custom_resource_outcome(client("dynamodb"), event, retry)
        _count(outcome.results)
        logger.info("answering CloudFormation", extra={"status": outcome.status, "reason": outcome.reason})
        cfn.send_cfn_response(event, outcome.status, outcome.reason, outcome.physical_id, outcome.data)
        return {"Status": outcome.status, "Reason": outcome.reason, "Data": outcome.data}
    request = parse(event=event, model=EnsurePitrEvent)
    results = pitr.ensure_pitr(
        client("dynamodb"), request.names(), recovery_days=request.recovery_period_in_days, retry=retry
    )
    summary = _count(results)
    pitr.check(results)  # failed tables fail the invocation, so the async retry and the error metric see them
    return summary
