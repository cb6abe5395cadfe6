"""The retraining table's two items per model and their light readers, apart from the stores that write them.

pk = model name; sk "trigger": the trigger's TriggerRecord (edgeloop.cloud.retraining); sk "detector": the label
ingest's ErrorWatch (edgeloop.cloud.error_watch), whose version and latest alarm are also kept as plain
attributes. The label ingest reads the live version from the trigger's record (the last-known-good version
as of the last tick), and the trigger reads the alarm from the detector item, each without loading the
other's code (tests/infra/test_infra_packaging.py holds every Lambda to a size budget).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS
from edgeloop.core.errors import StateStoreError
from edgeloop.core.names import TABLE_PARTITION_KEY as PK
from edgeloop.core.names import TABLE_SORT_KEY as SK
from edgeloop.core.retraining import RaisedAlarm, TriggerRecord

TRIGGER_SK = "trigger"
WATCH_SK = "detector"
VERSION = "version"
ALARM_KEY = "alarm_key"
ALARM_REASON = "alarm_reason"
"""The detector item's plain attributes: the watched version, its latest alarm's key and reason (if any)."""


class LiveVersions(Protocol):
    """The model's live version as the trigger last saw it (None before its first tick or with none live)."""

    def live_version(self, model_name: str) -> int | None: ...


class Alarms(Protocol):
    """The labelled-error detector's latest alarm on the given live version (None: none, or another version's)."""

    def alarm(self, model_name: str, live_version: int | None) -> RaisedAlarm | None: ...


class DynamoRetrainingTable:
    """LiveVersions and Alarms on the retraining table: one consistent read each."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def live_version(self, model_name: str) -> int | None:
        """The parent version in the trigger's record."""
        item = read_item(self._db, self._table, model_name, TRIGGER_SK)
        return None if item is None else trigger_record_of(item).state.parent_version

    def alarm(self, model_name: str, live_version: int | None) -> RaisedAlarm | None:
        """The detector item's alarm attributes, if it watches live_version."""
        item = read_item(self._db, self._table, model_name, WATCH_SK)
        if item is None or live_version is None or int(item[VERSION]["N"]) != live_version or ALARM_KEY not in item:
            return None
        return RaisedAlarm(item[ALARM_KEY]["S"], item[ALARM_REASON]["S"])


def item_key(model_name: str, sort_key: str) -> dict[str, Any]:
    """The key of one of the model's items."""
    return {PK: {"S": model_name}, SK: {"S": sort_key}}


def read_item(dynamodb: Any, table: str, model_name: str, sort_key: str) -> dict[str, Any] | None:
    """A consistent read of one of the model's items (None: never stored)."""
    try:
        item = dynamodb.get_item(TableName=table, Key=item_key(model_name, sort_key), ConsistentRead=True).get("Item")
    except AWS_ERRORS as exc:
        raise StateStoreError(f"could not read the {sort_key} item of {model_name}: {exc}") from exc
    return item if isinstance(item, dict) and item else None


def trigger_record_of(item: dict[str, Any]) -> TriggerRecord:
    """The TriggerRecord a trigger item holds."""
    return TriggerRecord.from_dict(json.loads(item["record"]["S"]))
