"""moto's backends called in the same process, without botocore: the rules engine's S3 action and the shadow
service at fleet scale, where a thousand devices' traffic through botocore would measure its serializers.

The state is moto's own (the server on the stack's endpoint serves it too); only the request and response
encoding is skipped. The call shapes are the boto3 ones the stand-ins already use (put_object,
update_thing_shadow, get_thing_shadow), so the stand-ins do not know which they were given.
"""

from __future__ import annotations

import io
import json
from typing import Any

from botocore.exceptions import ClientError


def _client_error(exc: Exception, operation: str) -> ClientError:
    """moto's service error as botocore would raise it to a boto3 caller."""
    code = getattr(exc, "code", 400)
    error = {"Code": getattr(exc, "error_type", type(exc).__name__), "Message": getattr(exc, "message", str(exc))}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": code}}, operation)


class MotoIotData:
    """The IoT data plane's shadow calls on moto's iot-data backend."""

    def __init__(self, account: str, region: str) -> None:
        from moto.iotdata.models import iotdata_backends

        self._backend = iotdata_backends[account][region]

    def update_thing_shadow(self, *, thingName: str, payload: bytes, shadowName: str | None = None) -> dict[str, Any]:  # noqa: N803
        """UpdateThingShadow: the response document, as a stream like boto3's."""
        from moto.core.exceptions import JsonRESTError

        try:
            document = payload.decode() if isinstance(payload, bytes) else payload
            shadow = self._backend.update_thing_shadow(thing_name=thingName, payload=document, shadow_name=shadowName)
        except JsonRESTError as exc:
            raise _client_error(exc, "UpdateThingShadow") from exc
        return {"payload": io.BytesIO(json.dumps(shadow.to_response_dict()).encode())}

    def get_thing_shadow(self, *, thingName: str, shadowName: str | None = None) -> dict[str, Any]:  # noqa: N803
        """GetThingShadow: the current document, as a stream like boto3's."""
        from moto.core.exceptions import JsonRESTError

        try:
            shadow = self._backend.get_thing_shadow(thing_name=thingName, shadow_name=shadowName)
        except JsonRESTError as exc:
            raise _client_error(exc, "GetThingShadow") from exc
        return {"payload": io.BytesIO(json.dumps(shadow.to_dict()).encode())}


class MotoS3Objects:
    """PutObject on moto's S3 backend: what an IoT rule's S3 action does inside AWS."""

    def __init__(self, account: str) -> None:
        from moto.s3.models import s3_backends

        self._backend = s3_backends[account]["global"]

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str = "") -> dict[str, Any]:  # noqa: N803
        """Store the object (a later put of the same key replaces it, as in S3)."""
        from moto.core.exceptions import ServiceException
        from werkzeug.exceptions import HTTPException

        try:
            key = self._backend.put_object(Bucket, Key, Body)
        except (ServiceException, HTTPException) as exc:
            raise _client_error(exc, "PutObject") from exc
        return {"ETag": key.etag}
