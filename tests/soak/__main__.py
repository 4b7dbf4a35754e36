"""``make soak``: 30 simulated nights on the local stack; prints the figures, exits 1 on any problem."""

from __future__ import annotations

import argparse
import json
import sys

from tests.soak.report import soak
from tests.soak.run import SoakConfig, ci_config


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--retention-days", type=int, default=10)
    parser.add_argument("--ci", action="store_true", help="the suite's small case (4 nights)")
    args = parser.parse_args()
    config = ci_config() if args.ci else SoakConfig(nights=args.nights, retention_days=args.retention_days)
    figures, problems = soak(config, progress=True)
    print(json.dumps(figures, indent=2, default=str))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print("soak passed" if not problems else f"soak FAILED: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
