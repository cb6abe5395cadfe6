"""The model manager through the runtime: verified swaps, kept versions, local rollback, and what health shows."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from support import FakeClock

from edgeloop.core.errors import ModelFormatError, ValidationError
from edgeloop.core.health import ModelState
from edgeloop.core.manifest import MANIFEST_FILE
from edgeloop.core.names import INFERENCE_COMPONENT, model_component_name
from edgeloop.core.records import InferenceResult
from edgeloop.core.settings import DeviceConfig
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE
from edgeloop.device import runtime as runtime_module
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.inference import NO_ACTIVE_MODEL, Rejected
from edgeloop.device.model_manager import INDEX_FILE, STAGING_PREFIX, KeptVersion, ModelStore, default_store_dir
from edgeloop.device.onnx_model import LoadedModel
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.uplink import MemoryUplink

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory

THING = "dev-1"
COMPONENT = model_component_name("digits")
WAIT_S = 10.0


def config(version: int | None = 1, **overrides: Any) -> DeviceConfig:
    model = {"modelComponent": COMPONENT, "modelComponentVersion": f"{version}.0.0"} if version else {}
    settings = {"batchMax": 8, "probationSeconds": 60.0, "probationMinRequests": 8, "probationMaxErrorRate": 0.25}
    return DeviceConfig(**{**settings, **model, **overrides})


@dataclass
class Device:
    runtime: DeviceRuntime
    clock: FakeClock
    store: ModelStore


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "work" / "models"


@pytest.fixture
def make_device(model_root: Path, store_dir: Path) -> Callable[..., Device]:
    def make(cfg: DeviceConfig | None = None) -> Device:
        clock = FakeClock()
        runtime = DeviceRuntime(
            thing_name=THING,
            buffer=MemoryBuffer(THING),
            uplink=MemoryUplink(),
            clock=clock,
            model_root=model_root,
            config=cfg or config(),
            store_dir=store_dir,
        )
        return Device(runtime, clock, ModelStore(store_dir))

    return make


@pytest.fixture
def broken_versions(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Model versions whose inference raises from now on (after their self-test passed)."""
    broken: set[int] = set()
    real_predict = LoadedModel.predict

    def predict(self: LoadedModel, batch: np.ndarray, run_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.version in broken:
            raise ModelFormatError("inference failed: session raised")
        return real_predict(self, batch, run_rows)

    monkeypatch.setattr(LoadedModel, "predict", predict)
    return broken


def requests(model: DigitsModel, n: int) -> list[tuple[str, list[float]]]:
    return [(f"r{i}", model.rows[i % len(model.rows)].tolist()) for i in range(n)]


def served_versions(device: Device, model: DigitsModel, n: int = 8) -> set[int]:
    answers = device.runtime.infer(requests(model, n))
    return {a.model_version for a in answers if isinstance(a, InferenceResult)}


def kept(store: ModelStore) -> list[str]:
    return [k.version for k in store.index().kept]


# --- verification -------------------------------------------------------------------------------


def test_a_signed_model_is_activated_and_kept(
    make_model_dir: ModelDirFactory,
    sign_model_dir: Callable[[Path], Path],
    make_device: Callable[..., Device],
    public_key_pem: str,
    store_dir: Path,
) -> None:
    sign_model_dir(make_model_dir(1))

    dev = make_device(config(modelPublicKey=public_key_pem))

    status = dev.runtime.model_status()
    assert (status.state, status.version, status.component_version, status.signed) == (
        ModelState.ACTIVE,
        1,
        "1.0.0",
        True,
    )
    assert status.detail == f"{COMPONENT} 1.0.0 active (signed)"
    assert status.activated_at == dev.clock.now
    kept_copy = store_dir / COMPONENT / "1.0.0"
    assert sorted(p.name for p in kept_copy.iterdir()) == [MANIFEST_FILE, MANIFEST_SIGNATURE_FILE, "model.onnx"]
    assert kept(dev.store) == ["1.0.0"]


def test_without_a_key_the_model_runs_and_health_says_it_is_unsigned(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device]
) -> None:
    make_model_dir(1)

    dev = make_device()

    health = dev.runtime.health()
    assert health.model_state == ModelState.ACTIVE
    assert "unsigned: no modelPublicKey configured" in health.model_detail
    assert dev.runtime.model_status().signed is False


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda folder: (folder / MANIFEST_SIGNATURE_FILE).unlink(), f"unsigned: no {MANIFEST_SIGNATURE_FILE}"),
        (
            lambda folder: (folder / MANIFEST_FILE).write_text(
                (folder / MANIFEST_FILE).read_text().replace("2026-11-01", "2026-11-02")
            ),
            "does not verify",
        ),
        (lambda folder: (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes() + b"\0"), "sha256"),
    ],
    ids=["missing-signature", "tampered-manifest", "tampered-artifact"],
)
def test_a_tampered_model_is_rejected_and_the_previous_one_keeps_serving(
    make_model_dir: ModelDirFactory,
    sign_model_dir: Callable[[Path], Path],
    make_device: Callable[..., Device],
    digits_model: DigitsModel,
    public_key_pem: str,
    store_dir: Path,
    tamper: Callable[[Path], object],
    reason: str,
) -> None:
    sign_model_dir(make_model_dir(1))
    dev = make_device(config(modelPublicKey=public_key_pem))
    tamper(sign_model_dir(make_model_dir(2)))

    dev.runtime.apply_config(config(2, modelPublicKey=public_key_pem))

    health = dev.runtime.health()
    assert (health.model_state, health.model_version) == (ModelState.REJECTED, 1)
    assert health.model_detail.startswith(f"{COMPONENT} 2.0.0 rejected: ")
    assert reason in health.model_detail
    assert served_versions(dev, digits_model) == {1}
    assert kept(dev.store) == ["1.0.0"]
    assert sorted(p.name for p in (store_dir / COMPONENT).iterdir()) == ["1.0.0"]


