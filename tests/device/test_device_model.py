"""The model loader refuses anything it cannot trust and screens inputs row by row."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from edgeloop.core.errors import IntegrityError, ManifestError, ModelFormatError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE, Artifact, ModelManifest, OutputSchema
from edgeloop.device.model import LoadedModel, load_model

if TYPE_CHECKING:
    from conftest import DigitsModel, ModelDirFactory


def artifact_path(folder: Path) -> Path:
    return folder / ModelManifest.from_json((folder / MANIFEST_FILE).read_text()).selected


@pytest.fixture
def model(make_model_dir: ModelDirFactory) -> LoadedModel:
    return load_model(make_model_dir(3), version=3)


def test_loads_a_verified_model_that_predicts_its_golden_labels(model: LoadedModel, digits_model: DigitsModel) -> None:
    labels, confidence = model.predict(digits_model.rows)

    assert model.version == 3
    assert model.manifest.model_name == "digits"
    assert labels.tolist() == digits_model.labels.tolist()
    assert ((confidence > 0) & (confidence <= 1)).all()


def test_predict_on_an_empty_batch_returns_empty_arrays(model: LoadedModel) -> None:
    labels, confidence = model.predict(np.empty((0, 64), dtype=np.float32))

    assert labels.shape == (0,)
    assert confidence.shape == (0,)


def test_sha_mismatch_names_expected_and_actual(make_model_dir: ModelDirFactory, digits_model: DigitsModel) -> None:
    folder = make_model_dir()
    tampered = bytearray(digits_model.onnx)
    tampered[-1] ^= 0xFF
    artifact_path(folder).write_bytes(bytes(tampered))
    expected = hashlib.sha256(digits_model.onnx).hexdigest()
    actual = hashlib.sha256(bytes(tampered)).hexdigest()

    with pytest.raises(IntegrityError, match=f"sha256 is {actual}, manifest expects {expected}"):
        load_model(folder, version=1)


def test_size_mismatch_is_an_integrity_error(make_model_dir: ModelDirFactory) -> None:
    def wrong_size(manifest: ModelManifest) -> ModelManifest:
        artifact = replace(manifest.selected_artifact, bytes=manifest.selected_artifact.bytes + 1)
        return replace(manifest, artifacts=(artifact,))

    with pytest.raises(IntegrityError, match="bytes, manifest expects"):
        load_model(make_model_dir(edit=wrong_size), version=1)


def test_a_file_that_is_not_onnx_is_a_format_error(make_model_dir: ModelDirFactory) -> None:
    folder = make_model_dir(artifact=b"this is not an onnx model")

    with pytest.raises(ModelFormatError, match="is not a loadable ONNX model"):
        load_model(folder, version=1)


def test_golden_labels_the_model_does_not_reproduce_fail_the_self_test(
    make_model_dir: ModelDirFactory, wrong_golden: Callable[[ModelManifest], ModelManifest]
) -> None:
    with pytest.raises(ModelFormatError, match="self-test failed: 8 of 8 golden rows differ"):
        load_model(make_model_dir(edit=wrong_golden), version=1)


def test_an_input_name_the_model_does_not_have_is_refused(make_model_dir: ModelDirFactory) -> None:
    def rename(manifest: ModelManifest) -> ModelManifest:
        return replace(manifest, input=replace(manifest.input, name="pixels"))

    with pytest.raises(ModelFormatError, match="declares only 'pixels'"):
        load_model(make_model_dir(edit=rename), version=1)


def test_a_probabilities_output_the_model_does_not_have_is_refused(make_model_dir: ModelDirFactory) -> None:
    def rename(manifest: ModelManifest) -> ModelManifest:
        return replace(manifest, output=OutputSchema(probabilities="scores"))

    with pytest.raises(ModelFormatError, match="no 'scores'"):
        load_model(make_model_dir(edit=rename), version=1)


def test_a_feature_count_the_model_does_not_take_is_refused(make_model_dir: ModelDirFactory) -> None:
    def narrow(manifest: ModelManifest) -> ModelManifest:
        return replace(
            manifest,
            input=replace(manifest.input, features=manifest.input.features[:10]),
            golden=replace(manifest.golden, inputs=(manifest.golden.inputs[0][:10],), labels=(0,)),
        )

    with pytest.raises(ModelFormatError, match="takes 64 features, manifest lists 10"):
        load_model(make_model_dir(edit=narrow), version=1)


def test_missing_manifest_and_missing_artifact_are_not_found(make_model_dir: ModelDirFactory) -> None:
    folder = make_model_dir()
    artifact_path(folder).unlink()
    with pytest.raises(NotFoundError, match=r"model artifact .* is missing"):
        load_model(folder, version=1)

    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(NotFoundError, match=f"no {MANIFEST_FILE}"):
        load_model(folder, version=1)


def test_a_broken_manifest_is_a_manifest_error(make_model_dir: ModelDirFactory) -> None:
    folder = make_model_dir()
    (folder / MANIFEST_FILE).write_text("{not json")

    with pytest.raises(ManifestError, match="not valid JSON"):
        load_model(folder, version=1)


def test_the_selected_artifact_is_the_one_loaded(make_model_dir: ModelDirFactory, digits_model: DigitsModel) -> None:
    def two_artifacts(manifest: ModelManifest) -> ModelManifest:
        decoy = Artifact(file="decoy.onnx", sha256="1" * 64, bytes=1, precision="int8-dynamic")
        return replace(manifest, artifacts=(decoy, manifest.selected_artifact))

    model = load_model(make_model_dir(edit=two_artifacts), version=1)

    assert model.manifest.selected_artifact.precision == "fp32"


VALID = [8.0] * 64


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ([8.0] * 63, "expected 64 features, got 63"),
        ([8.0] * 65, "expected 64 features, got 65"),
        ([[8.0] * 64], "features must be a flat list of numbers"),
        (["8"] * 64, "features must all be numbers"),
        ([True] * 64, "features must all be numbers"),
        ([None] * 64, "features must all be numbers"),
        ([8.0] * 63 + [math.nan], "feature 'pixel_63' is NaN or infinite"),
        ([math.inf] + [8.0] * 63, "feature 'pixel_0' is NaN or infinite"),
        ([8.0] * 5 + [-0.5] + [8.0] * 58, r"feature 'pixel_5' = -0.5 is outside \[0.0, 16.0\]"),
        ([8.0] * 9 + [17] + [8.0] * 54, r"feature 'pixel_9' = 17.0 is outside \[0.0, 16.0\]"),
    ],
)
def test_check_input_names_the_reason(model: LoadedModel, row: object, reason: str) -> None:
    found = model.check_input(row)

    assert found is not None
    assert re.search(reason, found), found


def test_check_input_accepts_a_valid_row(model: LoadedModel) -> None:
    assert model.check_input(VALID) is None
    assert model.check_input([0] * 64) is None
    assert model.check_input([16.0] * 64) is None


def test_screen_rejects_bad_rows_without_poisoning_the_batch(model: LoadedModel, digits_model: DigitsModel) -> None:
    good = digits_model.rows[:4].tolist()
    rows = [good[0], [8.0] * 63 + [math.nan], good[1], [99.0] * 64, good[2], good[3]]

    screened = model.screen(rows)

    assert screened.accepted == (0, 2, 4, 5)
    assert set(screened.rejected) == {1, 3}
    assert "NaN" in screened.rejected[1]
    assert "outside" in screened.rejected[3]
    assert screened.matrix.dtype == np.float32
    np.testing.assert_array_equal(screened.matrix, np.asarray(good, dtype=np.float32))


def test_screen_handles_ragged_and_non_numeric_rows(model: LoadedModel) -> None:
    rows: list[object] = [VALID, [1.0, 2.0], ["x"] * 64, VALID]

    screened = model.screen(rows)

    assert screened.accepted == (0, 3)
    assert screened.rejected == {1: "expected 64 features, got 2", 2: screened.rejected[2]}
    assert "numbers" in screened.rejected[2]
    assert screened.matrix.shape == (2, 64)


def test_screen_of_only_bad_rows_gives_an_empty_matrix(model: LoadedModel) -> None:
    screened = model.screen([[1.0], ["x"]])

    assert screened.accepted == ()
    assert screened.matrix.shape == (0, 64)


def test_screen_accepts_a_numpy_batch(model: LoadedModel, digits_model: DigitsModel) -> None:
    screened = model.screen(digits_model.rows)

    assert len(screened.accepted) == len(digits_model.rows)
    assert screened.rejected == {}
