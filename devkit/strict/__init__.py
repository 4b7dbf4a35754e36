"""What AWS enforces and moto does not, applied to the local stack: IAM and KMS, provisioned throughput, Step Functions quotas."""
