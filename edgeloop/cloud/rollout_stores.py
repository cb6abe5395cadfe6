"""Rollout and fleet-health stores on DynamoDB, each with an in-memory fake under one contract.

Rollouts table (pk = model name):
  sk "rollout#<version>"   the rollout's state (edgeloop.core.rollout.Rollout) and its policy
  sk "active"              lock item naming the one active rollout of the model (conditional put)
  sk "lkg"                 the model's last-known-good version
  sk "decision#<version>#<at>"  the decision log
Fleet-health table:
  pk "device#<thing>", sk "snapshot"          the device's last counted report (DeviceSnapshot) and the report
  pk "health#<model>#<version>", sk "ring#<k>"  atomic counters of VersionHealth for one version in one ring
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import fields, replace
from decimal import Decimal
from typing import Any, Protocol

from edgeloop.cloud.errors import AWS_ERRORS, error_code
from edgeloop.core.errors import ConflictError, NotFoundError, StateStoreError
from edgeloop.core.fleet_health import Contribution, DeviceSnapshot, apply_increments
from edgeloop.core.names import TABLE_PARTITION_KEY as PK
from edgeloop.core.names import TABLE_SORT_KEY as SK
from edgeloop.core.rollout import LATENCY_BUCKETS_MS, DecisionEntry, Rollout, RolloutPolicy, VersionHealth

ACTIVE = "active"
FLOAT_SLACK_DECIMAL = Decimal("1e-6")
"""A float sum this close below zero is rounding (scores added and removed again): it reads as zero."""
LAST_KNOWN_GOOD = "lkg"
SNAPSHOT = "snapshot"


def _rollout_key(version: int) -> str:
    return f"rollout#{version:010d}"


def _decision_prefix(version: int) -> str:
    return f"decision#{version:010d}#"


class RolloutStore(Protocol):
    """Rollouts per model: at most one active (not final) at a time, every write guarded by state_version.

    `start` raises ConflictError while another rollout of the model is active, or if this version already
    had one. `save(rollout)` writes only if the stored state_version is rollout.state_version - 1 (the
    transition's predecessor) and raises ConflictError otherwise, so two controllers never both advance
    a rollout; a final state releases the model's active lock in the same write. `get` raises
    NotFoundError. `add_decision` keeps entries ordered by (seq, at), seq being the rollout's state_version
    when the entry was made, and is idempotent for the same (seq, at).
    """

    def start(self, rollout: Rollout, policy: RolloutPolicy) -> None: ...

    def save(self, rollout: Rollout) -> None: ...

    def get(self, model_name: str, version: int) -> tuple[Rollout, RolloutPolicy]: ...

    def active(self, model_name: str) -> Rollout | None: ...

    def add_decision(self, model_name: str, version: int, entry: DecisionEntry, seq: int) -> None: ...

    def decisions(self, model_name: str, version: int) -> list[DecisionEntry]: ...

    def last_known_good(self, model_name: str) -> int | None: ...

    def set_last_known_good(self, model_name: str, version: int) -> None: ...


class FleetHealthStore(Protocol):
    """Each device's last counted report and the per-(model, version, ring) sums it contributed to.

    `record` applies a Contribution atomically: the device's snapshot moves to the new shadow version
    and every increment is added, or nothing happens (False) because a report with that shadow version
    or a later one was counted already. `aggregates` returns the sums per ring index of one version.
    """

    def device(self, thing_name: str) -> DeviceSnapshot | None: ...

    def record(
        self, model_name: str, done: Contribution, previous: DeviceSnapshot, report: Mapping[str, Any]
    ) -> bool: ...

    def aggregates(self, model_name: str, version: int) -> dict[int, VersionHealth]: ...

    def set_ring_facts(self, model_name: str, version: int, ring: int, *, targeted: int, job_failures: int) -> None: ...


# --- in memory ----------------------------------------------------------------------------------------


class MemoryRolloutStore:
    """RolloutStore in a dict, for tests and the local stack's unit tier."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rollouts: dict[tuple[str, int], tuple[Rollout, RolloutPolicy]] = {}
        self._active: dict[str, int] = {}
        self._lkg: dict[str, int] = {}
        self._decisions: dict[tuple[str, int], dict[tuple[int, float], DecisionEntry]] = {}

    def start(self, rollout: Rollout, policy: RolloutPolicy) -> None:
        """Create the rollout and take the model's active lock."""
        with self._lock:
            key = (rollout.model_name, rollout.model_version)
            if rollout.model_name in self._active:
                raise ConflictError(_busy(rollout.model_name, self._active[rollout.model_name]))
            if key in self._rollouts:
                raise ConflictError(f"{rollout.model_name} v{rollout.model_version} already had a rollout")
            self._rollouts[key] = (rollout, policy)
            if not rollout.is_final:
                self._active[rollout.model_name] = rollout.model_version

    def save(self, rollout: Rollout) -> None:
        """Write the next state if nobody wrote since it was read."""
        with self._lock:
            key = (rollout.model_name, rollout.model_version)
            if key not in self._rollouts:
                raise NotFoundError(f"no rollout of {rollout.model_name} v{rollout.model_version}")
            stored, policy = self._rollouts[key]
            if stored.state_version != rollout.state_version - 1:
                raise ConflictError(_stale(rollout, stored.state_version))
            self._rollouts[key] = (rollout, policy)
            if rollout.is_final and self._active.get(rollout.model_name) == rollout.model_version:
                del self._active[rollout.model_name]

    def get(self, model_name: str, version: int) -> tuple[Rollout, RolloutPolicy]:
        """The rollout of one version and its policy."""
        with self._lock:
            try:
                return self._rollouts[(model_name, version)]
            except KeyError:
                raise NotFoundError(f"no rollout of {model_name} v{version}") from None

    def active(self, model_name: str) -> Rollout | None:
        """The model's active rollout, if any."""
        with self._lock:
            version = self._active.get(model_name)
            return None if version is None else self._rollouts[(model_name, version)][0]

    def add_decision(self, model_name: str, version: int, entry: DecisionEntry, seq: int) -> None:
        """Append to the decision log (a repeat of the same (seq, moment) is kept once)."""
        with self._lock:
            self._decisions.setdefault((model_name, version), {}).setdefault((seq, entry.at), entry)

    def decisions(self, model_name: str, version: int) -> list[DecisionEntry]:
        """The decision log in time order."""
        with self._lock:
            log = self._decisions.get((model_name, version), {})
            return [log[key] for key in sorted(log)]

    def last_known_good(self, model_name: str) -> int | None:
        """The model's last-known-good version."""
        with self._lock:
            return self._lkg.get(model_name)

    def set_last_known_good(self, model_name: str, version: int) -> None:
        """Record a completed rollout's version as last-known-good."""
        with self._lock:
            self._lkg[model_name] = version


class MemoryFleetHealthStore:
    """FleetHealthStore in dicts, with the same once-per-shadow-version rule as the DynamoDB transaction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceSnapshot] = {}
        self.reports: dict[str, Mapping[str, Any]] = {}
        self._health: dict[tuple[str, int, int], VersionHealth] = {}

    def device(self, thing_name: str) -> DeviceSnapshot | None:
        """The device's last counted snapshot."""
        with self._lock:
            return self._devices.get(thing_name)

    def record(self, model_name: str, done: Contribution, previous: DeviceSnapshot, report: Mapping[str, Any]) -> bool:
        """Apply a contribution unless a report as new or newer was counted first."""
        with self._lock:
            stored = self._devices.get(previous.thing_name)
            if stored is not None and stored.shadow_version >= done.snapshot.shadow_version:
                return False
            self._devices[previous.thing_name] = done.snapshot
            self.reports[previous.thing_name] = dict(report)
            ring = done.snapshot.ring
            for version, increments in done.increments.items():
                key = (model_name, version, ring)
                self._health[key] = apply_increments(self._health.get(key, VersionHealth()), increments)
            return True

    def aggregates(self, model_name: str, version: int) -> dict[int, VersionHealth]:
        """Sums per ring of one version."""
        with self._lock:
            return {ring: h for (m, v, ring), h in self._health.items() if (m, v) == (model_name, version)}

    def set_ring_facts(self, model_name: str, version: int, ring: int, *, targeted: int, job_failures: int) -> None:
        """What the controller knows and devices do not report: how many were targeted, how many jobs failed."""
        with self._lock:
            key = (model_name, version, ring)
            current = self._health.get(key, VersionHealth())
            self._health[key] = replace(current, devices_targeted=targeted, job_failures=job_failures)


def _busy(model_name: str, version: int) -> str:
    return f"{model_name} already has an active rollout (v{version}); finish or abort it first"


def _stale(rollout: Rollout, stored: int) -> str:
    return (
        f"rollout of {rollout.model_name} v{rollout.model_version} changed since it was read "
        f"(stored state_version {stored}, this write expects {rollout.state_version - 1})"
    )


# --- DynamoDB -------------------------------------------------------------------------------------------


def _aws(action: str, exc: BaseException) -> StateStoreError:
    return StateStoreError(f"{action} failed: {error_code(exc) or type(exc).__name__}: {exc}")


class DynamoRolloutStore:
    """RolloutStore on one DynamoDB table (low-level client, conditional writes and a transaction for start)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def start(self, rollout: Rollout, policy: RolloutPolicy) -> None:
        """Create the rollout item and the active lock together, or neither."""
        name = rollout.model_name
        items = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _rollout_item(rollout, policy),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if not rollout.is_final:
            lock = {PK: {"S": name}, SK: {"S": ACTIVE}, "version": {"N": str(rollout.model_version)}}
            items.append(
                {"Put": {"TableName": self._table, "Item": lock, "ConditionExpression": "attribute_not_exists(pk)"}}
            )
        try:
            self._db.transact_write_items(TransactItems=items)
        except AWS_ERRORS as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise _aws("starting a rollout", exc) from exc
            active = self.active(name)
            if active is not None:
                raise ConflictError(_busy(name, active.model_version)) from exc
            raise ConflictError(f"{name} v{rollout.model_version} already had a rollout") from exc

    def save(self, rollout: Rollout) -> None:
        """Conditional on the predecessor's state_version; a final state deletes the lock in the same transaction."""
        key = {PK: {"S": rollout.model_name}, SK: {"S": _rollout_key(rollout.model_version)}}
        values = _attributes(rollout.to_dict())
        names = {f"#{k}": k for k in values}
        update = {
            "Update": {
                "TableName": self._table,
                "Key": key,
                "UpdateExpression": "SET " + ", ".join(f"#{k} = :{k}" for k in values),
                "ConditionExpression": "attribute_exists(pk) AND #state_version = :expected",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    **{f":{k}": v for k, v in values.items()},
                    ":expected": {"N": str(rollout.state_version - 1)},
                },
            }
        }
        items: list[dict[str, Any]] = [update]
        if rollout.is_final:
            items.append(
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": {PK: {"S": rollout.model_name}, SK: {"S": ACTIVE}},
                        "ConditionExpression": "attribute_not_exists(pk) OR version = :v",
                        "ExpressionAttributeValues": {":v": {"N": str(rollout.model_version)}},
                    }
                }
            )
        try:
            self._db.transact_write_items(TransactItems=items)
        except AWS_ERRORS as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise _aws("saving a rollout", exc) from exc
            stored, _ = self.get(rollout.model_name, rollout.model_version)
            raise ConflictError(_stale(rollout, stored.state_version)) from exc

    def get(self, model_name: str, version: int) -> tuple[Rollout, RolloutPolicy]:
        """Read one rollout (strongly consistent: the controller acts on it)."""
        item = self._get_item(model_name, _rollout_key(version))
        if item is None:
            raise NotFoundError(f"no rollout of {model_name} v{version}")
        return _rollout_from_item(item)

    def active(self, model_name: str) -> Rollout | None:
        """The rollout the model's lock names."""
        lock = self._get_item(model_name, ACTIVE)
        if lock is None:
            return None
        rollout, _ = self.get(model_name, int(lock["version"]["N"]))
        return rollout

    def add_decision(self, model_name: str, version: int, entry: DecisionEntry, seq: int) -> None:
        """One item per decision, sorted by (seq, moment); a retried write of the same key is a no-op."""
        item = {PK: {"S": model_name}, SK: {"S": f"{_decision_prefix(version)}{seq:08d}#{entry.at:020.6f}"}}
        item["entry"] = {"S": json.dumps(entry.to_dict(), sort_keys=True)}
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except AWS_ERRORS as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise _aws("logging a decision", exc) from exc

    def decisions(self, model_name: str, version: int) -> list[DecisionEntry]:
        """The decision log in time order (the sort key orders it)."""
        out: list[DecisionEntry] = []
        for item in self._query(model_name, _decision_prefix(version)):
            out.append(DecisionEntry.from_dict(json.loads(item["entry"]["S"])))
        return out

    def last_known_good(self, model_name: str) -> int | None:
        """The model's last-known-good version."""
        item = self._get_item(model_name, LAST_KNOWN_GOOD)
        return None if item is None else int(item["version"]["N"])

    def set_last_known_good(self, model_name: str, version: int) -> None:
        """Record the version a completed rollout left the fleet on."""
        item = {PK: {"S": model_name}, SK: {"S": LAST_KNOWN_GOOD}, "version": {"N": str(version)}}
        try:
            self._db.put_item(TableName=self._table, Item=item)
        except AWS_ERRORS as exc:
            raise _aws("recording last-known-good", exc) from exc

    def _get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            item = self._db.get_item(
                TableName=self._table, Key={PK: {"S": pk}, SK: {"S": sk}}, ConsistentRead=True
            ).get("Item")
        except AWS_ERRORS as exc:
            raise _aws("reading the rollouts table", exc) from exc
        return item if isinstance(item, dict) else None

    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._db.query(**kwargs)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except AWS_ERRORS as exc:
            raise _aws("querying the rollouts table", exc) from exc