def test_a_model_whose_self_test_fails_is_rejected_and_not_kept(
    make_model_dir: ModelDirFactory,
    make_device: Callable[..., Device],
    digits_model: DigitsModel,
    wrong_golden: Any,
) -> None:
    make_model_dir(1)
    dev = make_device()
    make_model_dir(2, edit=wrong_golden)

    dev.runtime.apply_config(config(2))

    status = dev.runtime.model_status()
    assert (status.state, status.version) == (ModelState.REJECTED, 1)
    assert "self-test failed" in status.detail
    assert served_versions(dev, digits_model) == {1}
    assert kept(dev.store) == ["1.0.0"]


def test_health_shows_verifying_while_a_model_loads(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_model_dir(1)
    make_model_dir(2)
    dev = make_device()
    seen: list[tuple[ModelState, str, int | None]] = []
    real_load = runtime_module.load_model

    def watching_load(model_dir: Path, **kwargs: Any) -> LoadedModel:
        health = dev.runtime.health()
        seen.append((health.model_state, health.model_detail, health.model_version))
        return real_load(model_dir, **kwargs)

    monkeypatch.setattr(runtime_module, "load_model", watching_load)

    dev.runtime.apply_config(config(2))

    assert seen == [(ModelState.VERIFYING, f"verifying {COMPONENT} 2.0.0", 1)]
    assert dev.runtime.health().model_state == ModelState.ACTIVE


# --- kept versions ------------------------------------------------------------------------------


def test_pruning_keeps_the_configured_number_of_previous_versions(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], store_dir: Path
) -> None:
    for version in (1, 2, 3, 4):
        make_model_dir(version)
    dev = make_device(config(1, keepModelVersions=2))

    for version in (2, 3, 4):
        dev.runtime.apply_config(config(version, keepModelVersions=2))

    assert kept(dev.store) == ["2.0.0", "3.0.0", "4.0.0"]
    assert sorted(p.name for p in (store_dir / COMPONENT).iterdir()) == ["2.0.0", "3.0.0", "4.0.0"]


