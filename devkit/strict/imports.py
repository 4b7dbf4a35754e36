"""ImportTable as AWS runs it, where moto 5.1 is lenient.

* AWS refuses ImportTable into a table that exists (``ResourceInUseException``,
  at the call); moto accepts the call and fails the import in its thread.
* Items that fail (a line without ``"Item"``, an item without its keys) are
  counted in ``ErrorCount`` and logged to CloudWatch while the import goes on
  to ``COMPLETED``; moto reports such an import ``FAILED``.
* One import reads at most 50,000 S3 objects under its prefix; moto reads any number.
* Each line is JSON read as JSON; moto's own parser (py_partiql_parser) silently
  yields no item at all for ordinary lines (e.g. a number like ``-849739E-91``
  or non-ASCII text), so an import of a real backup "completes" with 0 items.
"""

from __future__ import annotations

import json
from typing import Any

#: Most S3 objects one ImportTable reads (AWS quota).
MAX_OBJECTS = 50_000


def import_patches() -> list[Any]:
    """Patches (not started) that make moto's ImportTable refuse and count as AWS does."""
    from unittest import mock

    from moto.dynamodb.exceptions import MockValidationException, ResourceInUseException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table_import import TableImport

    original_import = DynamoDBBackend.import_table

    def import_table(self: Any, **kwargs: Any) -> Any:
        if kwargs["table_name"] in self.tables:
            raise ResourceInUseException(f"Table already exists: {kwargs['table_name']}")
        return original_import(self, **kwargs)

    def process(self: Any, s3_backend: Any, bucket: Any) -> None:
        from moto.core.utils import gzip_decompress
        from moto.dynamodb.models import dynamodb_backends

        keys, _, _, _ = s3_backend.list_objects(
            bucket, prefix=self.s3_source.get("S3KeyPrefix"), delimiter=None, marker=None, max_keys=None
        )
        if len(keys) > MAX_OBJECTS:
            raise MockValidationException(f"{len(keys)} S3 objects under the prefix: one import reads {MAX_OBJECTS}")
        self.table = dynamodb_backends[self.account_id][self.region_name].create_table(
            name=self.table_name,
            billing_mode=self.billing_mode,
            throughput=self.throughput,
            schema=self.key_schema,
            global_indexes=self.global_indexes,
            indexes=None,
            attr=self.attrs,
            sse_specification=None,
            streams=None,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
        for key in keys:
            body = gzip_decompress(key.value) if self.compression_type == "GZIP" else key.value
            for line in body.decode("utf-8").splitlines():
                if line.strip():
                    _import_line(self, line)
        self.status = "COMPLETED"  # failed items are counted (and, on AWS, logged): the import still completes

    return [
        mock.patch.object(DynamoDBBackend, "import_table", import_table),
        mock.patch.object(TableImport, "_process_s3_files", process),
    ]


def _import_line(job: Any, line: str) -> None:
    """One line of an import: an ``{"Item": ...}`` object put into the table, else one more error."""
    job.processed_count += 1
    job.processed_bytes += len(line.encode())
    try:
        doc = json.loads(line)
        if not isinstance(doc, dict) or set(doc) != {"Item"}:
            raise ValueError('not an {"Item": ...} line')
        job.table.put_item(item_attrs=doc["Item"])
    except Exception as exc:
        job.error_count += 1
        job.failure_message = str(exc)[:200]
        return
    job.imported_count += 1
