"""``ddb-backup``: the command line.

Keeps the Cumulus habits (``backup --table T`` writes ``backups/T.json``;
``restore backups/T.json --table U``), talks to DynamoDB and S3 directly on the
same core the Lambdas run, and drives the deployed state machines.

Exit codes: 0 success, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ddb_backup import __version__
from ddb_backup.errors import BadInput, DdbBackupError
from ddb_backup_cli import aws_backups, changes_cmd, local, stack
from ddb_backup_cli.common import UsageError, apply_connection, common_options

EPILOG_MAIN = """\
examples:
  ddb-backup backup --table mystack-GranulesTable          # writes backups/mystack-GranulesTable.json
  ddb-backup restore backups/mystack-GranulesTable.json --table restore-GranulesTable
  ddb-backup backup --prefix mystack- --to s3://my-bucket/backups/
  ddb-backup restore s3://my-bucket/backups/mystack-GranulesTable/20261122T030000Z-1a2b3c4d/ --table restore-GranulesTable
  ddb-backup start-backup --stack-name ddb-backup --prefix mystack- --wait
  ddb-backup list --stack-name ddb-backup
  ddb-backup demo                                          # everything, on the embedded emulator

Endpoints: --endpoint-url or AWS_ENDPOINT_URL (e.g. dynalite or moto server) and the usual
AWS_REGION / AWS_PROFILE. Exit codes: 0 success, 1 failure, 2 usage.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``ddb-backup`` parser: common options, then every command module's subcommands."""
    parents = [common_options(top=False)]
    parser = argparse.ArgumentParser(
        prog="ddb-backup",
        description="Back up and restore Amazon DynamoDB tables (locally, to S3, or through the deployed stack).",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"ddb-backup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    local.register(sub, parents)
    stack.register(sub, parents)
    local.register_demo(sub, parents)
    aws_backups.register(sub)
    changes_cmd.register(sub, parents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ddb-backup`` with ``argv``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on usage errors
    apply_connection(args)
    if not args.json and not args.quiet:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    try:
        return int(args.func(args))
    except UsageError as exc:
        getattr(args, "parser", parser).print_usage(sys.stderr)
        print(f"ddb-backup: error: {exc}", file=sys.stderr)
        return 2
    except (DdbBackupError, BadInput) as exc:
        print(f"ddb-backup: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ddb-backup: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # AWS and OS failures: one line, no traceback
        message = _describe_failure(exc)
        if message is None:
            raise
        print(f"ddb-backup: error: {message}", file=sys.stderr)
        return 1


def _describe_failure(exc: Exception) -> str | None:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{exc.operation_name}: {err.get('Code')}: {err.get('Message')}"
    if isinstance(exc, BotoCoreError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