def test_going_back_to_a_kept_version_makes_it_the_newest(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device]
) -> None:
    for version in (1, 2, 3):
        make_model_dir(version)
    dev = make_device(config(1, keepModelVersions=1))
    dev.runtime.apply_config(config(2, keepModelVersions=1))

    dev.runtime.apply_config(config(1, keepModelVersions=1))
    dev.runtime.apply_config(config(3, keepModelVersions=1))

    assert kept(dev.store) == ["1.0.0", "3.0.0"]


def test_a_kept_version_loads_after_greengrass_removed_its_artifacts(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel
) -> None:
    shutil.rmtree(make_model_dir(1).parent)  # never unpacked: there is no kept copy either
    make_model_dir(1)
    make_model_dir(2)
    dev = make_device()
    dev.runtime.apply_config(config(2))
    shutil.rmtree(make_model_dir(1))

    dev.runtime.apply_config(config(1))

    assert dev.runtime.model_status().state == ModelState.ACTIVE
    assert served_versions(dev, digits_model) == {1}


def test_a_corrupt_index_is_set_aside_and_the_store_starts_over(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], store_dir: Path
) -> None:
    store_dir.mkdir(parents=True)
    (store_dir / INDEX_FILE).write_text("{not json")
    make_model_dir(1)

    dev = make_device()

    assert kept(dev.store) == ["1.0.0"]
    assert (store_dir / "index.corrupt").read_text() == "{not json"


def test_the_default_store_is_the_inference_components_work_folder(tmp_path: Path) -> None:
    root = tmp_path / "greengrass" / "v2"

    assert default_store_dir(root / "packages" / "artifacts") == root / "work" / INFERENCE_COMPONENT / "models"
    with pytest.raises(ValidationError, match="store_dir"):
        default_store_dir(tmp_path / "models")


def test_staging_leaves_nothing_behind_when_the_folder_is_rejected(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], store_dir: Path
) -> None:
    folder = make_model_dir(1)
    (folder / "model.onnx").write_bytes(b"not onnx")

    dev = make_device()

    assert dev.runtime.model_status().state == ModelState.REJECTED
    assert not any(p.name.startswith(STAGING_PREFIX) for p in (store_dir / COMPONENT).iterdir())


# --- probation and rollback ---------------------------------------------------------------------


@pytest.fixture
def on_probation(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], broken_versions: set[int]
) -> Device:
    """Version 1 served and kept, version 2 just activated and on probation."""
    make_model_dir(1)
    make_model_dir(2)
    dev = make_device()
    dev.runtime.apply_config(config(2))
    assert dev.runtime.model_status().on_probation
    return dev


def test_too_many_inference_failures_roll_back_to_the_previous_version(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel
) -> None:
    broken_versions.add(2)

    answers = on_probation.runtime.infer(requests(digits_model, 8))

    assert all(isinstance(a, Rejected) and "session raised" in a.reason for a in answers)
    status = on_probation.runtime.model_status()
    assert (status.state, status.version, status.rollbacks, status.on_probation) == (
        ModelState.ROLLED_BACK,
        1,
        1,
        False,
    )
    assert status.detail.startswith(f"{COMPONENT} 2.0.0 rolled back: 8 of 8 requests failed")
    assert status.detail.endswith(f"serving {COMPONENT} 1.0.0 from the local store")
    assert served_versions(on_probation, digits_model) == {1}
    assert on_probation.runtime.health().model_state == ModelState.ROLLED_BACK
    assert kept(on_probation.store) == ["1.0.0"]


def test_rollback_works_after_the_old_artifacts_were_deleted(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel, model_root: Path
) -> None:
    shutil.rmtree(model_root / COMPONENT / "1.0.0")
    broken_versions.add(2)

    on_probation.runtime.infer(requests(digits_model, 8))

    assert (on_probation.runtime.model_status().state, served_versions(on_probation, digits_model)) == (
        ModelState.ROLLED_BACK,
        {1},
    )


