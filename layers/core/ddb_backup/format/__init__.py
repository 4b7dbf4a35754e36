"""Backup format v1: layout, DynamoDB JSON lines, parts, and the readers of every source."""