class DynamoFleetHealthStore:
    """FleetHealthStore on one DynamoDB table: a transaction per report (snapshot put + counter ADDs)."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def device(self, thing_name: str) -> DeviceSnapshot | None:
        """The device's last counted snapshot."""
        try:
            item = self._db.get_item(TableName=self._table, Key=_device_key(thing_name), ConsistentRead=True).get(
                "Item"
            )
        except AWS_ERRORS as exc:
            raise _aws("reading a device snapshot", exc) from exc
        if not item:
            return None
        return DeviceSnapshot.from_dict(json.loads(item["snapshot"]["S"]))

    def record(self, model_name: str, done: Contribution, previous: DeviceSnapshot, report: Mapping[str, Any]) -> bool:
        """The snapshot put (only over an older shadow version) and every counter update, in one transaction."""
        snapshot = done.snapshot
        put = {
            "Put": {
                "TableName": self._table,
                "Item": {
                    **_device_key(snapshot.thing_name),
                    "shadow_version": {"N": str(snapshot.shadow_version)},
                    "snapshot": {"S": json.dumps(snapshot.to_dict(), sort_keys=True)},
                    "report": {"S": json.dumps(report, sort_keys=True)},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR shadow_version < :v",
                "ExpressionAttributeValues": {":v": {"N": str(snapshot.shadow_version)}},
            }
        }
        updates = [
            _counter_update(self._table, model_name, version, snapshot.ring, increments)
            for version, increments in done.increments.items()
            if increments
        ]
        try:
            self._db.transact_write_items(TransactItems=[put, *updates])
        except AWS_ERRORS as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise _aws("recording a health report", exc) from exc
        return True

    def aggregates(self, model_name: str, version: int) -> dict[int, VersionHealth]:
        """One Query: the version's item per ring."""
        try:
            page = self._db.query(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": _health_pk(model_name, version)}},
                ConsistentRead=True,
            )
        except AWS_ERRORS as exc:
            raise _aws("reading fleet health", exc) from exc
        return {int(item[SK]["S"].split("#")[1]): _health_from_item(item) for item in page.get("Items", [])}

    def set_ring_facts(self, model_name: str, version: int, ring: int, *, targeted: int, job_failures: int) -> None:
        """SET (not ADD): the controller's own counts replace what it wrote last time."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key={PK: {"S": _health_pk(model_name, version)}, SK: {"S": _ring_sk(ring)}},
                UpdateExpression="SET devices_targeted = :t, job_failures = :f",
                ExpressionAttributeValues={":t": {"N": str(targeted)}, ":f": {"N": str(job_failures)}},
            )
        except AWS_ERRORS as exc:
            raise _aws("writing ring facts", exc) from exc


def _device_key(thing_name: str) -> dict[str, Any]:
    return {PK: {"S": f"device#{thing_name}"}, SK: {"S": SNAPSHOT}}


def _health_pk(model_name: str, version: int) -> str:
    return f"health#{model_name}#{version:010d}"


def _ring_sk(ring: int) -> str:
    return f"ring#{ring:03d}"


def _counter_name(key: str) -> str:
    """DynamoDB attribute of a VersionHealth field; histogram buckets are p99_<k>."""
    return key.replace("p99_histogram.", "p99_") if key.startswith("p99_histogram.") else key


def _counter_update(table: str, model: str, version: int, ring: int, increments: Mapping[str, float]) -> dict[str, Any]:
    names = {f"#a{i}": _counter_name(key) for i, key in enumerate(increments)}
    values = {f":a{i}": {"N": _number(amount)} for i, amount in enumerate(increments.values())}
    return {
        "Update": {
            "TableName": table,
            "Key": {PK: {"S": _health_pk(model, version)}, SK: {"S": _ring_sk(ring)}},
            "UpdateExpression": "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(increments))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _health_from_item(item: Mapping[str, Any]) -> VersionHealth:
    values: dict[str, Any] = {}
    for f in fields(VersionHealth):
        if f.name == "p99_histogram":
            continue
        raw = item.get(f.name, {}).get("N")
        if raw is not None:
            number = Decimal(raw)
            values[f.name] = (
                max(0.0, float(number))
                if f.type == "float" and number > -FLOAT_SLACK_DECIMAL
                else (float(number) if f.type == "float" else int(number))
            )
    histogram = tuple(int(Decimal(item.get(f"p99_{k}", {}).get("N", "0"))) for k in range(len(LATENCY_BUCKETS_MS) + 1))
    return VersionHealth(**values, p99_histogram=histogram)


def _attributes(data: Mapping[str, Any]) -> dict[str, Any]:
    """A flat dict as DynamoDB attribute values (None as NULL)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            out[key] = {"NULL": True}
        elif isinstance(value, bool):
            out[key] = {"BOOL": value}
        elif isinstance(value, int | float):
            out[key] = {"N": _number(value)}
        else:
            out[key] = {"S": str(value)}
    return out


def _rollout_item(rollout: Rollout, policy: RolloutPolicy) -> dict[str, Any]:
    return {
        PK: {"S": rollout.model_name},
        SK: {"S": _rollout_key(rollout.model_version)},
        **_attributes(rollout.to_dict()),
        "policy": {"S": json.dumps(policy.to_dict(), sort_keys=True)},
    }


def _rollout_from_item(item: Mapping[str, Any]) -> tuple[Rollout, RolloutPolicy]:
    data: dict[str, Any] = {}
    for key in Rollout.__dataclass_fields__:
        value = item.get(key)
        if value is None or "NULL" in value:
            data[key] = None
        elif "N" in value:
            number = Decimal(value["N"])
            data[key] = int(number) if number == number.to_integral_value() and key != "started_at" else float(number)
        else:
            data[key] = value["S"]
    for key in ("started_at", "ring_started_at"):
        if data.get(key) is not None:
            data[key] = float(data[key])
    return Rollout.from_dict(data), RolloutPolicy.from_dict(json.loads(item["policy"]["S"]))


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments for either table (tests and the local stack; infra defines the same keys)."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": PK, "AttributeType": "S"},
            {"AttributeName": SK, "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
