"""``make bench``: throughput and memory of ddb-backup against the physical limit and its peers.

Three parts, each printing a table (and all of them saved to bench/work/results.json):

1. client pipeline on the replay endpoint (bench.replay): Scan -> lines -> gzip
   -> S3, and part -> BatchWriteItem, per core, fast path and the path before #6;
2. peers on dynalite (npm, in memory) with one table of --items items: backup
   and restore with ddb-backup (CLI to a file; Lambda core to S3 on moto),
   dynamodump (PyPI), and a bare parallel boto3 scan / batch write (the floor);
3. peak memory of backup and restore at the table size and ten times it.

Servers listen on 127.0.0.1 only and are stopped at the end. Options:
``--quick`` (small sizes, a smoke test), ``--only replay|peers|memory``,
``--items N`` (peers' table, default 100,000). Rate control and the estimate:
``python -m bench.rate`` (bench/rate.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore

from bench import servers
from bench.servers import LOCAL_AWS, PYTHON, ROOT, WORK, run_measured

MB = 1e6
RESULTS: dict[str, Any] = {}


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    cores = os.cpu_count()
    return (
        f"{model}, {cores} cores, Python {platform.python_version()}, botocore {botocore.__version__}, "
        f"{platform.system()} {platform.release()}"
    )


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n{title}", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        lines.append("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    text = "\n".join(lines)
    print(text, flush=True)
    RESULTS.setdefault("tables", []).append(text)
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def child(
    args: list[str], env: dict[str, str] | None = None, server: servers.Server | None = None
) -> tuple[dict[str, Any], servers.Run]:
    run = run_measured([PYTHON, "-m", *args], env=env, server=server)
    return json.loads(run.stdout.strip().splitlines()[-1]), run


# ------------------------------------------------------------------ 1. replay
def item_sizes() -> tuple[float, float]:
    """Mean wire-JSON bytes and DynamoDB item bytes of the replay items."""
    from bench.replay import build_pages
    from ddb_backup.format.ddbjson import item_from_wire
    from ddb_backup.format.dialects import item_size

    body, count = build_pages(1)[0]
    items = json.loads(body + b"}")["Items"]
    return len(body) / count, sum(item_size(item_from_wire(i)) for i in items) / count


def part_for(items: int) -> dict[str, Any]:
    from bench.pipeline import make_part

    path = WORK / f"part-{items}.json.gz"
    meta = WORK / f"part-{items}.json"
    if not meta.exists() or not path.exists():
        meta.write_text(json.dumps(make_part(str(path), items)))
    return dict(json.loads(meta.read_text()))


def replay_part(quick: bool) -> None:
    """Part 1: the client pipeline alone on the replay endpoint, fast path and the path before #6."""
    wire, ddb_size = item_sizes()
    ratio = ddb_size / wire
    RESULTS["itemBytes"] = {"wireJson": wire, "dynamodb": ddb_size}
    rows = []
    with servers.replay() as port:
        for label, args in _replay_runs(quick):
            out, _ = child(["bench.pipeline", args[0], "--port", str(port), *args[1:]])
            cpu = out["cpuSeconds"]
            rows.append(
                [
                    label,
                    out["items"],
                    out["responseBytes"] / MB / cpu,
                    out["responseBytes"] * ratio / MB / cpu,
                    int(out["items"] / cpu),
                    cpu,
                    out["seconds"],
                    out["peakRssMB"],
                ]
            )
            RESULTS.setdefault("replay", []).append({"label": label, **out})
    table(
        f"Client pipeline alone, replay endpoint on 127.0.0.1 (items ~{wire:,.0f} B of wire JSON, "
        f"~{ddb_size:,.0f} B as DynamoDB counts them; CPU = user + system of the client process)",
        [
            "path",
            "items",
            "MB/s per core (wire JSON)",
            "MB/s per core (DynamoDB size)",
            "items/s per core",
            "CPU s",
            "wall s",
            "peak RSS MB",
        ],
        rows,
    )


