"""AWS clients, created once per process and lazily (never at import time).

Endpoints and region come from the standard environment (``AWS_ENDPOINT_URL``,
``AWS_REGION``/``AWS_DEFAULT_REGION``), so the same code runs in Lambda, against
an emulator, and from the command line.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader

# DynamoDB throttling is handled by our own bounded, jittered backoff in the core;
# botocore's standard mode still absorbs transient network and 5xx errors.
_CONFIGS = {
    "dynamodb": Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=64),
    # Every part is sent with its SHA-256 in x-amz-checksum-sha256, which S3 verifies, and
    # other objects get botocore's default CRC. On https (AWS) botocore then leaves the
    # payload out of the signature anyway; saying so also spares a second SHA-256 of every
    # part over http (an emulator), where it would otherwise hash the body to sign it.
    "s3": Config(
        retries={"mode": "standard", "max_attempts": 10},
        max_pool_connections=64,
        s3={"payload_signing_enabled": False},
    ),
    # Streams by the regional endpoint (streams.dynamodb.<region>): valid on AWS, and the one
    # emulators (moto) answer; botocore's account-id endpoint is not known to them.
    "dynamodbstreams": Config(retries={"mode": "standard", "max_attempts": 5}, account_id_endpoint_mode="disabled"),
}
_DEFAULT = Config(retries={"mode": "standard", "max_attempts": 5})
_OVERRIDES: list[Config] = []


def override_config(config: Config | None) -> None:
    """Merge ``config`` (e.g. timeouts) into every client made from now on; ``None`` removes it."""
    _OVERRIDES[:] = [config] if config is not None else []
    client.cache_clear()


class _Paths(list[str]):
    """A loader's search paths: each boto3 session appends its own data path, kept once."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


#: One model loader for every session: a fresh session would parse each service's model again
#: (~0.1 s a client); sessions stay fresh, so each reads the environment (endpoint, region, keys).
_LOADER = Loader(extra_search_paths=_Paths())


@functools.cache
def client(service: str) -> Any:
    """The shared client for ``service``; call ``client.cache_clear()`` after changing the environment."""
    config = _CONFIGS.get(service, _DEFAULT)
    for extra in _OVERRIDES:
        config = config.merge(extra)
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    session = boto3.session.Session(botocore_session=core)
    return session.client(service, config=config)  # type: ignore[call-overload]
