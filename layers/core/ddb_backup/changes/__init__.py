"""Exact backups and recovery to a time, from DynamoDB Streams (issue 14)."""
