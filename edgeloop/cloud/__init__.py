"""boto3 adapters: the only place edgeloop talks to AWS services from the cloud side."""