def _replay_runs(quick: bool) -> list[tuple[str, list[str]]]:
    """(label, bench.pipeline arguments) of each replay run, in table order."""
    from ddb_backup.format.parts import DEFAULT_GZIP_LEVEL as level

    scan_fast, scan_slow = (20, 4) if quick else (200, 10)
    write_fast, write_slow = (5_000, 1_000) if quick else (50_000, 5_000)
    return [
        (
            f"backup: Scan -> lines -> gzip -> S3 (fast path, GZIP_LEVEL={level})",
            ["scan", "--pages", str(scan_fast)],
        ),
        ("backup: same, botocore parses (before #6)", ["scan", "--pages", str(scan_slow), "--slow"]),
        ("restore: part -> BatchWriteItem (fast path)", ["write", "--part", json.dumps(part_for(write_fast))]),
        (
            "restore: same, parse + botocore serializes (before #6)",
            ["write", "--part", json.dumps(part_for(write_slow)), "--slow"],
        ),
        (
            "restore request building only (fast path, nothing sent)",
            ["build", "--part", json.dumps(part_for(write_fast))],
        ),
        (
            "restore request building only (before #6, nothing sent)",
            ["build", "--part", json.dumps(part_for(write_slow)), "--slow"],
        ),
        ("backup with GZIP_LEVEL=1 (fast path)", ["scan", "--pages", str(scan_fast), "--gzip-level", "1"]),
    ]


# ------------------------------------------------------------------ 2. peers
def count_items(port: int, name: str) -> int:
    ddb = boto3.session.Session(**_session()).client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}")
    total, request = 0, {"TableName": name, "Select": "COUNT"}
    while True:
        page = ddb.scan(**request)
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def drop(port: int, name: str) -> None:
    ddb = boto3.session.Session(**_session()).client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}")
    ddb.delete_table(TableName=name)


