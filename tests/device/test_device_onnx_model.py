"""The model loader refuses anything it cannot trust and screens inputs row by row."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import pytest
from support import uniform_baseline

from edgeloop.core.errors import ConfigError, IntegrityError, ManifestError, ModelFormatError, NotFoundError
from edgeloop.core.manifest import MANIFEST_FILE, Artifact, ModelManifest, OutputSchema
from edgeloop.core.settings import GRAPH_OPTIMIZATIONS, DeviceConfig
from edgeloop.device.input_screen import InputLayout
from edgeloop.device.onnx_model import LoadedModel, load_model
from edgeloop.device.onnx_session import GRAPH_OPTIMIZATION_LEVELS, SessionPool, SessionSettings

if TYPE_CHECKING:
    from conftest import DigitsModel, ForeignDirFactory, ForeignModel, ModelDirFactory


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


def test_a_session_pool_shares_one_session_per_verified_artifact_and_still_verifies_each_copy(
    make_model_dir: ModelDirFactory, digits_model: DigitsModel, wrong_golden: Callable[[ModelManifest], ModelManifest]
) -> None:
    pool = SessionPool()
    first = load_model(make_model_dir(1), version=1, pool=pool)
    second = load_model(make_model_dir(1), version=1, pool=pool)
    assert second.session is first.session
    assert len(pool) == 1
    tampered_folder = make_model_dir(1)
    tampered = bytearray(digits_model.onnx)
    tampered[-1] ^= 0xFF
    artifact_path(tampered_folder).write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError, match="sha256 is"):
        load_model(tampered_folder, version=1, pool=pool)
    with pytest.raises(ModelFormatError, match="self-test failed"):
        load_model(make_model_dir(1, edit=wrong_golden), version=1, pool=pool)


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
            baseline=replace(manifest.baseline, features=manifest.baseline.features[:10]),
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


# --- session tuning --------------------------------------------------------------------------------


def test_session_settings_come_from_the_component_configuration() -> None:
    config = DeviceConfig(intraOpThreads=2, interOpThreads=3, graphOptimization="extended")

    assert SessionSettings.from_config(config) == SessionSettings(2, 3, "extended")


@pytest.mark.parametrize("level", GRAPH_OPTIMIZATIONS)
def test_every_graph_optimization_level_loads_and_gives_the_same_labels(
    make_model_dir: ModelDirFactory, digits_model: DigitsModel, level: str
) -> None:
    model = load_model(make_model_dir(), version=1, settings=SessionSettings(2, 2, level))

    options = model.session.get_session_options()
    assert options.graph_optimization_level == GRAPH_OPTIMIZATION_LEVELS[level]
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 2)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert model.predict(digits_model.rows)[0].tolist() == digits_model.labels.tolist()


def test_thread_counts_can_also_be_given_one_by_one(make_model_dir: ModelDirFactory) -> None:
    model = load_model(make_model_dir(), version=1, intra_op_threads=3, graph_optimization="basic")

    options = model.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


def test_an_unknown_graph_optimization_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'fastest'; expected one of"):
        SessionSettings(graph_optimization="fastest")


def test_loading_warms_the_session_up_at_one_row_and_a_full_batch(
    make_model_dir: ModelDirFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_predict = LoadedModel.predict

    def spy(self: LoadedModel, batch: np.ndarray, run_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        seen.append(batch.shape[0])
        return real_predict(self, batch, run_rows)

    monkeypatch.setattr(LoadedModel, "predict", spy)

    load_model(make_model_dir(), version=1)

    assert seen == [8, 1, 32]


# --- any ONNX model with a manifest ---------------------------------------------------------------


def test_an_image_model_gets_flat_feature_rows_reshaped_to_its_input(
    make_foreign_dir: ForeignDirFactory, image_model: ForeignModel
) -> None:
    image = image_model

    model = load_model(make_foreign_dir(image), version=1)
    labels, confidence = model.predict(model.screen(image.rows.tolist()).matrix)

    assert model.layout == InputLayout(row_shape=(1, 8, 8))
    assert labels.tolist() == image.labels.tolist()
    assert ((confidence > 0) & (confidence <= 1)).all()


def test_a_model_with_a_fixed_batch_size_is_run_in_chunks_of_that_size(
    make_foreign_dir: ForeignDirFactory, fixed_batch_image_model: ForeignModel
) -> None:
    image = fixed_batch_image_model

    model = load_model(make_foreign_dir(image), version=1)

    assert model.layout == InputLayout(row_shape=(1, 8, 8), fixed_batch=1)
    assert model.predict(image.rows[:5])[0].tolist() == image.labels[:5].tolist()
    assert model.predict(image.rows[:1])[0].tolist() == image.labels[:1].tolist()


def test_a_model_taking_doubles_is_fed_doubles(
    make_foreign_dir: ForeignDirFactory, iris_double_model: ForeignModel
) -> None:
    iris = iris_double_model

    model = load_model(make_foreign_dir(iris), version=1)
    screened = model.screen(iris.rows.tolist())

    assert model.layout == InputLayout(row_shape=(4,), dtype=np.float64)
    assert screened.matrix.dtype == np.float64
    assert model.predict(screened.matrix)[0].tolist() == iris.labels.tolist()


def test_a_zipmap_output_is_refused_with_the_fix(
    make_foreign_dir: ForeignDirFactory, iris_zipmap_model: ForeignModel
) -> None:
    folder = make_foreign_dir(iris_zipmap_model)

    with pytest.raises(ModelFormatError, match=r"'output_probability' is seq\(map.*not a tensor.*zipmap"):
        load_model(folder, version=1)


def with_features(model: ForeignModel, count: int) -> ModelManifest:
    manifest: ModelManifest = model.manifest
    rows = tuple(tuple([1.0] * count) for _ in manifest.golden.inputs)
    features = tuple(f"f{i}" for i in range(count))
    return replace(
        manifest,
        input=replace(manifest.input, features=features),
        golden=replace(manifest.golden, inputs=rows),
        baseline=uniform_baseline(features, manifest.input.minimum, manifest.input.maximum),
    )


def test_an_image_input_that_cannot_hold_the_features_is_refused(
    make_foreign_dir: ForeignDirFactory, three_channel_image_model: ForeignModel
) -> None:
    image = three_channel_image_model
    folder = make_foreign_dir(image, manifest=with_features(image, 64))

    with pytest.raises(ModelFormatError, match=r"takes 192 features, manifest lists 64 \(shape \['N', 3, 8, 8\]\)"):
        load_model(folder, version=1)


def test_a_model_with_more_than_one_input_is_refused(
    make_foreign_dir: ForeignDirFactory, make_foreign_manifest: Callable[..., ModelManifest]
) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["probs"])],
        "two-inputs",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2]) for n in ("a", "b")],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])],
    )
    onnx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()
    rows, labels = np.ones((4, 2)), np.ones(4, dtype=np.int64)
    manifest = make_foreign_manifest("pair", onnx, input_name="a", output="probs", rows=rows, labels=labels, classes=2)

    with pytest.raises(ModelFormatError, match=r"model inputs are \['a', 'b'\], manifest declares only 'a'"):
        load_model(make_foreign_dir(onnx=onnx, manifest=manifest), version=1)


def test_a_model_with_two_free_feature_dimensions_is_refused(
    make_foreign_dir: ForeignDirFactory, make_foreign_manifest: Callable[..., ModelManifest]
) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMax", ["a"], ["probs"], axes=[1], keepdims=0)],
        "free-dims",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", "H", "W"])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", "W"])],
    )
    onnx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=8).SerializeToString()
    rows, labels = np.ones((4, 4)), np.zeros(4, dtype=np.int64)
    manifest = make_foreign_manifest("free", onnx, input_name="a", output="probs", rows=rows, labels=labels, classes=2)

    with pytest.raises(ModelFormatError, match=r"2 free dimensions \['N', 'H', 'W'\]; at most one"):
        load_model(make_foreign_dir(onnx=onnx, manifest=manifest), version=1)


def test_a_classes_count_that_differs_from_the_labels_is_refused(
    make_foreign_dir: ForeignDirFactory, iris_model: ForeignModel
) -> None:
    iris = iris_model
    manifest = replace(
        iris.manifest, labels=("setosa", "versicolor"), golden=replace(iris.manifest.golden, labels=(0,) * 4)
    )

    with pytest.raises(ModelFormatError, match="has 3 classes, manifest lists 2 labels"):
        load_model(make_foreign_dir(iris, manifest=manifest), version=1)


def test_screen_accepts_integer_rows_and_numpy_rows(model: LoadedModel, digits_model: DigitsModel) -> None:
    screened = model.screen([[0] * 64, digits_model.rows[0], [16] * 64])

    assert screened.accepted == (0, 1, 2)
    assert screened.matrix.dtype == np.float32
    assert screened.matrix.flags.c_contiguous


@pytest.mark.parametrize(
    "row",
    [
        [8.0] * 63,
        ["8"] * 64,
        [True] * 64,
        [None] * 64,
        [8.0] * 63 + [math.nan],
        [math.nan] + [8.0] * 63,
        [math.inf] + [8.0] * 63,
        [8.0] * 5 + [-0.5] + [8.0] * 58,
        [8.0] * 9 + [17] + [8.0] * 54,
        [8.0] * 63 + [10**400],
    ],
    ids=["short", "text", "bools", "nulls", "nan-last", "nan-first", "inf", "below", "above", "huge-int"],
)
def test_a_lone_bad_row_is_rejected_with_the_row_check_reason(model: LoadedModel, row: list[object]) -> None:
    screened = model.screen([row])

    assert screened.accepted == ()
    assert screened.rejected == {0: model.check_input(row)}
    assert screened.matrix.shape == (0, 64)


@pytest.mark.parametrize("row", [VALID, [0] * 64, [16.0] * 64, [0, 16.0] * 32], ids=["floats", "ints", "top", "mixed"])
def test_a_lone_good_row_is_fed_as_the_full_screen_would(model: LoadedModel, row: list[float]) -> None:
    screened = model.screen([row])
    full = model.screen([row, row])

    assert (screened.accepted, dict(screened.rejected)) == ((0,), {})
    assert screened.matrix.dtype == full.matrix.dtype == np.float32
    assert screened.matrix.flags.c_contiguous
    assert np.array_equal(screened.matrix, full.matrix[:1])


def test_the_single_row_fast_path_agrees_with_the_batch_screen_on_odd_rows(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    with_bool = digits_model.rows[0].tolist()
    with_bool[5] = True  # decoders refuse booleans; a direct caller's list must be judged as in a batch
    out_of_range = digits_model.rows[0].tolist()
    out_of_range[3] = 1e9
    for row in (with_bool, out_of_range):
        single = model.screen([row])
        batched = model.screen([row, digits_model.rows[1].tolist()])
        assert (0 in single.accepted) == (0 in batched.accepted)
        assert single.rejected.get(0) == batched.rejected.get(0)


# --- the batch-1 run: bound once per thread after a plain run, answering exactly as session.run ---


def _session_answer(model: LoadedModel, feed: np.ndarray) -> list[float]:
    (probabilities,) = model.session.run([model.manifest.output.probabilities], {model.manifest.input.name: feed})
    answer: list[float] = probabilities[0].tolist()
    return answer


def _feeds(model: LoadedModel, rows: np.ndarray) -> list[np.ndarray]:
    feeds = [model.screen_row(row.astype(np.float64)) for row in rows]
    assert all(feed is not None for feed in feeds)
    return [feed for feed in feeds if feed is not None]


def test_batch1_runs_after_the_first_go_through_the_binding_and_answer_as_session_run(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    plain_runs = []
    real_run = model._run_session

    def counted(names: list[str], feed: dict[str, np.ndarray], options: object) -> list[np.ndarray]:
        plain_runs.append(1)
        return real_run(names, feed, options)

    object.__setattr__(model, "_run_session", counted)
    feeds = _feeds(model, digits_model.rows[:20])

    answers = [model.predict_row(feed) for feed in feeds]

    assert len(plain_runs) == 1  # the first run shows the output's shape and type; the binding takes the rest
    for feed, (index, confidence) in zip(feeds, answers, strict=True):
        expected = _session_answer(model, feed)
        assert (index, confidence) == (expected.index(max(expected)), max(expected))
    assert [index for index, _ in answers] == digits_model.labels[:20].tolist()


def _wrong_answers_at_once(answer: Callable[[int], object], expected: list[object], calls: int) -> list[int]:
    """Three threads asking at once, each starting at another case: the cases whose answer was not expected."""
    start = threading.Barrier(3)
    wrong: list[int] = []

    def run(offset: int) -> None:
        start.wait()
        for i in range(calls):
            k = (i + offset) % len(expected)
            if answer(k) != expected[k]:
                wrong.append(k)

    threads = [threading.Thread(target=run, args=(offset,)) for offset in (0, 13, 27)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return wrong


def test_threads_running_batch1_at_once_each_get_their_own_rows_answers(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    feeds = _feeds(model, digits_model.rows[:40])
    expected: list[object] = [max(_session_answer(model, feed)) for feed in feeds]

    assert _wrong_answers_at_once(lambda k: model.predict_row_top2(feeds[k])[1], expected, calls=600) == []


def test_a_session_that_cannot_bind_keeps_session_run(model: LoadedModel, digits_model: DigitsModel) -> None:
    class PlainSession:
        """An InferenceSession stand-in with run and the metadata, and no IO binding."""

        def __init__(self, inner: ort.InferenceSession) -> None:
            self.inner = inner

        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            return self.inner.run(names, feed)

    plain = LoadedModel(manifest=model.manifest, version=model.version, session=PlainSession(model.session))  # type: ignore[arg-type]
    feeds = _feeds(plain, digits_model.rows[:5])

    answers = [plain.predict_row(feed) for feed in feeds] + [plain.predict_row(feed) for feed in feeds]

    assert [index for index, _ in answers] == digits_model.labels[:5].tolist() * 2


def test_a_session_whose_io_binding_lacks_the_private_handle_keeps_session_run(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    class PublicBinding:
        """An IOBinding stand-in with the public binding calls and no private _iobinding."""

        def __init__(self, inner: ort.IOBinding) -> None:
            self.bind_ortvalue_input = inner.bind_ortvalue_input
            self.bind_ortvalue_output = inner.bind_ortvalue_output

    class Session:
        """The real session's private _sess (so runs skip InferenceSession.run's checks) and a public-only binding."""

        def __init__(self, inner: ort.InferenceSession) -> None:
            self._sess = inner._sess
            self.inner = inner

        def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            return self.inner.run(names, feed)

        def io_binding(self) -> PublicBinding:
            return PublicBinding(self.inner.io_binding())

    plain = LoadedModel(manifest=model.manifest, version=model.version, session=Session(model.session))  # type: ignore[arg-type]
    feeds = _feeds(plain, digits_model.rows[:5])
    rows = digits_model.rows[:8].astype(np.float32)

    answers = [plain.predict_row(feed) for feed in feeds] + [plain.predict_row(feed) for feed in feeds]
    batches = [plain.predict(rows)[0].tolist() for _ in range(3)]

    assert [index for index, _ in answers] == digits_model.labels[:5].tolist() * 2
    assert batches == [digits_model.labels[:8].tolist()] * 3
    assert plain._bindings.row is False  # tried once, then session.run for good
    assert plain._bindings.batch is None


def test_a_bound_batch1_run_that_fails_is_a_format_error(model: LoadedModel, digits_model: DigitsModel) -> None:
    [feed] = _feeds(model, digits_model.rows[:1])
    model.predict_row(feed)  # binds
    bound = model._bindings.row

    def failing(binding: object, options: object) -> None:
        raise ort.capi.onnxruntime_pybind11_state.Fail("kernel failed")

    object.__setattr__(bound, "run", failing)

    with pytest.raises(ModelFormatError, match="inference failed: kernel failed"):
        model.predict_row(feed)


def _session_labels(model: LoadedModel, matrix: np.ndarray) -> tuple[list[int], list[float]]:
    (probabilities,) = model.session.run(
        [model.manifest.output.probabilities], {model.manifest.input.name: matrix.astype(np.float32)}
    )
    return probabilities.argmax(axis=1).tolist(), probabilities.max(axis=1).tolist()


def test_a_batch_size_run_twice_in_a_row_binds_and_answers_as_session_run(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    plain_runs = []
    real_run = model._run_session

    def counted(names: list[str], feed: dict[str, np.ndarray], options: object) -> list[np.ndarray]:
        plain_runs.append(next(iter(feed.values())).shape[0])
        return real_run(names, feed, options)

    object.__setattr__(model, "_run_session", counted)
    rows = digits_model.rows.astype(np.float32)
    sizes = [8, 8, 8, 8, 3, 8, 5, 5, 5, 8]
    starts = [(i * 17) % (len(rows) - 8) for i in range(len(sizes))]

    answers = [model.predict(rows[start : start + size]) for start, size in zip(starts, sizes, strict=True)]

    # 8 runs plain twice, then bound; a lone 3 runs plain and leaves 8 bound; 5 twice in a row takes the binding
    assert plain_runs == [8, 8, 3, 5, 5, 8]
    for (labels, confidences), start, size in zip(answers, starts, sizes, strict=True):
        expected_labels, expected_confidences = _session_labels(model, rows[start : start + size])
        assert labels.tolist() == expected_labels
        assert confidences.tolist() == expected_confidences


def test_answers_from_a_bound_batch_are_not_overwritten_by_the_next_run(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    rows = digits_model.rows.astype(np.float32)
    for _ in range(3):
        model.predict(rows[:16])  # bound from the second run on
    labels, confidences, margins = model.predict_top2(rows[:16])
    kept = (labels.tolist(), confidences.tolist(), margins.tolist())

    model.predict_top2(rows[16:32])

    assert (labels.tolist(), confidences.tolist(), margins.tolist()) == kept
    assert kept[0] == _session_labels(model, rows[:16])[0]


def test_threads_running_the_same_batch_size_at_once_each_get_their_own_answers(
    model: LoadedModel, digits_model: DigitsModel
) -> None:
    rows = digits_model.rows.astype(np.float32)
    blocks = [rows[i : i + 32] for i in range(0, len(rows) - 31, 32)]
    expected: list[object] = [_session_labels(model, block)[1] for block in blocks]

    assert _wrong_answers_at_once(lambda k: model.predict(blocks[k])[1].tolist(), expected, calls=1000) == []


@pytest.mark.parametrize("rows", [33, 64, 100, 257])
def test_a_batch_larger_than_run_rows_runs_in_slices_and_answers_as_one_run(
    model: LoadedModel, digits_model: DigitsModel, rows: int
) -> None:
    batch = np.resize(digits_model.rows, (rows, digits_model.rows.shape[1])).astype(np.float32)
    sizes: list[int] = []
    real_probabilities = model._probabilities

    def noted(part: np.ndarray) -> np.ndarray:
        sizes.append(part.shape[0])
        return real_probabilities(part)

    expected_labels, expected_confidences = model.predict(batch)  # one session run
    object.__setattr__(model, "_probabilities", noted)
    for _ in range(2):  # the second time, whole slices go through the bound 32-row run
        labels, confidences, margins = model.predict_top2(batch, run_rows=32)
        assert labels.tolist() == expected_labels.tolist()
        assert np.allclose(confidences, expected_confidences, rtol=1e-5)  # float32 sums differ with the run size
        assert margins.shape == (rows,)

    assert max(sizes) <= 32
    if rows >= 64:  # a slice size that repeats is bound: later whole slices no longer take the plain path
        assert sum(sizes) < 2 * rows


def test_a_failing_sliced_run_is_a_format_error(model: LoadedModel, digits_model: DigitsModel) -> None:
    batch = np.resize(digits_model.rows, (96, digits_model.rows.shape[1])).astype(np.float32)
    model.predict(batch[:32], run_rows=32)
    model.predict(batch[:32], run_rows=32)  # a size seen twice is bound
    bound = model._bindings.batch
    assert bound is not None
    assert bound.rows == 32

    def broken(binding: object, options: object) -> None:
        raise ort.capi.onnxruntime_pybind11_state.Fail("session raised")

    object.__setattr__(bound, "run", broken)
    with pytest.raises(ModelFormatError, match="inference failed"):
        model.predict(batch, run_rows=32)
