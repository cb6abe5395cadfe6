"""moto's backends without botocore: the same state and the same answers as the boto3 calls they stand in for."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from edgeloop.local.backends import MotoIotData, MotoS3Objects
from edgeloop.local.stack import ACCOUNT, REGION


def test_shadow_updates_land_in_the_state_boto3_reads(aws: None) -> None:
    boto3.client("iot", region_name=REGION).create_thing(thingName="dev-1")
    shadows = MotoIotData(ACCOUNT, REGION)
    document = {"state": {"reported": {"model_version": 3}}}
    response = shadows.update_thing_shadow(thingName="dev-1", shadowName="h", payload=json.dumps(document).encode())
    accepted = json.loads(response["payload"].read())
    assert accepted["state"]["reported"] == {"model_version": 3}
    read = boto3.client("iot-data", region_name=REGION).get_thing_shadow(thingName="dev-1", shadowName="h")
    assert json.loads(read["payload"].read())["state"]["reported"] == {"model_version": 3}
    assert json.loads(shadows.get_thing_shadow(thingName="dev-1", shadowName="h")["payload"].read())["version"] == 1


def test_a_shadow_for_an_unknown_thing_is_a_client_error_as_through_boto3(aws: None) -> None:
    with pytest.raises(ClientError) as info:
        MotoIotData(ACCOUNT, REGION).update_thing_shadow(thingName="nobody", shadowName="h", payload=b"{}")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_objects_put_in_process_are_the_ones_boto3_gets(aws: None) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="edgeloop-data-test")
    objects = MotoS3Objects(ACCOUNT)
    objects.put_object(Bucket="edgeloop-data-test", Key="results/dev-1/1.json", Body=b"first")
    objects.put_object(Bucket="edgeloop-data-test", Key="results/dev-1/1.json", Body=b"again")  # a retry overwrites
    assert s3.get_object(Bucket="edgeloop-data-test", Key="results/dev-1/1.json")["Body"].read() == b"again"
    with pytest.raises(ClientError):
        objects.put_object(Bucket="no-such-bucket", Key="k", Body=b"x")