def test_a_rolled_back_version_stays_out_until_the_configuration_names_another(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel, make_model_dir: ModelDirFactory
) -> None:
    broken_versions.add(2)
    on_probation.runtime.infer(requests(digits_model, 8))
    broken_versions.clear()

    on_probation.runtime.apply_config(config(2, batchMax=4))
    on_probation.runtime.apply_config(config(2, intraOpThreads=2))
    assert on_probation.runtime.model_status().detail.startswith(f"{COMPONENT} 2.0.0 stays rolled back: 8 of 8")
    assert served_versions(on_probation, digits_model) == {1}

    make_model_dir(3)
    on_probation.runtime.apply_config(config(3))
    on_probation.runtime.apply_config(config(2))
    assert (on_probation.runtime.model_status().state, served_versions(on_probation, digits_model)) == (
        ModelState.ACTIVE,
        {2},
    )


def test_a_restart_does_not_bring_a_rolled_back_version_back(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel, make_device: Callable[..., Device]
) -> None:
    broken_versions.add(2)
    on_probation.runtime.infer(requests(digits_model, 8))
    broken_versions.clear()

    restarted = make_device(config(2))

    status = restarted.runtime.model_status()
    assert (status.state, status.version) == (ModelState.ROLLED_BACK, 1)
    assert served_versions(restarted, digits_model) == {1}


def test_without_a_kept_version_a_failed_probation_leaves_no_model(
    make_model_dir: ModelDirFactory,
    make_device: Callable[..., Device],
    broken_versions: set[int],
    digits_model: DigitsModel,
) -> None:
    make_model_dir(1)
    dev = make_device()
    broken_versions.add(1)

    dev.runtime.infer(requests(digits_model, 8))

    status = dev.runtime.model_status()
    assert (status.state, status.version) == (ModelState.ROLLED_BACK, None)
    assert status.detail.endswith("no previous version kept")
    assert dev.runtime.infer(requests(digits_model, 1)) == [Rejected("r0", NO_ACTIVE_MODEL)]


def test_rejected_inputs_do_not_count_against_a_model_on_probation(
    on_probation: Device, digits_model: DigitsModel
) -> None:
    bad = [(f"bad{i}", [float("nan")] * 64) for i in range(40)]

    on_probation.runtime.infer(bad)

    status = on_probation.runtime.model_status()
    assert (status.state, status.version, status.on_probation) == (ModelState.ACTIVE, 2, True)


def test_a_few_errors_below_the_rate_keep_the_model(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel
) -> None:
    on_probation.runtime.infer(requests(digits_model, 24))
    broken_versions.add(2)
    on_probation.runtime.infer(requests(digits_model, 8))

    assert on_probation.runtime.model_status().state == ModelState.ACTIVE


def test_after_the_window_a_model_is_trusted(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel
) -> None:
    on_probation.clock.now += 60.0
    assert not on_probation.runtime.model_status().on_probation
    broken_versions.add(2)

    on_probation.runtime.infer(requests(digits_model, 16))

    status = on_probation.runtime.model_status()
    assert (status.state, status.version, status.rollbacks) == (ModelState.ACTIVE, 2, 0)


def test_errors_of_a_batch_started_on_the_old_model_do_not_count_against_the_new_one(on_probation: Device) -> None:
    old = on_probation.store.path(KeptVersion(COMPONENT, "1.0.0"))
    assert old.is_dir()
    active = on_probation.runtime._active_model()
    assert active is not None
    stale = replace(active, version=1)

    on_probation.runtime._models.observe(stale, requests=100, errors=100)

    assert on_probation.runtime.model_status().state == ModelState.ACTIVE


