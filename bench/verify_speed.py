"""Backup vs verify vs mirror on one dynalite table (issue 24, point 12): each within 1.5x of the backup's time?

``python -m bench.verify_speed [--items 40000] [--read-rate UNITS]``

Loads a table of ``--items`` Cumulus-like items into dynalite (npm, in memory,
on 127.0.0.1), then times, each as its own ``ddb-backup`` process:

1. ``backup --table T --out FILE`` (the yardstick);
2. ``verify FILE --table T`` (identical: every item read on both sides);
3. ``restore FILE --table COPY --mode mirror --yes`` into a copy that drifted
   (1 % of its items changed, 1 % deleted, 1 % added): the diff, the writes,
   the check and the deletes.

Prints each time and its ratio to the backup's. With ``--read-rate`` verify and
mirror keep to that many read units a second, and their time shows it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench import servers
from bench.peers import ddb_client
from bench.replay import KEYS
from bench.servers import LOCAL_AWS, PYTHON, ROOT, WORK

TABLE, COPY = "bench-GranulesTable", "bench-copy-GranulesTable"


def _timed(cli: list[str], env: dict[str, str], args: list[str], codes: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run([*cli, *args], check=False, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode not in codes:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds


def _drift(port: int, items: int) -> None:
    """Change, delete and add 1 % of the copy's items each."""
    ddb = ddb_client(port)
    step = 100
    for i, page in enumerate(_pages(ddb, COPY)):
        for j, item in enumerate(page):
            n = i * 1000 + j
            if n % step == 0:
                ddb.put_item(TableName=COPY, Item={**item, "drifted": {"S": "yes"}})
            elif n % step == 1:
                ddb.delete_item(TableName=COPY, Key={k: item[k] for k, _ in KEYS})
    for n in range(items // step):
        ddb.put_item(TableName=COPY, Item={k: {"S": f"extra-{n}"} for k, _ in KEYS})


def _pages(ddb: object, table: str) -> list[list[dict[str, object]]]:
    pages, request = [], {"TableName": table, "Limit": 1000}
    while True:
        page = ddb.scan(**request)  # type: ignore[attr-defined]
        pages.append(page["Items"])
        if "LastEvaluatedKey" not in page:
            return pages
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40_000)
    parser.add_argument("--read-rate", type=float)
    args = parser.parse_args(argv)
    work = WORK / "verify-speed"
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{TABLE}.json"
    cli = [str(Path(PYTHON).parent / "ddb-backup"), "--quiet"]
    rate = ["--read-rate", f"{args.read_rate:g}"] if args.read_rate else []
    with servers.dynalite() as dl:
        env = {**LOCAL_AWS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{dl.port}", "PATH": "/usr/bin:/bin"}
        subprocess.run([PYTHON, "-m", "bench.peers", "load", "--port", str(dl.port), "--table", TABLE,
                        "--items", str(args.items)], check=True, cwd=ROOT, capture_output=True, env=env)  # fmt: skip
        backup = _timed(cli, env, ["backup", "--table", TABLE, "--out", str(out), "--force", *rate])
        verify = _timed(cli, env, ["verify", "--backup", str(out), "--table", TABLE, *rate])
        _timed(cli, env, ["restore", str(out), "--table", COPY])
        _drift(dl.port, args.items)
        drifted = _timed(cli, env, ["verify", "--backup", str(out), "--table", COPY, *rate], codes=(1,))
        mirror = _timed(cli, env, ["restore", str(out), "--table", COPY, "--mode", "mirror", "--yes", *rate])
        after = _timed(cli, env, ["verify", "--backup", str(out), "--table", COPY, *rate])
    rows = [
        ("backup (yardstick)", backup),
        ("verify, identical", verify),
        ("verify, 3 % drifted", drifted),
        ("restore --mode mirror, 3 % drifted", mirror),
        ("verify after the mirror (identical)", after),
    ]
    print(f"\n{args.items:,} items on dynalite{', read rate ' + str(args.read_rate) if args.read_rate else ''}")
    print("| run | seconds | x backup |\n|---|--:|--:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:,.1f} | {seconds / backup:,.2f}x |")
    (work / "results.json").write_text(json.dumps({"items": args.items, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
