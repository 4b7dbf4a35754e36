"""ddb-backup: back up and restore Amazon DynamoDB tables to S3.

The same package runs inside the Lambda functions (as a layer) and behind the
``ddb-backup`` command line.
"""

__version__ = "0.1.0"

#: Version of the backup format written by this package (see README, "Backup format").
FORMAT_VERSION = 1
