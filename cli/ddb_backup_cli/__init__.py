"""The ddb-backup command line: the same core the Lambdas run, driven from a terminal."""
