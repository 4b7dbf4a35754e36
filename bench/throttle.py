"""``python -m bench.throttle``: adaptive rate control under 30 % injected throttling converges and loses no item.

On dynalite, with a table of --items ~1 KB items: a backup (the CLI's
``backup_to_file``, 4 segments sharing one bucket) at ``--read-rate``, then a
restore of that file into a new table at ``--write-rate``, each with 30 % of
its Scan / BatchWriteItem requests answered ``ProvisionedThroughputExceeded``
at the HTTP layer (``tests.faults.injector``, as the fault tests do), so
botocore's retries and the limiter's halving meet them as they would on AWS.
Prints the rate achieved (ConsumedCapacity over wall time), the throttles
injected, and an item-for-item comparison of source, file and target.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import servers
from bench.peers import ddb_client, load
from bench.rate import measure
from bench.servers import WORK
from ddb_backup.aws.ratelimit import Limit
from ddb_backup.format import ddbjson
from tests.faults.injector import Faults


def table_items(ddb: Any, table: str) -> Counter[str]:
    """Every item of ``table``, canonical text, counted."""
    pages = ddb.get_paginator("scan").paginate(TableName=table)
    return Counter(ddbjson.canonical(item) for page in pages for item in page["Items"])


def under_throttling(
    client_of: Callable[[], Any],
    source: str,
    path: Path,
    rates: tuple[float, float],
    share: float = 0.30,
) -> dict[str, Any]:
    """Back up ``source`` to ``path`` and restore it to ``<source>-copy`` with ``share`` of requests throttled.

    ``client_of()`` makes a DynamoDB client; ``rates``: (read, write) units a
    second. Returns the two runs' measurements (with the throttles injected)
    and the item-for-item comparison.
    """
    from ddb_backup.format.sources import open_source
    from ddb_backup_cli.files.backup import backup_to_file
    from ddb_backup_cli.files.restore import restore_sources

    expected = table_items(client_of(), source)
    runs = []
    for label, rate, work in (
        (
            f"backup at --read-rate {rates[0]:g}",
            rates[0],
            lambda ddb: backup_to_file(ddb, source, path, segments=4, workers=4, limit=Limit(rates[0]), replace=True),
        ),
        (
            f"restore at --write-rate {rates[1]:g}",
            rates[1],
            lambda ddb: restore_sources(ddb, None, str(path), table=f"{source}-copy", limit=Limit(rates[1])),
        ),
    ):
        ddb = client_of()
        faults = Faults(throttle=share)
        faults.install(ddb, client_of())
        row = measure(label, rate, lambda ddb=ddb, work=work: work(ddb), ddb)
        runs.append(
            {
                **row,
                "throttlesInjected": sum(faults.counts.values()),
                "requests": faults.calls["Scan"] + faults.calls["BatchWriteItem"],
            }
        )
    saved = Counter(ddbjson.canonical(item) for item in open_source(str(path)).items())
    restored = table_items(client_of(), f"{source}-copy")
    return {
        "runs": runs,
        "items": sum(expected.values()),
        "fileMatches": saved == expected,
        "targetMatches": restored == expected,
        "missing": sum((expected - restored).values()),
        "extra": sum((restored - expected).values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throttle", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--read-rate", type=float, default=200.0)
    parser.add_argument("--write-rate", type=float, default=1000.0)
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    with servers.dynalite() as server:
        load(server.port, "throttle-source", args.items)
        result = under_throttling(
            lambda: ddb_client(server.port),
            "throttle-source",
            WORK / "throttle-source.json",
            (args.read_rate, args.write_rate),
        )
    print(f"\nAdaptive rate control under 30 % injected throttling, dynalite, {args.items:,} items of ~1 KB")
    print("| run | target units/s | units/s achieved | seconds | requests | throttles injected |")
    print("|---|--:|--:|--:|--:|--:|")
    for r in result["runs"]:
        print(
            f"| {r['run']} | {r['target']:,.0f} | {r['unitsPerSecond']:,.1f} | {r['seconds']:,.1f} "
            f"| {r['requests']:,} | {r['throttlesInjected']:,} |"
        )
    print(
        f"\nItem for item: file {'identical' if result['fileMatches'] else 'DIFFERENT'}, target "
        f"{'identical' if result['targetMatches'] else 'DIFFERENT'} ({result['missing']} missing, "
        f"{result['extra']} extra of {result['items']:,})"
    )
    (WORK / "throttle.json").write_text(json.dumps(result, indent=1))
    return 0 if result["fileMatches"] and result["targetMatches"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