def test_a_rollback_under_load_answers_each_batch_with_one_model(
    on_probation: Device, broken_versions: set[int], digits_model: DigitsModel
) -> None:
    rolled_back = threading.Event()
    batches: list[list[InferenceResult | Rejected]] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            answers = on_probation.runtime.infer(requests(digits_model, 8))
            batches.append(answers)
            if any(isinstance(a, InferenceResult) and a.model_version == 1 for a in answers):
                rolled_back.set()

    worker = threading.Thread(target=stream)
    worker.start()
    broken_versions.add(2)
    assert rolled_back.wait(WAIT_S)
    stop.set()
    worker.join(WAIT_S)

    kinds = []
    for answers in batches:
        versions = {a.model_version if isinstance(a, InferenceResult) else None for a in answers}
        assert len(versions) == 1
        kinds.append(versions.pop())
    assert kinds[-1] == 1
    assert set(kinds[kinds.index(1) :]) == {1}
    assert on_probation.runtime.model_status().rollbacks == 1


def test_a_long_rejection_reason_is_clipped_to_the_health_budget(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_load(model_dir: Path, **kwargs: Any) -> LoadedModel:
        raise ModelFormatError("é" * 5_000)

    make_model_dir(1)
    monkeypatch.setattr(runtime_module, "load_model", failing_load)

    dev = make_device()

    health = dev.runtime.health()
    assert health.model_state == ModelState.REJECTED
    assert health.model_detail.startswith(f"{COMPONENT} 1.0.0 rejected: éé")
    assert health.model_detail.endswith("...")


def test_configuring_a_key_stops_an_unsigned_model(
    make_model_dir: ModelDirFactory,
    make_device: Callable[..., Device],
    digits_model: DigitsModel,
    public_key_pem: str,
) -> None:
    make_model_dir(1)
    dev = make_device()

    dev.runtime.apply_config(config(modelPublicKey=public_key_pem))

    status = dev.runtime.model_status()
    assert (status.state, status.version) == (ModelState.REJECTED, None)
    assert f"rejected: unsigned: no {MANIFEST_SIGNATURE_FILE}" in status.detail
    assert dev.runtime.infer(requests(digits_model, 1)) == [Rejected("r0", NO_ACTIVE_MODEL)]
    assert kept(dev.store) == ["1.0.0"]


def test_a_key_arriving_with_a_new_unsigned_version_stops_the_unsigned_current_one_too(
    make_model_dir: ModelDirFactory,
    make_device: Callable[..., Device],
    digits_model: DigitsModel,
    public_key_pem: str,
) -> None:
    make_model_dir(1)
    make_model_dir(2)
    dev = make_device()  # v1, unsigned, active

    dev.runtime.apply_config(config(2, modelPublicKey=public_key_pem))  # key and an unsigned v2 together

    status = dev.runtime.model_status()
    assert status.state is ModelState.REJECTED
    assert status.version is None
    assert dev.runtime.infer(requests(digits_model, 1)) == [Rejected("r0", NO_ACTIVE_MODEL)]


def test_a_kept_version_that_no_longer_verifies_is_skipped_for_an_older_one(
    make_model_dir: ModelDirFactory, make_device: Callable[..., Device], digits_model: DigitsModel, store_dir: Path
) -> None:
    for version in (1, 2, 3):
        make_model_dir(version)
    dev = make_device()
    dev.runtime.apply_config(config(2))
    (store_dir / COMPONENT / "2.0.0" / "model.onnx").write_bytes(b"bit rot")
    (make_model_dir(3) / "model.onnx").write_bytes(b"tampered")

    restarted = make_device(config(3))

    status = restarted.runtime.model_status()
    assert (status.state, status.version) == (ModelState.REJECTED, 1)
    assert served_versions(restarted, digits_model) == {1}


def test_reloading_for_new_session_settings_keeps_the_probation_running(on_probation: Device) -> None:
    on_probation.clock.now += 30.0
    on_probation.runtime.apply_config(config(2, intraOpThreads=2))
    assert on_probation.runtime.model_status().on_probation

    on_probation.clock.now += 30.0
    assert not on_probation.runtime.model_status().on_probation
