"""Turn botocore errors into edgeloop's hierarchy at the adapter boundary, keeping the cause."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, or '' for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


AWS_ERRORS = (ClientError, BotoCoreError)
"""What an adapter catches around a boto3 call before re-raising as a domain error."""
