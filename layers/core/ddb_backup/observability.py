"""One logger, tracer and metrics object for the whole package (Powertools)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "ddb-backup"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="DdbBackup")
