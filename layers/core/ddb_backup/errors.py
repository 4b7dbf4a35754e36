"""Errors that name what went wrong. Every expected failure is a ``DdbBackupError``."""


class DdbBackupError(Exception):
    """Base class: an expected failure with a message fit for a person."""


class BadInput(DdbBackupError, ValueError):
    """An event, argument or file is malformed; the message names the field or line."""


class TableNotFound(DdbBackupError):
    """A table named by the caller does not exist."""


class BackupIncomplete(DdbBackupError):
    """A backup lacks a manifest or a segment did not finish."""


class IntegrityError(DdbBackupError):
    """A part's checksum or item count differs from its manifest."""


class TargetRefused(DdbBackupError):
    """The restore target is unsafe for the chosen mode (non-empty, wrong keys, the source table)."""


class RestoreIncomplete(DdbBackupError):
    """Items could not be written; they were saved to a dead-letter object the message names."""


class UnknownFormat(DdbBackupError):
    """A source is not a backup format this tool can read."""


class PitrIncomplete(DdbBackupError):
    """PITR could not be turned on for some tables; the message names them and why."""


class PitrNotEnabled(DdbBackupError):
    """A point-in-time restore was asked of a table without PITR."""


class StillRestoring(DdbBackupError):
    """A restored table did not become ACTIVE in the time allowed."""


class SnapshotsIncomplete(DdbBackupError):
    """Some on-demand backups could not be made or deleted; the message names them and why."""


class BackupNotFound(DdbBackupError):
    """No on-demand backup has the ARN given."""


class BillingNotRestored(DdbBackupError):
    """A table loaded in on-demand mode could not be switched back; the message names it and the command to fix it."""


class ChangesPending(DdbBackupError):
    """An exact restore's changes did not all fit one invocation; the state machine retries, resuming where it was."""
