"""The CDK app that deploys edgeloop to one AWS account and region."""
