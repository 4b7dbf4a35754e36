"""Benchmarks for ddb-backup (issue #6): ``make bench`` runs ``python -m bench``."""
