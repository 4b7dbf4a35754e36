"""The change archive's custom resource: enable the named tables' streams and map them to the archiver."""

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from ddb_backup.aws.clients import client
from ddb_backup.changes import mappings
from ddb_backup.native import cfn
from ddb_backup.observability import logger, tracer


# The event is not logged: a custom resource's ResponseURL is a pre-signed secret.
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:  # CloudFormation waits for an answer: an invalid request is answered FAILED, never left hanging
        parse(event=event, model=mappings.ChangeArchiveEvent)
    except ValidationError as exc:
        outcome = cfn.CustomResourceOutcome(
            cfn.FAILURE, "invalid event: " + cfn.validation_text(exc), cfn.physical_id(event)
        )
    else:
        outcome = mappings.custom_resource_outcome(client("dynamodb"), client("lambda"), event)
    logger.info("answering CloudFormation", extra={"status": outcome.status, "reason": outcome.reason})
    cfn.send_cfn_response(event, outcome.status, outcome.reason, outcome.physical_id, outcome.data)
    return {"Status": outcome.status, "Reason": outcome.reason, "Data": outcome.data}
