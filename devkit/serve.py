"""The local stack as an endpoint: template.yaml deployed on moto, served over HTTP on 127.0.0.1.

Every command of ``ddb-backup`` (and the AWS CLI) can then point ``--endpoint-url`` at
it. The stack's outputs are registered in moto's CloudFormation under the stack name,
so ``--stack-name`` lookups work as against a deployed stack; executions run the real
ASL and their Lambda invokes run our handlers inside this process. Each second the
tables' streams feed their event source mappings (the change archiver), as Lambda polls.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ddb_backup.aws.clients import client
from devkit.emulator import LocalStack


def register_outputs(stack: LocalStack) -> None:
    """Create a CloudFormation stack named as the local stack, holding its outputs (nothing else)."""
    template = {
        # CloudFormation wants one resource; moto stores this one without making anything.
        "Resources": {"Registered": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {name: {"Value": str(value)} for name, value in stack.outputs.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "WaitConditionHandle ... not supported": nothing to make
        client("cloudformation").create_stack(StackName=stack.stack_name, TemplateBody=json.dumps(template))


def _deliver(stack: LocalStack) -> None:
    """The tables' streams to their event source mappings, as Lambda polls them; a batch that keeps failing is
    logged and tried again next second (Lambda retries it until the record's age sends it to the failure queue)."""
    try:
        stack.streams.deliver()
    except Exception as exc:
        logging.getLogger("ddb-backup.local-stack").warning("stream delivery failed, retrying: %s", exc)


def serve(
    port: int,
    *,
    stack_name: str = "ddb-backup-local",
    host: str = "127.0.0.1",
    ready: Callable[[LocalStack, str], None] = lambda stack, url: None,
    stop: threading.Event | None = None,
    **stack_options: Any,
) -> None:
    """Deploy the local stack, serve it on ``host:port`` until ``stop`` is set (or forever); ``ready`` is told the URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    stop = stop or threading.Event()
    with LocalStack(stack_name=stack_name, **stack_options) as stack:
        register_outputs(stack)
        server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        server.start()
        try:
            ready(stack, f"http://{host}:{port}")
            while not stop.wait(1.0):
                _deliver(stack)
        finally:
            server.stop()
