"""``python -m bench.select``: record-level restore and backtrack on a large table (issue 28 point 3).

On moto in this process, with the strict stream (devkit.strict.streams): a table of ``--items`` items (pk S in
``--items / 100`` partitions of 100, sk N, ~300 bytes each) is backed up exactly (``backup --consistent``); then
``--bad`` items in ``--bad / 100`` partitions are rewritten and the archive follows the stream. Measured, each
with the cost it states before the run:

1. ``restore --key ... --preview`` then the restore of 10 items into a new table;
2. ``backtrack`` of the rewritten partitions to the moment before (``--key pk=...``: read by Query);
3. the same backtrack with ``--key-prefix`` (a prefix names no whole partition: a Scan of the whole table);
   with ``--bad 1000`` the prefix (``g00000``) names the same 10 partitions, so 2 and 3 differ only in the Scan.

Printed figures, not a timed test. Reading the backup grows with the table (every part, every byte); the
writes grow with the selection: at 1,000,000 items scale the read time and bytes by 1,000,000 / ``--items``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import re
import sys
import time
from typing import Any

from moto import mock_aws

from ddb_backup.aws.clients import client
from ddb_backup.selection import cost
from ddb_backup_cli.main import main
from devkit.strict.streams import StrictStreams

TABLE, BUCKET = "bench-Granules", "bench-select"
FROM = f"s3://{BUCKET}/b/"


def _load(ddb: Any, partitions: range, prefix: str, value: str) -> None:
    """100 items in each partition ``prefix<n>`` (batches of 25), ~300 bytes each."""
    batch: list[dict[str, Any]] = []
    for p in partitions:
        for s in range(100):
            item = {
                "pk": {"S": f"{prefix}{p:06d}"},
                "sk": {"N": str(s)},
                "status": {"S": value},
                "files": {"L": [{"S": f"s3://data/{prefix}{p:06d}/{s}/file-{n}.h5"} for n in range(4)]},
                "updatedAt": {"N": "1764000000000"},
            }
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == 25:
                ddb.batch_write_item(RequestItems={TABLE: batch})
                batch = []
    if batch:
        ddb.batch_write_item(RequestItems={TABLE: batch})


def _run(argv: list[str]) -> tuple[int, float, str]:
    """``main(argv)``: its exit code, seconds, and what it printed (stdout and stderr)."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, time.perf_counter() - started, out.getvalue() + err.getvalue()


def _end_of_second() -> dt.datetime:
    moment = dt.datetime.now(dt.UTC).replace(microsecond=999999)
    time.sleep(max(0.0, (moment - dt.datetime.now(dt.UTC)).total_seconds()) + 0.01)
    return moment


def bench(items: int, bad: int) -> dict[str, Any]:
    defaults = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    os.environ.pop("AWS_ENDPOINT_URL", None)  # moto in this process, not a server
    streams = StrictStreams(split_every=10**9)
    patches = streams.patches()
    for patch in patches:
        patch.start()
    try:
        with mock_aws():
            client.cache_clear()
            return _measure(streams, items, bad)
    finally:
        for patch in reversed(patches):
            patch.stop()


def _measure(streams: StrictStreams, items: int, bad: int) -> dict[str, Any]:
    ddb = client("dynamodb")
    client("s3").create_bucket(Bucket=BUCKET)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    started = time.perf_counter()
    _load(ddb, range(items // 100), "g", "completed")
    loaded = time.perf_counter() - started
    argv = ["-q", "backup", "--table", TABLE, "--to", FROM, "--consistent", "--settle", "0", "--segments", "8"]
    code, backup_s, said = _run(argv)
    assert code == 0, said
    when = _end_of_second()
    bad_partitions = range(bad // 100)
    _load(ddb, bad_partitions, "g", "damaged")  # the incident: a script rewrote these partitions
    _end_of_second()
    streams.deliver()
    assert _run(["-q", "changes", "follow", "--table", TABLE, "--to", FROM, "--until-idle", "0"])[0] == 0
    rows = {"items": items, "loadSeconds": round(loaded, 1), "backupSeconds": round(backup_s, 1)}

    step = max(1, items // 100 // 10)
    keys = [w for n in range(10) for w in ("--key", f"pk=g{n * step:06d},sk={n}")]
    code, seconds, said = _run(["restore", f"{FROM}{TABLE}/", "--table", "ten-Granules", *keys])
    assert code == 0, said
    rows["restore10"] = _row(seconds, said, "ten-Granules", 10)
    parts = [f"pk=g{p:06d}" for p in bad_partitions]
    back = ["backtrack", "--table", TABLE, "--from", FROM, "--to-time", when.isoformat(), "--yes"]
    code, seconds, said = _run([*back, *[w for p in parts for w in ("--key", p)]])
    assert code == 0, said
    rows["backtrackQuery"] = _row(seconds, said, None, bad)
    _load(ddb, bad_partitions, "g", "damaged again")
    _end_of_second()
    streams.deliver()
    assert _run(["-q", "changes", "follow", "--table", TABLE, "--to", FROM, "--until-idle", "0"])[0] == 0
    prefix = os.path.commonprefix(parts)  # noqa: RUF071 (text, not paths)
    code, seconds, said = _run([*back, "--key-prefix", prefix])
    assert code == 0, said
    rows["backtrackScan"] = _row(seconds, said, None, None)
    return rows


def _row(seconds: float, said: str, table: str | None, expect: int | None) -> dict[str, Any]:
    """Seconds, and the cost line the command printed before it wrote, with its figures."""
    line = next(text for text in said.splitlines() if text.startswith("cost:") or "cost: " in text)
    line = line[line.index("cost:") :]
    figures = dict(
        parts=int(re.search(r"all ([\d,]+) part", line)[1].replace(",", "")),  # type: ignore[index]
        bytes=int(re.search(r"([\d,]+) bytes", line)[1].replace(",", "")),  # type: ignore[index]
        dollars=float(re.search(r"about \$([\d.]+)", line)[1]),  # type: ignore[index]
        readUnits=float((re.search(r"([\d,]+) DynamoDB read units", line) or ["", "0"])[1].replace(",", "")),
    )
    if table is not None:
        assert len(client("dynamodb").scan(TableName=table)["Items"]) == expect
    return {"seconds": round(seconds, 2), **figures, "said": line}


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.select", description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="items in the table (a multiple of 100)")
    parser.add_argument("--bad", type=int, default=1_000, help="items the incident rewrote (a multiple of 100)")
    args = parser.parse_args(argv)
    rows = bench(args.items, args.bad)
    scale = 1_000_000 / args.items
    print(json.dumps(rows, indent=1))
    print(f"\nat 1,000,000 items, scaling what grows with the table (x{scale:g}):")
    for name in ("restore10", "backtrackQuery", "backtrackScan"):
        r = rows[name]
        read = r["bytes"] * scale
        print(
            f"  {name:15} measured {r['seconds']:7.2f} s, {r['bytes']:>10,} bytes of backup read, stated ${r['dollars']:.6f}; "
            f"1M: ~{read:,.0f} bytes read (${read / cost.GB * cost.TRANSFER_OUT_GB:.4f} to outside AWS, free in region)"
        )
    extra = rows["backtrackScan"]["readUnits"] - rows["backtrackQuery"]["readUnits"]
    print(f"  a Scan instead of a Query: {extra:,.0f} more read units here, ~{extra * scale:,.0f} at 1M")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
