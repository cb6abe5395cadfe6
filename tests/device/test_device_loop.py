"""Closing the loop on the device: drift in the health shadow, hard examples as SAMPLE records, privacy, budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits
from support import FakeClock

from edgeloop.core.health import ReportPolicy, report_due
from edgeloop.core.manifest import ModelManifest
from edgeloop.core.names import HEALTH_SHADOW, model_component_name
from edgeloop.core.privacy import hash_value
from edgeloop.core.records import Record, RecordKind
from edgeloop.core.sample_payload import Sample
from edgeloop.core.samplers import SECONDS_PER_DAY, payload_bytes
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.uplink import MemoryUplink
from edgeloop.training.baseline import baseline

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory

THING = "dev-1"
COMPONENT = model_component_name("digits")
SALT = "fleet-salt-for-tests-0001"


def config(**overrides: Any) -> DeviceConfig:
    base = {"modelComponent": COMPONENT, "modelComponentVersion": "1.0.0", "batchMax": 32, "driftMinRows": 200}
    return DeviceConfig.from_config({**base, **overrides})


@dataclass
class Device:
    runtime: DeviceRuntime
    buffer: MemoryBuffer
    uplink: MemoryUplink
    clock: FakeClock


@dataclass(frozen=True)
class Digits:
    """sklearn's digits, shuffled: `reference` makes the baseline, `unseen` (897 rows) is the live stream.

    Shuffled, because the dataset is ordered by writer: its first and second halves differ for real
    (PSI ~0.29 on some pixels), which is drift, not a stable stream.
    """

    reference: np.ndarray
    unseen: np.ndarray


@pytest.fixture(scope="module")
def digits() -> Digits:
    x, _ = load_digits(return_X_y=True)
    rows = x.astype(np.float64)[np.random.default_rng(0).permutation(len(x))]
    return Digits(rows[:900], rows[900:])


@pytest.fixture
def trained_baseline(digits_model: DigitsModel, digits: Digits) -> Callable[[ModelManifest], ModelManifest]:
    """A manifest edit giving the digits model the baseline training would have written (its 500 rows)."""
    session = ort.InferenceSession(digits_model.onnx, providers=["CPUExecutionProvider"])
    train = digits.reference.astype(np.float32)
    (probabilities,) = session.run(["probabilities"], {"input": train})
    names = tuple(f"pixel_{i}" for i in range(64))
    made = baseline(train, names, probabilities.max(axis=1))
    return lambda manifest: replace(manifest, baseline=made)


@pytest.fixture
def make_device(model_root: Path) -> Callable[..., Device]:
    def make(cfg: DeviceConfig, *, seed: int = 0) -> Device:
        clock, buffer, uplink = FakeClock(20_000 * SECONDS_PER_DAY + 100.0), MemoryBuffer(THING), MemoryUplink()
        runtime = DeviceRuntime(
            thing_name=THING,
            buffer=buffer,
            uplink=uplink,
            clock=clock,
            model_root=model_root,
            config=cfg,
            rng=np.random.default_rng(seed),
        )
        return Device(runtime, buffer, uplink, clock)

    return make


@pytest.fixture
def trained(
    make_model_dir: ModelDirFactory, trained_baseline: Callable[[ModelManifest], ModelManifest]
) -> ModelDirFactory:
    make_model_dir(1, edit=trained_baseline)
    return make_model_dir


def stream(rows: np.ndarray, prefix: str = "r") -> list[tuple[str, np.ndarray]]:
    return [(f"{prefix}{i}", row) for i, row in enumerate(rows)]


def one_by_one(device: Device, requests: list[tuple[str, np.ndarray]]) -> None:
    for request in requests:
        device.runtime.serve([request])  # the batch-1 quick path
    device.runtime.commit()


def samples(buffer: MemoryBuffer) -> list[Sample]:
    records: list[Record] = buffer.peek(1_000_000)
    return [Sample.from_payload(r.payload) for r in records if r.kind is RecordKind.SAMPLE]


def shadow_reported(device: Device) -> dict[str, Any]:
    assert device.runtime.report_health()
    thing, name, document = device.uplink.shadows[-1]
    assert (thing, name) == (THING, HEALTH_SHADOW)
    reported: dict[str, Any] = document["state"]["reported"]
    return reported


# --- drift ----------------------------------------------------------------------------------------


def test_a_stable_stream_keeps_the_drift_score_low(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config())
    device.runtime.infer(stream(digits.unseen))

    reported = shadow_reported(device)

    assert reported["drift_rows"] == len(digits.unseen)
    assert reported["drift_score"] < 0.2
    assert reported["drifted_features"] == []
    assert abs(reported["confidence_shift"]) < 0.1


def test_a_drifted_stream_raises_the_score_names_features_and_is_worth_a_report(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config())
    device.runtime.infer(stream(digits.unseen[:400]))
    calm = device.runtime.health()

    inverted = (
        16.0 - np.concatenate([digits.unseen, digits.reference])[:1000]
    )  # light strokes on a dark page: the same digits, unfamiliar pixels
    one_by_one(device, stream(inverted[:600], "q"))
    device.runtime.infer(stream(inverted[600:], "b"))
    drifted = device.runtime.health()

    assert calm.drift_score is not None
    assert calm.drift_score < 0.2
    assert drifted.drift_score is not None
    assert drifted.drift_score > 1.0
    assert drifted.drifted_features is not None
    assert len(drifted.drifted_features) == 5
    assert all(name.startswith("pixel_") for name in drifted.drifted_features)
    assert drifted.confidence_shift is not None
    assert drifted.confidence_shift < 0
    policy = ReportPolicy.from_config(device.runtime.config)
    assert report_due(calm, drifted, calm.reported_at + 2, policy, calm.reported_at) == "drift"


def test_drift_is_scored_only_with_enough_rows_and_can_be_turned_off(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config())
    device.runtime.infer(stream(digits.unseen[500:699]))
    assert device.runtime.health().drift_score is None  # 199 rows < driftMinRows
    device.runtime.infer(stream(digits.unseen[699:700]))
    assert device.runtime.health().drift_score is not None

    off = make_device(config(driftWindow=0))
    off.runtime.infer(stream(digits.unseen[500:1000]))
    health = off.runtime.health()
    assert (health.drift_score, health.drifted_features, health.confidence_shift) == (None, None, None)


def test_a_drift_threshold_override_moves_the_verdict(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config())
    device.runtime.infer(stream(digits.unseen))
    score = device.runtime.health().drift_score
    assert score is not None

    result = device.runtime.apply_overrides({"driftThreshold": max(0.001, score / 2)})

    assert result.rejected == {}
    assert device.runtime.health().drifted_features  # the same window, now over the lowered threshold
    assert device.runtime.health().drift_rows == len(digits.unseen)  # an override does not empty the window


# --- samplers, privacy and the budget --------------------------------------------------------------


def test_control_samples_land_in_the_buffer_without_raw_features_by_default(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config(samplers={"random": 1.0}))
    one_by_one(device, stream(digits.unseen[500:503]))
    device.runtime.infer(stream(digits.unseen[503:513], "b"))

    taken = samples(device.buffer)

    assert [s.request_id for s in taken] == ["r0", "r1", "r2", *(f"b{i}" for i in range(10))]
    assert {s.sampler for s in taken} == {"random"}
    assert {s.model_version for s in taken} == {1}
    assert all(s.features == {} for s in taken)  # no policy: nothing raw leaves
    assert all(not s.privacy.policy.allow_raw and s.privacy.policy.laplace_epsilon is None for s in taken)
    assert all(0 <= s.margin <= s.confidence <= 1 for s in taken)
    health = device.runtime.health()
    assert health.samples_taken == 13
    assert health.samples_dropped_budget == 0
    assert health.sample_bytes_today == sum(payload_bytes(s.to_payload()) for s in taken)


def test_raw_features_leave_only_when_allowed(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config(samplers={"random": 1.0}, privacy={"allowRaw": True}))
    rows = digits.unseen[500:502]
    one_by_one(device, stream(rows[:1]))
    device.runtime.infer(stream(rows[1:], "b"))
    for sample, row in zip(samples(device.buffer), rows, strict=True):
        assert list(sample.features.values()) == row.tolist()
        assert list(sample.features) == [f"pixel_{i}" for i in range(64)]


def test_the_privacy_policy_is_applied_and_recorded_with_each_sample(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    privacy = {
        "drop": ["pixel_0", "pixel_1"],
        "hash": ["pixel_2"],
        "coarsen": {"pixel_3": 8},
        "laplaceEpsilon": 0.5,
    }
    device = make_device(config(samplers={"random": 1.0}, privacy=privacy, fleetSalt=SALT))
    rows = digits.unseen[500:540]
    one_by_one(device, stream(rows[:20]))
    device.runtime.infer(stream(rows[20:], "b"))

    taken = samples(device.buffer)
    assert len(taken) == 40
    noise = []
    for sample, row in zip(taken, rows, strict=True):
        assert "pixel_0" not in sample.features
        assert "pixel_1" not in sample.features
        assert sample.features["pixel_2"] == hash_value(SALT, "pixel_2", row[2])
        assert sample.features["pixel_3"] in (0.0, 8.0, 16.0)
        values = np.array([sample.features[f"pixel_{i}"] for i in range(4, 64)], dtype=np.float64)
        assert ((values >= 0) & (values <= 16)).all()
        noise.append(values - row[4:])
        applied = sample.privacy
        assert (applied.policy.laplace_epsilon, applied.sensitivity) == (0.5, 16.0)
        assert applied.policy.drop == ("pixel_0", "pixel_1")
    assert np.abs(np.concatenate(noise)).mean() > 5  # Laplace scale 32 (clamped): these are not the raw pixels


def test_the_hard_example_samplers_take_what_they_should(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config(samplers={"low_confidence": 0.9, "small_margin": 0.5}, privacy={"allowRaw": True}))
    requests = stream(digits.unseen[500:700])
    one_by_one(device, requests[:100])
    device.runtime.infer(requests[100:])

    taken = samples(device.buffer)
    assert taken
    assert len(taken) < 200
    for s in taken:
        if s.sampler == "low_confidence":
            assert s.confidence < 0.9
        else:
            assert s.sampler == "small_margin"
            assert s.confidence >= 0.9
            assert s.margin < 0.5
    assert {s.sampler for s in taken} <= {"low_confidence", "small_margin"}


def test_drift_flagged_samples_follow_the_drift_verdict(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config(samplers={"drifted": 1.0}))
    inverted = stream(16.0 - digits.unseen[500:900])
    device.runtime.infer(inverted[:300])
    assert samples(device.buffer) == []  # not yet scored: no verdict, no drift samples
    assert device.runtime.health().drifted_features

    one_by_one(device, inverted[300:310])
    device.runtime.infer(inverted[310:320])

    taken = samples(device.buffer)
    assert len(taken) == 20
    assert all(s.sampler == "drifted" and s.drifted for s in taken)
    assert all(s.drift_score is not None and s.drift_score > 1 for s in taken)


def test_the_daily_byte_budget_drops_and_counts_then_resets_at_midnight_utc(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    probe = make_device(config(samplers={"random": 1.0}))
    one_by_one(probe, stream(digits.unseen[500:501]))
    size = payload_bytes(samples(probe.buffer)[0].to_payload())

    device = make_device(config(samplers={"random": 1.0}, sampleBytesPerDay=3 * size + size // 2))
    one_by_one(device, stream(digits.unseen[500:505]))
    device.runtime.infer(stream(digits.unseen[505:510], "b"))
    health = device.runtime.health()
    assert len(samples(device.buffer)) == 3
    assert (health.samples_taken, health.samples_dropped_budget) == (3, 7)
    assert health.sample_bytes_today == sum(payload_bytes(s.to_payload()) for s in samples(device.buffer))

    device.clock.now += SECONDS_PER_DAY
    assert device.runtime.health().sample_bytes_today == 0
    one_by_one(device, stream(digits.unseen[510:511], "next-day"))
    assert device.runtime.health().samples_taken == 4


def test_no_samplers_no_sample_counts(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config())
    device.runtime.infer(stream(digits.unseen[500:510]))
    health = device.runtime.health()
    assert (health.samples_taken, health.samples_dropped_budget, health.sample_bytes_today) == (None, None, None)
    assert samples(device.buffer) == []


def test_a_policy_naming_a_feature_the_model_lacks_takes_no_samples(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits, caplog: pytest.LogCaptureFixture
) -> None:
    device = make_device(config(samplers={"random": 1.0}, privacy={"allowRaw": True, "drop": ["serial_no"]}))
    device.runtime.infer(stream(digits.unseen[500:510]))
    assert samples(device.buffer) == []
    assert "privacy.drop: feature 'serial_no' is not in the model's input" in caplog.text
    assert device.runtime.health().inferences == 10  # inference carries on


def test_samplers_can_be_tuned_from_the_shadow_and_a_bad_name_is_refused(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    device = make_device(config())

    refused = device.runtime.apply_overrides({"samplers": {"entropyy": 0.5}})
    assert "unknown sampler 'entropyy'" in refused.rejected["samplers"]
    assert device.runtime.config.samplers == ()

    applied = device.runtime.apply_overrides({"samplers": {"random": 1.0}})
    assert applied.applied == {"samplers": "random=1"}
    device.runtime.infer(stream(digits.unseen[500:504]))
    assert len(samples(device.buffer)) == 4
    reported = shadow_reported(device)
    assert reported["overrides"]["applied"] == [{"key": "samplers", "value": "random=1"}]
    assert reported["samples_taken"] == 4


def test_the_runtime_prices_its_share_budget_at_what_its_sample_batches_took_on_the_wire(
    trained: ModelDirFactory, make_device: Callable[..., Device], digits: Digits
) -> None:
    """The forwarder tells the sample taker each SAMPLE batch's wire bytes: the share learns the gzip ratio."""
    device = make_device(
        config(samplers={"random": 0.0, "low_confidence": 0.9}, privacy={"allowRaw": True}, sampleBudgetShare=0.5)
    )
    assert device.runtime._samples.share.wire.ratio == 1.0  # nothing published yet: the prior
    device.runtime.infer(stream(digits.unseen[:400]))
    assert samples(device.buffer)
    device.runtime.forward(flush=True)

    wire = device.runtime._samples.share.wire
    published = [p for t, p in device.uplink.published if "/samples/" in t]
    assert published
    assert wire.wire_bytes == sum(len(p) for p in published)
    assert wire.ratio < 0.5  # digits' samples gzip well, so each is priced far below its JSON
