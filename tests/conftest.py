"""Shared fixtures: a fresh emulator per test, built from template.yaml."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddb_backup.aws.clients import client
from ddb_backup.format import ddbjson
from ddb_backup.observability import metrics
from devkit.emulator import LocalStack

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reaches a real endpoint or profile; clients are rebuilt per test."""
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    client.cache_clear()
    metrics.clear_metrics()  # Powertools keeps what a disabled flush did not print: no test inherits another's
    yield
    client.cache_clear()


@pytest.fixture
def aws() -> Iterator[None]:
    """Plain moto (no stack): DynamoDB, S3 and friends in memory."""
    from moto import mock_aws

    with mock_aws():
        client.cache_clear()
        yield
    client.cache_clear()


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """The whole application on moto, from template.yaml, with a small part size."""
    with LocalStack(env={"PART_BYTES": str(64 * 1024)}) as local:
        yield local


@pytest.fixture
def ddb(aws: None) -> Any:
    return client("dynamodb")


@pytest.fixture
def s3(aws: None) -> Any:
    return client("s3")


def table_items(ddb: Any, name: str) -> list[dict[str, Any]]:
    """Every item of a table, in client form."""
    out: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=name):
        out.extend(page["Items"])
    return out


def canonical(item: dict[str, Any]) -> str:
    """A stable text for comparing items (see ``ddbjson.canonical``)."""
    return ddbjson.canonical(item)


def backup_items(s3: Any, bucket: str, manifest_key: str) -> list[dict[str, Any]]:
    """Every item of a v1 backup, read back from its parts (client form)."""
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    directory = manifest_key.rsplit("/", 1)[0] + "/"
    out = []
    for part in manifest["parts"]:
        body = gzip.decompress(s3.get_object(Bucket=bucket, Key=directory + part["key"])["Body"].read())
        out.extend(ddbjson.parse_line(line, part["key"]) for line in body.splitlines())
    return out


def backup_summaries(desc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each table's summary of a finished backup execution: the rows of the report its output names."""
    output = desc["output"]
    body = client("s3").get_object(Bucket=output["bucket"], Key=output["report"])["Body"].read()
    return list(json.loads(body)["tables"])


def restore_report(desc: dict[str, Any]) -> dict[str, Any]:
    """A finished restore execution's whole report (per-table rows, warnings): the object its small output names."""
    output = desc["output"]
    return dict(json.loads(client("s3").get_object(Bucket=output["bucket"], Key=output["report"])["Body"].read()))


def expected_items(table: str) -> list[dict[str, Any]]:
    """The source items of a fixture table (tests/fixtures/expected), client form."""
    path = FIXTURES / "expected" / f"{table}.jsonl"
    return [ddbjson.item_from_wire(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