def _session() -> dict[str, str]:
    return {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


@dataclass
class Peers:
    """One peers run: the table, the servers and how each tool reaches them."""

    items: int
    name: str
    work: Path
    dl: servers.Server
    env: dict[str, str]
    split_env: dict[str, str]
    cli: list[str]
    local: list[str]

    @property
    def port(self) -> int:
        return self.dl.port


Timed = tuple[str, servers.Run, float | None]


def peers_part(items: int) -> None:
    """Part 2: backup and restore of one dynalite table by ddb-backup, dynamodump and the bare floor."""
    servers.ensure_dynamodump()
    name = "bench-GranulesTable"
    work = WORK / "peers"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    restore_cli = (ROOT / "cli/ddb_backup_cli/files/restore.py").exists()
    with servers.dynalite() as dl, servers.moto_s3() as s3_port:
        ddb_port = dl.port
        ddb_url, s3_url = f"http://127.0.0.1:{ddb_port}", f"http://127.0.0.1:{s3_port}"
        env = {**LOCAL_AWS, "AWS_ENDPOINT_URL": ddb_url}
        split_env = {**LOCAL_AWS, "AWS_ENDPOINT_URL_DYNAMODB": ddb_url, "AWS_ENDPOINT_URL_S3": s3_url}
        boto3.session.Session(**_session()).client("s3", endpoint_url=s3_url).create_bucket(Bucket="bench")
        started = time.perf_counter()
        child(["bench.peers", "load", "--port", str(ddb_port), "--table", name, "--items", str(items)])
        print(f"\nloaded {items:,} items into dynalite in {time.perf_counter() - started:,.0f} s", flush=True)
        cli = [str(Path(PYTHON).parent / "ddb-backup"), "--quiet"]
        local = ["--host", "127.0.0.1", "--port", str(ddb_port), "--accessKey", "bench", "--secretKey", "bench"]
        peers = Peers(items, name, work, dl, env, split_env, cli, local)
        backups = _peer_backups(peers)
        restores = _peer_restores(peers, restore_cli)

    backup_runs: list[Timed] = [(a, b, None) for a, b in backups]
    for title, runs in (("Backup", backup_runs), ("Restore", restores)):
        _peers_table(title, runs, items)
    _dynalite_ceiling(restores, items)
    if not restore_cli:
        print("(ddb-backup restore from the CLI is not in this checkout yet: its row is missing)")


def _peer_backups(peers: Peers) -> list[tuple[str, servers.Run]]:
    """The floor scan, ddb-backup to a file and to S3, then dynamodump (last: the yardstick)."""
    name, dl, work = peers.name, peers.dl, peers.work
    backups: list[tuple[str, servers.Run]] = []
    floor_out, floor = child(
        ["bench.peers", "floor-scan", "--port", str(peers.port), "--table", name, "--segments", "4"], peers.env, dl
    )
    assert floor_out["items"] == peers.items, floor_out
    backups.append(("floor: bare parallel boto3 scan, 4 segments, items discarded", floor))
    out_file = work / f"{name}.json"
    cmd = [*peers.cli, "backup", "--table", name, "--out", str(out_file), "--segments", "4", "--workers", "4"]
    backups.append(("ddb-backup CLI -> local file, 4 segments", run_measured(cmd, peers.env, server=dl)))
    cmd = [*peers.cli, "backup", "--table", name, "--to", "s3://bench/backups/", "--segments", "4", "--workers", "4"]
    backups.append(("ddb-backup Lambda core -> S3 (moto), 4 segments", run_measured(cmd, peers.split_env, server=dl)))
    dump = servers.DYNAMODUMP
    cmd = [str(dump), "-m", "backup", "-r", "us-east-1", "-s", name, *peers.local, "--dumpPath", str(work / "dump")]
    backups.append(("dynamodump backup", run_measured(cmd, {**LOCAL_AWS, "PYTHONWARNINGS": "ignore"}, server=dl)))
    return backups


def _peer_restores(peers: Peers, restore_cli: bool) -> list[Timed]:
    """The floor write, ddb-backup from S3 (and from the file), then dynamodump; each target counted and dropped."""
    name, dl, port, items = peers.name, peers.dl, peers.port, peers.items
    out_file = peers.work / f"{name}.json"
    restores: list[Timed] = []
    target = name + "-floor"
    out, run = child(
        ["bench.peers", "floor-write", "--port", str(port), "--table", target, "--source", str(out_file)],
        peers.env,
        dl,
    )
    restores.append(("floor: bare parallel boto3 batch_write_item, items in memory", run, out["seconds"]))
    _check_and_drop(port, target, items)
    target = name + "-core"
    out, run = child(
        ["bench.peers", "core-restore", "--table", target, "--source", f"s3://bench/backups/{name}/"],
        peers.split_env,
        dl,
    )
    restores.append(("ddb-backup Lambda core <- S3 (moto), 4 parts at a time", run, None))
    _check_and_drop(port, target, items)
    if restore_cli:
        target = name + "-cli"
        cmd = [*peers.cli, "restore", str(out_file), "--table", target]  # default: 16 requests in flight
        restores.append(("ddb-backup CLI <- local file", run_measured(cmd, peers.env, server=dl), None))
        _check_and_drop(port, target, items)
    target = name + "-dynamodump"
    cmd = [
        str(servers.DYNAMODUMP),
        *("-m", "restore", "-r", "us-east-1", "-s", name, "-d", target, *peers.local),
        *("--dumpPath", str(peers.work / "dump"), "--noConfirm", "--billingMode", "PAY_PER_REQUEST"),
    ]
    restores.append(
        ("dynamodump restore", run_measured(cmd, {**LOCAL_AWS, "PYTHONWARNINGS": "ignore"}, server=dl), None)
    )
    _check_and_drop(port, target, items)
    return restores


def _peers_table(title: str, runs: list[Timed], items: int) -> None:
    """Print (and keep) one peers table; the first run is the floor, the last dynamodump."""
    floor_s = runs[0][2] or runs[0][1].seconds
    dd_s = runs[-1][1].seconds
    rows = []
    for label, run, timed in runs:
        seconds = timed or run.seconds
        server_cpu = run.server_cpu or 0.0
        rows.append(
            [
                label,
                seconds,
                int(items / seconds),
                f"{seconds / floor_s:.2f}x",
                f"{dd_s / seconds:.2f}x",
                run.cpu,
                "-" if timed else run.peak_rss_mb,
                server_cpu,
                f"{server_cpu / seconds:.0%}",
                "-" if run.server_busy is None else f"{run.server_busy:.0%}",
                "-" if run.host_steal is None else f"{run.host_steal:.0%}",
            ]
        )
        RESULTS.setdefault("peers", []).append(
            {
                "what": title,
                "label": label,
                "seconds": seconds,
                "cpu": run.cpu,
                "peakRssMB": run.peak_rss_mb,
                "dynaliteCpu": server_cpu,
                "dynaliteBusyWhileWorking": run.server_busy,
                "hostSteal": run.host_steal,
            }
        )
    table(
        f"{title} of {items:,} items (~1 KB) on dynalite, one run, same server "
        f"(time / floor: lower is better; speed vs dynamodump: higher is better; "
        f"dynalite busy: its CPU seconds over the run's seconds, 100 % is all its one JS thread can do; "
        f"while working: the same from the first to the last moment it worked, without start-up and table creation; "
        f"host steal: the share of this machine's CPU its host gave to other machines meanwhile, "
        f"a run with more than a few percent measures the neighbours)",
        [
            "tool",
            "seconds",
            "items/s",
            "time / floor",
            "speed vs dynamodump",
            "client CPU s",
            "peak RSS MB",
            "dynalite CPU s",
            "dynalite busy",
            "while working",
            "host steal",
        ],
        rows,
    )


def _dynalite_ceiling(restores: list[Timed], items: int) -> None:
    """Every restore writes the same items: the least dynalite CPU any of them took is what dynalite
    needs for the items themselves, and items / that is the most it can take in one second."""
    least = min((r for r in restores if r[1].server_cpu), key=lambda r: r[1].server_cpu or 0.0, default=None)
    if least and least[1].server_cpu:
        ceiling = items / least[1].server_cpu
        dd_rate = items / restores[-1][1].seconds
        RESULTS["dynaliteWriteCeiling"] = ceiling
        print(
            f"dynalite's own write ceiling for these items: ~{ceiling:,.0f} items/s ({items:,} items / "
            f"{least[1].server_cpu:,.1f} s of its CPU in '{least[0]}'), {ceiling / dd_rate:.2f}x dynamodump's items/s",
            flush=True,
        )


def _check_and_drop(port: int, target: str, items: int) -> None:
    found = count_items(port, target)
    if found != items:
        raise RuntimeError(f"{target} holds {found:,} items after the restore, expected {items:,}")
    drop(port, target)


# ------------------------------------------------------------------ 3. memory
def memory_part(items: int, quick: bool) -> None:
    pages_1x = max(4, round(items * 1045 / 1024 / 1024))  # replay items are ~1,045 B: pages of 1 MiB
    per_part = 25_000 if not quick else 2_500  # 4 parts at 1x: as many in flight as at 10x
    part = part_for(per_part)
    rows = []
    with servers.replay() as port:
        for scale in (1, 10):
            pages = pages_1x * scale
            out, _ = child(["bench.pipeline", "scan", "--port", str(port), "--pages", str(pages)])
            rows.append(["backup, Lambda core (scan_segment -> S3 parts)", f"{scale}x", out["items"], out["peakRssMB"]])
            out, _ = child(
                [
                    *("bench.pipeline", "file", "--port", str(port), "--pages", str(max(1, pages // 4))),
                    *("--segments", "4", "--out", str(WORK / "memory.json.gz")),
                ]
            )
            rows.append(["backup, CLI to a .json.gz file, 4 segments", f"{scale}x", out["items"], out["peakRssMB"]])
            parts = max(1, round(items * scale / per_part))
            out, _ = child(
                [
                    *("bench.pipeline", "write", "--port", str(port), "--part", json.dumps(part)),
                    *("--parts", str(parts), "--workers", "4", "--concurrency", "8"),
                ]
            )
            rows.append(
                ["restore, parts as restore_part, 4 parts at a time", f"{scale}x", out["items"], out["peakRssMB"]]
            )
    RESULTS["memory"] = rows
    table(
        "Peak memory (RSS of the process doing the work) at the table size and ten times it, replay endpoint",
        ["work", "table", "items", "peak RSS MB"],
        sorted(rows, key=lambda r: (r[0], int(r[1].rstrip("x")))),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benchmark itself")
    parser.add_argument("--only", choices=["replay", "peers", "memory"])
    parser.add_argument("--items", type=int, help="items in the peers' table (default 100,000; --quick 5,000)")
    args = parser.parse_args(argv)
    items = args.items or (5_000 if args.quick else 100_000)
    WORK.mkdir(exist_ok=True)
    started = time.perf_counter()
    RESULTS.update(machine=machine(), command=" ".join(["python -m bench", *(argv or sys.argv[1:])]))
    print(f"machine: {RESULTS['machine']}", flush=True)
    if args.only in (None, "replay"):
        replay_part(args.quick)
    if args.only in (None, "peers"):
        peers_part(items)
    if args.only in (None, "memory"):
        memory_part(items, args.quick)
    RESULTS["seconds"] = time.perf_counter() - started
    (WORK / "results.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    print(f"\nbench finished in {RESULTS['seconds']:,.0f} s; results in {WORK / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
