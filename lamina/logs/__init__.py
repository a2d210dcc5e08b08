"""Function logs: the store behind `/aws/lambda/<name>` groups and the CloudWatch Logs API."""
