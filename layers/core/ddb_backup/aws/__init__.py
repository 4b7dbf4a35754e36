"""The one data-access tier: clients, retry and backoff, S3 objects, table admin."""
