"""DynamoDB's own backups: point-in-time recovery and on-demand backups."""
