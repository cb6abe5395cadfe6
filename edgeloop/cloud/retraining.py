"""The retraining trigger in the cloud: per schedule tick, labels and fleet drift in, at most one event out.

A tick reads the model's trigger record, the catalogue's label count, the last-known-good version (the
lineage parent), that version's fleet drift score and the labelled-error detector's alarm on it, runs the
pure policy (edgeloop.core.retraining) and stores the new record with a conditional write: of two
invocations that read the same record, one stores it and the other stops, so a tick triggers at most once. A
decided Retraining Requested entry is stored as pending in that same write and only then put on the bus;
once the bus accepted it, the record says so. If the put fails, the next invocation (the retry, or the next
tick) sends the pending entry again under the same request id, which the training launcher turns into the
same job name: one training job.

Retraining table (pk = model name): sk "trigger", the TriggerRecord as JSON and its revision; sk "detector",
the label ingest's ErrorWatch (edgeloop.cloud.error_watch), which the trigger only reads.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.cloud.retraining_table import TRIGGER_SK, Alarms, item_key, read_item, trigger_record_of
from edgeloop.cloud.rollout_stores import FleetHealthStore, RolloutStore
from edgeloop.cloud.sample_ingest import SampleCatalogue
from edgeloop.core.errors import ConflictError, StateStoreError, ValidationError
from edgeloop.core.retraining import RetrainingPolicy, TriggerRecord, evaluate_tick, initial_record, sent
from edgeloop.core.rollout import VersionHealth

log = logging.getLogger(__name__)

MAX_PUT_EVENTS_ENTRIES = 10


class RetrainingStateStore(Protocol):
    """One TriggerRecord per model, written only over the revision it was read at.

    `put(record)` stores the record only if the stored revision is record.revision - 1 (no item at all
    for revision 1) and raises ConflictError otherwise: another invocation stored first. `get` returns
    None for a model never stored.
    """

    def get(self, model_name: str) -> TriggerRecord | None: ...

    def put(self, record: TriggerRecord) -> None: ...


class EventBus(Protocol):
    """Where edgeloop puts its own events (EventBridge); `put` raises StateStoreError unless every entry was taken."""

    def put(self, entries: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass(frozen=True)
class TriggerOutcome:
    """What one tick did, for the log and the invoke's result."""

    status: str
    """triggered, waiting, already-evaluated or superseded."""
    reason: str
    model_name: str
    parent_version: int | None = None
    request_id: str | None = None
    resent_request_id: str | None = None
    """A pending request from an earlier invocation that this one put on the bus again."""

    def to_dict(self) -> dict[str, Any]:
        """The handler's result."""
        return {
            "status": self.status,
            "reason": self.reason,
            "modelName": self.model_name,
            "parentVersion": self.parent_version,
            "requestId": self.request_id,
            "resentRequestId": self.resent_request_id,
        }


def run_trigger(
    model_name: str,
    policy: RetrainingPolicy,
    at: float,
    *,
    states: RetrainingStateStore,
    catalogue: SampleCatalogue,
    rollouts: RolloutStore,
    health: FleetHealthStore,
    bus: EventBus,
    alarms: Alarms | None = None,
) -> TriggerOutcome:
    """Evaluate one tick at time `at`: finish an earlier unsent request first, then decide and store once.

    `alarms` gives the latest alarm of the labelled-error detector the label ingest feeds
    (edgeloop.cloud.error_watch): one on the live version the trigger has not handled is a reason to retrain.
    """
    record = states.get(model_name) or initial_record(model_name)
    resent = None
    if record.pending is not None:
        resent = _send(record, states, bus)
        record = states.get(model_name) or record
    live = rollouts.last_known_good(model_name)
    drift = fleet_drift(health, model_name, live)
    alarm = None if alarms is None else alarms.alarm(model_name, live)
    tick = evaluate_tick(
        record,
        policy,
        now=at,
        label_total=catalogue.label_count(model_name),
        live_version=live,
        drift_score=drift,
        alarm=alarm,
    )
    done = TriggerOutcome("already-evaluated", tick.decision.reason, model_name, live, resent_request_id=resent)
    if tick.record is None:
        return done
    try:
        states.put(tick.record)
    except ConflictError:
        reason = "another invocation stored this model's trigger state first; it decides this tick"
        return TriggerOutcome("superseded", reason, model_name, live, resent_request_id=resent)
    if tick.entry is None:
        return TriggerOutcome("waiting", tick.decision.reason, model_name, live, resent_request_id=resent)
    request_id = _send(tick.record, states, bus)
    log.info("retraining %s from version %s (%s): %s", model_name, live, request_id, tick.decision.reason)
    return TriggerOutcome("triggered", tick.decision.reason, model_name, live, request_id, resent)


