"""The simulated bad candidates, each checked against the real device verifier, self-test and engine."""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgeloop.cloud.artifacts import MemoryArtifactStore
from edgeloop.core.errors import IntegrityError, ModelFormatError, UsageError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE
from edgeloop.device.onnx_model import LoadedModel, load_model, verify_artifact
from edgeloop.device.signing import sign_manifest, verify_manifest_signature
from edgeloop.local import candidates
from edgeloop.local.candidates import EXPECTED_STOPS
from edgeloop.local.demo_options import BAD_KINDS, DemoOptions
from edgeloop.local.sim.scenario import BadKind
from edgeloop.training import TrainingConfig, TrainingResult, train
from edgeloop.training import model as mdl


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    work = tmp_path_factory.mktemp("honest")
    return train(TrainingConfig(model_dir=work / "model", model_name="digits", seed=0))


@pytest.fixture
def model_dir(trained: TrainingResult, tmp_path: Path) -> Path:
    """A fresh copy of the honest model folder, for one candidate builder to change."""
    return Path(shutil.copytree(trained.manifest_path.parent, tmp_path / "model"))


def _batch1_ms(model: LoadedModel, rows: np.ndarray, calls: int = 5) -> float:
    """Median wall time of the device engine's batch-1 path over a few rows."""
    times = []
    for row in rows[:calls]:
        feed = model.screen_row(np.asarray(row, dtype=np.float64))
        assert feed is not None
        started = time.perf_counter()
        model.predict_row(feed)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def test_the_slow_candidate_is_much_slower_on_the_device_and_exactly_as_accurate(
    trained: TrainingResult, model_dir: Path
) -> None:
    honest = load_model(trained.manifest_path.parent, version=1)
    manifest = candidates.slow_down(model_dir, trained.x_holdout)
    slow = load_model(model_dir, version=2)  # the real loader: digest, session, self-test and warm-up all pass
    assert _batch1_ms(slow, trained.x_holdout) >= 10 * _batch1_ms(honest, trained.x_holdout)
    honest_labels, honest_conf = honest.predict(trained.x_holdout)
    slow_labels, slow_conf = slow.predict(trained.x_holdout)
    assert np.array_equal(honest_labels, slow_labels)
    assert np.array_equal(honest_conf, slow_conf)
    precision = manifest.selected_artifact.precision
    assert manifest.holdout_accuracy == trained.manifest.holdout_accuracy
    assert manifest.golden == trained.manifest.golden
    before = trained.manifest.metrics[precision]["latency_us_p50"]
    assert manifest.metrics[precision]["latency_us_p50"] >= 10 * before, "the manifest says honestly it is slow"
    assert manifest.selected_artifact.bytes == (model_dir / manifest.selected).stat().st_size


def test_the_slow_subgraph_leaves_every_probability_bit_for_bit(trained: TrainingResult) -> None:
    model = trained.model_path.read_bytes()
    slow = candidates.heavy_subgraph(model, layers=2, rows=4)
    _, before = mdl.predict_onnx(model, trained.x_holdout)
    _, after = mdl.predict_onnx(slow, trained.x_holdout)
    assert np.array_equal(before, after)
    mdl.check_signature(slow)


def _signed(model_dir: Path) -> str:
    """Sign the folder's manifest with a fresh P-256 key (the KMS stand-in) and return the public key PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    (model_dir / MANIFEST_SIGNATURE_FILE).write_bytes(sign_manifest((model_dir / MANIFEST_FILE).read_bytes(), key))
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def test_a_tampered_artifact_loads_but_fails_device_verification(trained: TrainingResult, model_dir: Path) -> None:
    public_key = _signed(model_dir)
    manifest = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    store, uri = MemoryArtifactStore(), f"s3://artifacts/models/digits/{manifest.selected}"
    store.put(uri, (model_dir / manifest.selected).read_bytes())
    tampered = candidates.tamper(store, uri)
    assert store.get(uri) == tampered
    (model_dir / manifest.selected).write_bytes(tampered)
    _, honest = mdl.predict_onnx(trained.model_path.read_bytes(), trained.x_holdout)
    _, answers = mdl.predict_onnx(tampered, trained.x_holdout)
    assert not np.array_equal(honest, answers), "a working model with other weights, not random bytes"
    verify_manifest_signature(model_dir, public_key)  # the manifest was not touched: its signature holds
    with pytest.raises(IntegrityError, match="sha256 is") as caught:
        load_model(model_dir, version=2)
    assert candidates.verification_failure(str(caught.value)) == "sha256 mismatch"


def test_the_selftest_candidate_passes_digest_and_signature_but_fails_the_self_test(model_dir: Path) -> None:
    manifest = candidates.wrong_golden(model_dir)
    public_key = _signed(model_dir)  # the pipeline signs the buggy manifest as it signs any other
    verify_manifest_signature(model_dir, public_key)
    verify_artifact(model_dir / manifest.selected, manifest)
    with pytest.raises(ModelFormatError, match="self-test failed") as caught:
        load_model(model_dir, version=2)
    assert candidates.verification_failure(str(caught.value)) == "self-test failed"


def test_the_inaccurate_candidate_trains_on_the_same_rows_with_permuted_labels(tmp_path: Path) -> None:
    config = candidates.shuffled_digits(tmp_path / "train", seed=0)
    with np.load(config["train_dir"] / "shuffled.npz") as data:
        labels = data["label"]
    from sklearn.datasets import load_digits

    truth = load_digits().target
    assert sorted(labels.tolist()) == sorted(truth.tolist())
    assert (labels == truth).mean() < 0.2
    assert config["max_iter"] == candidates.INACCURATE_MAX_ITER


@pytest.mark.parametrize(
    ("reason", "failures", "expected"),
    [
        ("ring canary failed: confidence_drop 0.65 > 0.05", [], "canary gate: confidence_drop 0.65 > 0.05"),
        ("ring broad failed: p99_latency_ratio 50 > 5", [], "broad gate: p99_latency_ratio 50 > 5"),
        (
            "ring canary failed: job_failure_rate 1 > 0.1",
            ["x 4.0.0 rejected: model.onnx: sha256 is ab, manifest expects cd; serving x 1.0.0"],
            "device verification: sha256 mismatch",
        ),
        (
            "ring canary failed: job_failure_rate 1 > 0.1",
            ["rejected: self-test failed: 8 of 8 golden rows differ", "rejected: manifest.sig does not verify it"],
            "device verification: self-test failed, signature invalid",
        ),
        ("ring canary failed: job_failure_rate 1 > 0.1", ["disk full"], "device verification: disk full"),
    ],
)
def test_where_a_reverted_version_was_stopped(reason: str, failures: list[str], expected: str) -> None:
    assert candidates.stopped_by(reason, failures) == expected


def test_every_kind_has_a_place_to_be_stopped_and_a_description() -> None:
    assert set(EXPECTED_STOPS) == set(candidates.DESCRIPTIONS) == set(BAD_KINDS)
    assert [k for k in BAD_KINDS if EXPECTED_STOPS[k].on_device] == [BadKind.TAMPERED, BadKind.SELFTEST]


def test_demo_options_take_kinds_by_name_and_refuse_unknown_ones(tmp_path: Path) -> None:
    assert DemoOptions(out=tmp_path, inject_bad_model=("slow", "tampered")).inject_bad_model == (
        BadKind.SLOW,
        BadKind.TAMPERED,
    )
    with pytest.raises(UsageError, match="unknown kind 'fast'; expected one of inaccurate, slow, tampered, selftest"):
        DemoOptions(out=tmp_path, inject_bad_model=("fast",))
