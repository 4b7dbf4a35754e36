"""Lambda handlers run in-process: loading them, their context, moto's invoke, and custom resource replies."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from ddb_backup.errors import DdbBackupError
from devkit.cfn import ACCOUNT
from devkit.strict.iam import acting_as


@dataclass
class FunctionSpec:
    """One template function: where its handler lives, its environment and timeout; the module loaded once."""

    logical_id: str
    name: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    _module: ModuleType | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def entry(self) -> Callable[[Any, Any], Any]:
        """The handler function, its module imported on first use."""
        module_name, _, attr = self.handler.rpartition(".")
        with self._lock:
            if self._module is None:
                path = self.code_dir / (module_name.replace(".", "/") + ".py")
                spec = importlib.util.spec_from_file_location(f"ddb_backup_fn_{self.logical_id}", path)
                if spec is None or spec.loader is None:
                    raise DdbBackupError(f"cannot load handler {self.handler} from {self.code_dir}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
                self._module = module
        handler: Callable[[Any, Any], Any] = getattr(self._module, attr)
        return handler


class LambdaContext:
    """Enough of Lambda's context object for Powertools and our time budget."""

    def __init__(self, fn: FunctionSpec) -> None:
        self.function_name = fn.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{os.environ.get('AWS_DEFAULT_REGION', 'us-east-1')}:{ACCOUNT}:function:{fn.name}"
        )
        self.memory_limit_in_mb = 1024
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{fn.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + fn.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def make_invoke(registry: dict[str, FunctionSpec]) -> Callable[..., bytes]:
    """A replacement for moto's ``LambdaFunction.invoke`` that runs our handler in this process."""

    def invoke(self: Any, body: str, request_headers: Any, response_headers: Any) -> bytes:
        fn = registry[self.function_name]
        event = json.loads(body) if body else {}
        try:
            with acting_as(fn.logical_id):  # the function's own role, for devkit.strict.iam
                result = fn.entry()(event, LambdaContext(fn))
            return json.dumps(result).encode()
        except Exception as exc:  # Lambda's own error shape
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_tb(exc.__traceback__)[-5:],
                }
            ).encode()

    return invoke


class ResponseCatcher:
    """A throwaway HTTP server on 127.0.0.1 standing in for a custom resource's pre-signed ResponseURL."""

    def __enter__(self) -> ResponseCatcher:
        from http.server import BaseHTTPRequestHandler, HTTPServer

        bodies: list[dict[str, Any]] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bodies.append(json.loads(raw or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/cfn-response/{uuid.uuid4()}?X-Amz-Signature=local"
        self._no_proxy = mock.patch.dict(os.environ, {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        self._no_proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._no_proxy.stop()
        self.server.shutdown()
        self.server.server_close()