def fleet_drift(health: FleetHealthStore, model_name: str, version: int | None) -> float | None:
    """The fleet's drift score for a version: the mean of its devices' reported scores over every ring."""
    if version is None:
        return None
    return sum(health.aggregates(model_name, version).values(), VersionHealth()).mean_drift


def _send(record: TriggerRecord, states: RetrainingStateStore, bus: EventBus) -> str:
    """Put the pending entry, then record it sent; a concurrent sender of the same entry may record it instead."""
    if record.pending is None:
        raise ValidationError("pending", "no retraining request is pending")
    bus.put([record.pending])
    try:
        states.put(sent(record))
    except ConflictError:
        log.info("%s: the pending request was recorded sent by another invocation", record.state.model_name)
    return str(json.loads(record.pending["Detail"])["request_id"])


# --- adapters --------------------------------------------------------------------------------------------


class MemoryRetrainingStateStore:
    """RetrainingStateStore in a dict (tests and the local stack)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, TriggerRecord] = {}

    def get(self, model_name: str) -> TriggerRecord | None:
        """The stored record."""
        with self._lock:
            return self.records.get(model_name)

    def live_version(self, model_name: str) -> int | None:
        """LiveVersions: the parent version in the stored record."""
        record = self.get(model_name)
        return None if record is None else record.state.parent_version

    def put(self, record: TriggerRecord) -> None:
        """Store over the predecessor revision only."""
        model = record.state.model_name
        with self._lock:
            stored = self.records.get(model)
            if (0 if stored is None else stored.revision) != record.revision - 1:
                raise ConflictError(_conflict(model, record.revision))
            self.records[model] = record


class DynamoRetrainingStateStore:
    """RetrainingStateStore on DynamoDB: one item per model, a conditional put on its revision."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def get(self, model_name: str) -> TriggerRecord | None:
        """A consistent read of the model's item."""
        item = read_item(self._db, self._table, model_name, TRIGGER_SK)
        return None if item is None else trigger_record_of(item)

    def put(self, record: TriggerRecord) -> None:
        """Put unless another writer stored a revision since this one's predecessor."""
        model = record.state.model_name
        item = {
            **item_key(model, TRIGGER_SK),
            "revision": {"N": str(record.revision)},
            "record": {"S": json.dumps(record.to_dict(), sort_keys=True)},
        }
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if record.revision == 1
            else {
                "ConditionExpression": "revision = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(record.revision - 1)}},
            }
        )
        try:
            self._db.put_item(TableName=self._table, Item=item, **condition)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConflictError(_conflict(model, record.revision)) from exc
            raise StateStoreError(f"could not store the retraining state of {model}: {exc}") from exc


def _conflict(model_name: str, revision: int) -> str:
    return f"retraining state of {model_name} changed since revision {revision - 1} was read"


class MemoryEventBus:
    """EventBus in a list."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def put(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Keep copies of the entries."""
        self.sent.extend(dict(entry) for entry in entries)


class EventBridgeBus:
    """EventBus on EventBridge PutEvents; a partly refused call raises, so the caller retries the whole batch."""

    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def put(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """PutEvents in chunks of ten (its limit)."""
        for start in range(0, len(entries), MAX_PUT_EVENTS_ENTRIES):
            chunk = [{**entry, "EventBusName": self._bus} for entry in entries[start : start + MAX_PUT_EVENTS_ENTRIES]]
            try:
                response = self._events.put_events(Entries=chunk)
            except AWS_ERRORS as exc:
                raise StateStoreError(f"could not put {len(chunk)} events on {self._bus}: {exc}") from exc
            if response.get("FailedEntryCount"):
                codes = sorted({e.get("ErrorCode", "") for e in response.get("Entries", []) if e.get("ErrorCode")})
                raise StateStoreError(f"EventBridge refused {response['FailedEntryCount']} of {len(chunk)}: {codes}")
