"""Local work of the command line: backups to and restores from files and S3 directly, verify."""
