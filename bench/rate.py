"""``python -m bench.rate``: rate control held on dynalite, and the estimate's read units against a real scan.

On dynalite (which reports ConsumedCapacity), with a table of --items ~1 KB items:

1. a backup (the CLI's ``backup_to_file``, 4 segments) at ``--read-rate``: the units consumed a
   second (the sum of every Scan response's ConsumedCapacity, read from the raw HTTP response, over
   the wall time) against the target;
2. the same table's full-scan read units against :func:`ddb_backup.estimate.scan_read_units` of
   its DescribeTable size;
3. a restore of that file into a new table at ``--write-rate``: write units a second against it.

Not a timed test: prints one table and saves bench/work/rate.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

from bench import servers
from bench.peers import ddb_client, load
from bench.servers import WORK
from ddb_backup.aws.ratelimit import Limit, consumed_units


class Meter:
    """Sums ConsumedCapacity of every DynamoDB response, from the raw HTTP body (before any fast path takes it)."""

    def __init__(self) -> None:
        self.units = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code != 200:
            return
        body = json.loads(http_response.content or b"{}")
        units = (
            consumed_units(body) if isinstance(body, dict) else None
        )  # dynalite answers some calls with a bare value
        if units is not None:
            with self._lock:
                self.units += units
                self.calls += 1

    def install(self, ddb: Any) -> None:
        ddb.meta.events.register_first("after-call.dynamodb", self)


def value_size(av: dict[str, Any]) -> int:
    """A wire-form value's size as DynamoDB counts it (close enough: numbers by their digits)."""
    ((kind, v),) = av.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return len(v.strip("-").replace(".", "").lstrip("0")) // 2 + 2
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: x}) for x in v)
    if kind == "L":
        return 3 + sum(1 + value_size(x) for x in v)
    return 3 + sum(1 + len(k.encode()) + value_size(x) for k, x in v.items())  # M


def table_size(path: Path) -> int:
    """The items of a backup file, sized as DynamoDB sizes them (dynalite reports no TableSizeBytes)."""
    from ddb_backup.format.ddbjson import item_to_wire
    from ddb_backup.format.sources import open_source

    return sum(
        sum(len(k.encode()) + value_size(v) for k, v in item_to_wire(item).items())
        for item in open_source(str(path)).items()
    )


def measure(label: str, target: float, work: Any, ddb: Any) -> dict[str, Any]:
    """Run ``work``; the units ``ddb`` consumed a second against ``target``."""
    meter = Meter()
    meter.install(ddb)
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    rate = meter.units / seconds
    return {
        "run": label,
        "target": target,
        "units": round(meter.units, 1),
        "seconds": round(seconds, 2),
        "unitsPerSecond": round(rate, 1),
        "deviation": round(rate / target - 1, 4),
    }


def print_rows(rows: list[dict[str, Any]], items: int) -> None:
    """The runs as a markdown table."""
    print(f"\nRate control on dynalite, {items:,} items of ~1 KB")
    print("| run | target units/s | units consumed | seconds | units/s | off target |")
    print("|---|--:|--:|--:|--:|--:|")
    for r in rows:
        target = f"{r['target']:,.0f}" if r["target"] else "-"
        off = f"{r['deviation']:+.1%}" if r["deviation"] is not None else "-"
        print(
            f"| {r['run']} | {target} | {r['units']:,.1f} | {r['seconds']:,.1f} | {r['unitsPerSecond']:,.1f} | {off} |"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.rate", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--read-rate", type=float, default=60.0)
    parser.add_argument("--write-rate", type=float, default=500.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    WORK.mkdir(exist_ok=True)
    from ddb_backup.estimate import scan_read_units
    from ddb_backup_cli.files.backup import backup_to_file
    from ddb_backup_cli.files.restore import restore_sources

    rows: list[dict[str, Any]] = []
    with servers.dynalite() as server:
        load(server.port, "rate-source", args.items)
        ddb = ddb_client(server.port)
        path = WORK / "rate-source.json"
        rows.append(
            measure(
                f"backup at --read-rate {args.read_rate:g}, 4 segments",
                args.read_rate,
                lambda: backup_to_file(
                    ddb, "rate-source", Path(path), segments=4, workers=4, limit=Limit(args.read_rate)
                ),
                ddb,
            )
        )
        size = int(ddb.describe_table(TableName="rate-source")["Table"].get("TableSizeBytes", 0)) or table_size(path)
        estimated = scan_read_units(size)
        scanned = rows[0]["units"]
        estimate_row = {"tableSizeBytes": size, "estimatedReadUnits": round(estimated, 1), "scanReadUnits": scanned}
        estimate_row["deviation"] = round(estimated / scanned - 1, 4) if scanned else None
        ddb = ddb_client(server.port)
        rows.append(
            measure(
                "restore at full speed (dynalite's ceiling here)",
                args.write_rate,
                lambda: restore_sources(ddb, None, str(path), table="rate-full"),
                ddb,
            )
        )
        # Without a limit nothing asks for ConsumedCapacity: each item here is one write unit
        # (the limited run's ConsumedCapacity says so), so the ceiling is items a second.
        full = rows[-1]
        full.update(units=args.items, unitsPerSecond=round(args.items / full["seconds"], 1), target=None)
        full["deviation"] = None
        ddb = ddb_client(server.port)
        rows.append(
            measure(
                f"restore at --write-rate {args.write_rate:g}, 4 requests in flight",
                args.write_rate,
                lambda: restore_sources(ddb, None, str(path), table="rate-target", limit=Limit(args.write_rate)),
                ddb,
            )
        )
    print_rows(rows, args.items)
    print(
        f"\nEstimate: table size {size:,} B -> {estimated:,.1f} read units; the scan consumed {scanned:,.1f} "
        f"({estimate_row['deviation']:+.1%})"
    )
    (WORK / "rate.json").write_text(json.dumps({"rows": rows, "estimate": estimate_row}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
