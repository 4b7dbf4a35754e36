"""``ddb-backup-dev`` (or ``python -m devkit``): the demo and the local stack, from a source checkout.

They run template.yaml and functions/ on moto, so they live with the development kit and not in the
ddb-backup wheel; ``ddb-backup demo`` and ``ddb-backup local-stack`` hand over to :func:`run` when the
kit is installed (``make venv``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ddb_backup.aws.clients import client
from devkit import sample
from devkit.demo import cumulus_counts, run_demo
from devkit.serve import serve

DEMO_HELP = "run the whole job on the embedded emulator: 8 Cumulus tables, backup, restore, verify"
LOCAL_STACK_HELP = "serve template.yaml deployed on an emulator (moto) at 127.0.0.1, to try the stack commands"
LOCAL_STACK_READY = """\
local stack {stack!r} serving on {url} (Ctrl-C to stop); in another shell:
  export AWS_ENDPOINT_URL={url} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  ddb-backup start-backup --stack-name {stack} --prefix {sample} --wait
  ddb-backup list --stack-name {stack}"""


def demo(args: argparse.Namespace) -> int:
    """Back up and restore the eight Cumulus tables on a local stack; 0 when every table verifies."""
    return run_demo(items=args.items, quiet=args.quiet, as_json=args.json, out=sys.stdout)


def local_stack(args: argparse.Namespace) -> int:
    """Serve the local stack on 127.0.0.1 until interrupted."""

    def ready(stack: Any, url: str) -> None:
        if args.sample:
            sample.create_cumulus_tables(client("dynamodb"), args.sample, cumulus_counts(args.items))
        if args.json:
            doc = {"endpointUrl": url, "stackName": stack.stack_name, "outputs": stack.outputs}
            print(json.dumps(doc, indent=2, default=str))
        else:
            print(LOCAL_STACK_READY.format(url=url, stack=stack.stack_name, sample=args.sample or "mystack-"))
        sys.stdout.flush()

    try:
        # the functions' logs share the terminal (and --json's stdout): warnings and errors only
        serve(args.port, stack_name=args.stack_name, ready=ready, env={"POWERTOOLS_LOG_LEVEL": "WARNING"})
    except KeyboardInterrupt:
        if not args.quiet and not args.json:
            print("local stack stopped", file=sys.stderr)
    return 0


COMMANDS = {"demo": demo, "local-stack": local_stack}


def run(command: str, args: argparse.Namespace) -> int:
    """Run ``command`` (``demo`` or ``local-stack``) with parsed ``args`` (``items``, ``quiet``, ``json``, and for
    the local stack ``port``, ``stack_name``, ``sample``)."""
    return COMMANDS[command](args)


def add_options(command: str, p: argparse.ArgumentParser) -> None:
    """The options of ``command``, the same under ``ddb-backup`` and ``ddb-backup-dev``."""
    if command == "local-stack":
        p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
        p.add_argument(
            "--stack-name", default="ddb-backup-local", help="the stack name to register (default %(default)s)"
        )
        p.add_argument(
            "--sample", metavar="PREFIX", help="create the eight Cumulus tables under PREFIX, with sample items"
        )
        p.add_argument(
            "--items", type=int, default=600, help="with --sample: items in the Granules table (default 600)"
        )
    else:
        p.add_argument("--items", type=int, default=600, help="items in the Granules table (others scale from it)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddb-backup-dev", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no chatter")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, text in (("demo", DEMO_HELP), ("local-stack", LOCAL_STACK_HELP)):
        add_options(command, sub.add_parser(command, help=text, description=text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.command, args)


if __name__ == "__main__":
    sys.exit(main())
