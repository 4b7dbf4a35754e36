"""``ddb-backup``: the command line.

Keeps the Cumulus habits (``backup --table T`` writes ``backups/T.json``;
``restore backups/T.json --table U``), talks to DynamoDB and S3 directly on the
same core the Lambdas run, and drives the deployed state machines.

Exit codes: 0 success, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence

from ddb_backup import __version__
from ddb_backup.errors import BadInput, DdbBackupError
from ddb_backup_cli import aws_backups, changes_cmd, completion, describe, endpoint, local, progress, stack
from ddb_backup_cli.common import Parser, UsageError, apply_connection, common_options, quiet_core_logs
from ddb_backup_cli.files import cancel
from ddb_backup_cli.progress import end_line

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
    parser = Parser(
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
    describe.register(sub, parents)
    local.register_demo(sub, parents)
    aws_backups.register(sub)
    changes_cmd.register(sub, parents)
    completion.register(sub, parents, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ddb-backup`` with ``argv``; returns the exit code."""
    parser = build_parser()
    args = parse(parser, argv)  # exits 2 on usage errors
    apply_connection(args)
    quiet_core_logs(args)
    progress.verbose(args.verbose)
    if args.debug:
        endpoint.debug_log()
    endpoint.configure(
        args.endpoint_timeout,
        notice=None if args.quiet else endpoint.stderr_notice,
        notice_after=min(endpoint.NOTICE_AFTER, args.endpoint_timeout / 2),
    )
    try:
        with cancel.taking_sigint():
            code = int(args.func(args))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except UsageError as exc:
        if not args.json:
            getattr(args, "parser", parser).print_usage(sys.stderr)
        return _error(args, str(exc), exc, 2)
    except (DdbBackupError, BadInput) as exc:
        return _error(args, str(exc), exc, 1)
    except BrokenPipeError:
        return _reader_went_away()
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # AWS and OS failures: one line, no traceback
        message = endpoint.describe_failure(exc)
        if message is None:
            raise
        return _error(args, message, exc, 1)


def _error(args: argparse.Namespace, message: str, exc: Exception, code: int) -> int:
    """The error on stderr: a line for a person, or under --json ``{"error": ..., "type": ...}``; returns ``code``."""
    if args.json:
        print(json.dumps({"error": message, "type": type(exc).__name__}), file=sys.stderr)
    else:
        print(f"ddb-backup: error: {message}", file=sys.stderr)
    return code


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option is reported with the subcommand's usage and the closest option."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub: argparse.ArgumentParser = getattr(args, "parser", parser)
        options = [o for o in sub._option_string_actions if o.startswith("--")]
        hints = [
            f"did you mean {close[0]}?"
            for word in unknown
            if word.startswith("-") and (close := difflib.get_close_matches(word.split("=")[0], options, n=1))
        ]
        sub.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else ""))
    return args


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Ctrl-C: on a line of its own, what the run left behind (``cancel.Interrupted``); 130 (128 + SIGINT).

    A worker still in a request that does not answer, past ``cancel.GRACE``, is not waited for: the
    process ends at once (``os._exit``) rather than at that request's timeout.
    """
    end_line()
    detail = f": {exc}" if isinstance(exc, cancel.Interrupted) or str(exc) else ""
    print(f"ddb-backup: interrupted{detail}", file=sys.stderr)
    if cancel.threads_left():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return 130


def _reader_went_away() -> int:
    """stdout's reader closed it (``| head``): stop quietly, as other Unix tools do (128 + SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
