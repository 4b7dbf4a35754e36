"""Peak memory of ``ddb-backup verify`` against the number of items (issue 15, point 9).

``python -m bench.verify_memory [--items 40000,200000] [--old REV]``

For each size: writes a local backup of that many Cumulus-like items
(:mod:`devkit.sample`, ~600 B each), then runs ``verify_table`` in a process
of its own against a DynamoDB client that makes the same items page by page
(no emulator holding the table, so the peak RSS is verify's own) and prints
its peak RSS. ``--old REV`` also measures ``cli/ddb_backup_cli/verify.py`` as
it was at git revision ``REV``, for comparison. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.servers import PYTHON, ROOT
from devkit import sample

KEYS = sample.CUMULUS_TABLES["Granules"]


class ScanOnly:
    """A DynamoDB client for one table: ``DescribeTable`` and ``Scan`` pages made on the fly from the seed."""

    def __init__(self, count: int) -> None:
        self.count = count

    def describe_table(self, TableName: str) -> dict[str, Any]:
        key = [{"AttributeName": name, "KeyType": kind} for name, kind in KEYS]
        return {"Table": {"TableName": TableName, "KeySchema": key, "ItemCount": self.count}}

    def get_paginator(self, name: str) -> ScanOnly:  # verify.py before issue 16 paginated
        return self

    meta = SimpleNamespace(events=SimpleNamespace(register=lambda *a, **kw: None))  # fastscan's hook: not used

    def scan(self, TableName: str, ExclusiveStartKey: Any = None, Segment: int = 0, **_: Any) -> dict[str, Any]:
        """One page; the pages of a scan begun without ``ExclusiveStartKey`` are made as they are asked for (all in
        segment 0)."""
        if Segment:
            return {"Items": []}
        if ExclusiveStartKey is None:
            self.pages = self.paginate(TableName)
        page = next(self.pages, None)
        return {"Items": page["Items"], "LastEvaluatedKey": {"pk": {"S": "more"}}} if page else {"Items": []}

    def paginate(self, TableName: str) -> Iterator[dict[str, Any]]:
        page: list[dict[str, Any]] = []
        for item in sample.items(KEYS, self.count, seed=1):
            page.append(item)
            if len(page) == 1000:
                yield {"Items": page}
                page = []
        yield {"Items": page}


def child(path: str, count: int, module_file: str | None) -> None:
    """Run verify once in this process; print its report and this process's peak RSS as JSON."""
    if module_file:
        spec = importlib.util.spec_from_file_location("old_verify", module_file)
        assert spec and spec.loader
        module: Any = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        from ddb_backup_cli.files import verify as module
    start = time.perf_counter()
    report = module.verify_table(ScanOnly(count), None, "bench-Granules", path)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"identical": report["identical"], "items": report["tableItems"], "seconds": seconds, "peakMB": peak_mb}
        )
    )


def measure(count: int, work: Path, module_file: str | None) -> dict[str, Any]:
    path = work / f"bench-{count}.json"
    if not path.exists():
        from ddb_backup.format.localfile import write_local_file

        write_local_file(path, sample.items(KEYS, count, seed=1), table="bench-Granules", description=None)
    cmd = [str(PYTHON), "-m", "bench.verify_memory", "--child", str(path), "--count", str(count)]
    if module_file:
        cmd += ["--module-file", module_file]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", default="40000,200000", help="sizes, comma separated")
    p.add_argument("--old", metavar="REV", help="also measure verify.py as it was at this git revision")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    p.add_argument("--module-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.count, args.module_file)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as root:
        work = Path(root)
        versions: list[tuple[str, str | None]] = [("this tree", None)]
        if args.old:
            old_file = work / "old_verify.py"
            shown = ["git", "show", f"{args.old}:cli/ddb_backup_cli/verify.py"]
            old_file.write_text(subprocess.run(shown, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
            versions.append((f"verify.py at {args.old}", str(old_file)))
        print("| verify.py | items | peak RSS MB | seconds |\n|---|--:|--:|--:|")
        for count in (int(n) for n in args.items.split(",")):
            for label, module_file in versions:
                row = measure(count, work, module_file)
                assert row["identical"] and row["items"] == count, row
                print(f"| {label} | {count:,} | {row['peakMB']:,.0f} | {row['seconds']:,.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
