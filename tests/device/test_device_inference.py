"""The prediction path (device.inference) via the runtime: micro-batches, lone rows, foreign models, refused appends."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from edgeloop.core.errors import StoreError
from edgeloop.core.names import model_component_name
from edgeloop.core.records import InferenceBatch, InferenceResult, Record, RecordKind
from edgeloop.core.settings import DeviceConfig
from edgeloop.device.buffer import MemoryBuffer
from edgeloop.device.inference import BAD_REQUEST_ID, NON_FINITE_OUTPUT, Inference, InferenceRequest, Rejected
from edgeloop.device.onnx_model import LoadedModel
from edgeloop.device.runtime import DeviceRuntime
from edgeloop.device.tally import Tally
from edgeloop.device.uplink import MemoryUplink

if TYPE_CHECKING:
    from conftest import DigitsModel, ForeignDirFactory, ForeignModel, ModelDirFactory

THING = "dev-1"


def runtime(model_root: Path, buffer: MemoryBuffer, model: str = "digits", **overrides: Any) -> DeviceRuntime:
    config = DeviceConfig(
        modelComponent=model_component_name(model), modelComponentVersion="1.0.0", **{"batchMax": 8, **overrides}
    )
    return DeviceRuntime(
        thing_name=THING,
        buffer=buffer,
        uplink=MemoryUplink(),
        clock=lambda: 1_000.0,
        model_root=model_root,
        config=config,
    )


def requests(rows: Sequence[Sequence[float]], n: int) -> list[InferenceRequest]:
    return [(f"r{i}", list(rows[i % len(rows)])) for i in range(n)]


class FullBuffer(MemoryBuffer):
    """A buffer whose bound is filled by more important records: every RESULT append is refused."""

    def append(self, kind: RecordKind, payloads: Sequence[Mapping[str, Any]], now: float) -> list[Record]:
        raise StoreError(f"buffer full: {len(payloads)} {kind.name.lower()} records do not fit")


def test_a_refused_append_is_counted_and_the_answers_still_go_back(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    device = runtime(model_root, FullBuffer(THING))

    answers = device.infer(requests(digits_model.rows.tolist(), 3))

    assert [a.label for a in answers if isinstance(a, InferenceResult)] == [str(v) for v in digits_model.labels[:3]]
    health = device.health()
    assert (health.inferences, health.errors, health.buffer_depth) == (3, 1, 0)


def test_results_of_one_micro_batch_share_its_latency_and_arrive_in_one_append(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer, batchMax=4)

    answers = device.infer(requests(digits_model.rows.tolist(), 6))

    latencies = [a.latency_ms for a in answers if isinstance(a, InferenceResult)]
    assert len(set(latencies[:4])) == 1
    assert len(set(latencies[4:])) == 1
    assert min(latencies) > 0
    records = buffer.peek(100)
    assert [r.seq for r in records] == [1, 2]  # one RESULT record per micro-batch
    stored = [InferenceBatch.from_payload(r.payload) for r in records]
    assert [s.request_ids for s in stored] == [("r0", "r1", "r2", "r3"), ("r4", "r5")]
    assert [s.latency_ms for s in stored] == [round(latencies[0], 4), round(latencies[4], 4)]


def test_a_batch_of_only_bad_rows_appends_nothing(make_model_dir: ModelDirFactory, model_root: Path) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer)

    bad: list[tuple[str, Any]] = [("nan", [math.nan] * 64), ("short", [1.0]), ("text", ["x"] * 64)]

    answers = device.infer(bad)

    assert all(isinstance(a, Rejected) for a in answers)
    assert (buffer.stats().produced, device.health().rejected_inputs) == (0, 3)


def test_an_image_model_from_elsewhere_is_served_from_flat_feature_rows(
    make_foreign_dir: ForeignDirFactory, model_root: Path, image_model: ForeignModel
) -> None:
    image = image_model
    make_foreign_dir(image)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer, model="pixels")
    batch = requests(image.rows.tolist(), 10)
    batch[3] = ("too-bright", [255.0] * 64)

    answers = device.infer(batch)

    expected = [f"class-{v}" for v in image.labels[:10]]
    assert [a.label if isinstance(a, InferenceResult) else None for a in answers] == [
        *expected[:3],
        None,
        *expected[4:],
    ]
    assert "outside [0.0, 16.0]" in str(answers[3])
    stored = [row for r in buffer.peek(10) for row in InferenceBatch.from_payload(r.payload).rows()]
    assert [s.request_id for s in stored] == [rid for rid, _ in batch if rid != "too-bright"]
    assert [s.label for s in stored] == [*expected[:3], *expected[4:]]


def test_rejected_inputs_are_logged_with_their_reasons(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel, caplog: pytest.LogCaptureFixture
) -> None:
    make_model_dir(1)
    device = runtime(model_root, MemoryBuffer(THING))

    device.infer([*requests(digits_model.rows.tolist(), 2), ("short", [1.0])])

    assert "1 of 3 inputs rejected (first ones: short: expected 64 features, got 1)" in caplog.text


def test_a_model_emitting_nan_fails_those_rows_only_and_counts_as_inference_errors(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer)
    real_predict = LoadedModel.predict

    def nan_for_first_row(
        self: LoadedModel, batch: np.ndarray, run_rows: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        labels, confidences = real_predict(self, batch, run_rows)
        confidences = confidences.copy()
        confidences[0] = np.nan
        return labels, confidences

    monkeypatch.setattr(LoadedModel, "predict", nan_for_first_row)
    answers = device.infer(requests(digits_model.rows.tolist(), 8))

    assert answers[0] == Rejected("r0", NON_FINITE_OUTPUT)
    assert [a.request_id for a in answers[1:] if isinstance(a, InferenceResult)] == [f"r{i}" for i in range(1, 8)]
    [record] = buffer.peek(10)
    assert list(InferenceBatch.from_payload(record.payload).request_ids) == [f"r{i}" for i in range(1, 8)]
    health = device.health()
    assert (health.errors, health.inferences) == (1, 7)


def test_an_unusable_request_id_is_refused_alone(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer)
    row = digits_model.rows[0].tolist()

    answers = device.infer([("x" * 200, row), ("ok", row), ("", row)])

    assert answers[0] == Rejected("x" * 200, BAD_REQUEST_ID)
    assert isinstance(answers[1], InferenceResult)
    assert answers[2] == Rejected("", BAD_REQUEST_ID)
    assert device.health().rejected_inputs == 2
    assert buffer.stats().depth == 1


# --- the batch-1 path: a lone decoded row (1-D numpy) takes LoadedModel.screen_row / predict_row ---


def test_a_lone_numpy_row_gets_the_same_answer_and_record_as_the_general_path(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    quick_buffer, general_buffer = MemoryBuffer(THING), MemoryBuffer(THING)
    quick, general = runtime(model_root, quick_buffer), runtime(model_root, general_buffer)

    for i, row in enumerate(digits_model.rows[:6]):
        [fast] = quick.infer([(f"r{i}", row.astype(np.float64))])  # ndarray: the quick path
        [slow] = general.infer([(f"r{i}", row.tolist())])  # a list: the general screen
        assert isinstance(fast, InferenceResult)
        assert isinstance(slow, InferenceResult)
        assert (fast.label, fast.label_index, fast.confidence) == (slow.label, slow.label_index, slow.confidence)
        assert fast.label_index == digits_model.labels[i]

    def rows(buffer: MemoryBuffer) -> list[tuple[str, int, str, float]]:
        out = []
        for record in buffer.peek(100):
            batch = InferenceBatch.from_payload(record.payload)
            out += list(zip(batch.request_ids, batch.label_indices, batch.labels, batch.confidences, strict=True))
        return out

    assert rows(quick_buffer) == rows(general_buffer)
    assert [r.kind for r in quick_buffer.peek(100)] == [RecordKind.RESULT] * 6
    assert quick.health().inferences == 6
    assert quick.health().latency.samples == 6


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(lambda row: np.append(row, 1.0), "expected 64 features, got 65", id="too-long"),
        pytest.param(lambda row: np.where(np.arange(64) == 3, np.nan, row), "'pixel_3' is NaN", id="nan"),
        pytest.param(lambda row: np.where(np.arange(64) == 5, np.inf, row), "'pixel_5' is NaN or infinite", id="inf"),
        pytest.param(lambda row: np.where(np.arange(64) == 7, 99.0, row), "'pixel_7' = 99.0 is outside", id="range"),
        pytest.param(lambda row: row.reshape(8, 8), "flat list of numbers", id="2-d"),
    ],
)
def test_a_lone_bad_numpy_row_is_refused_with_the_general_paths_reason(
    make_model_dir: ModelDirFactory,
    model_root: Path,
    digits_model: DigitsModel,
    change: Any,
    reason: str,
) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer)

    [answer] = device.infer([("bad", change(digits_model.rows[0].astype(np.float64)))])

    assert isinstance(answer, Rejected)
    assert reason in answer.reason
    assert buffer.stats().depth == 0
    assert (device.health().rejected_inputs, device.health().inferences) == (1, 0)


def test_a_lone_row_whose_output_is_nan_is_an_inference_error_not_a_result(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_model_dir(1)
    buffer = MemoryBuffer(THING)
    device = runtime(model_root, buffer)
    model = device._active_model()
    assert model is not None
    real_run = model._run_session

    def nan_second_class(names: list[str], feed: dict[str, np.ndarray], options: Any) -> list[Any]:
        (probabilities,) = real_run(names, feed, options)
        probabilities = probabilities.copy()
        probabilities[:, 1] = np.nan  # not the first value: max() alone would skip it
        return [probabilities]

    object.__setattr__(model, "_run_session", nan_second_class)
    [answer] = device.infer([("r0", digits_model.rows[0].astype(np.float64))])

    assert answer == Rejected("r0", NON_FINITE_OUTPUT)
    assert buffer.stats().depth == 0
    assert (device.health().errors, device.health().inferences) == (1, 0)


def test_the_drift_window_keeps_its_own_rows_whatever_callers_do_with_their_arrays_later(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    device = runtime(model_root, MemoryBuffer(THING))
    rows = digits_model.rows[:9].astype(np.float32)
    batch: list[InferenceRequest] = [(f"r{i}", rows[i]) for i in range(8)]  # views into the caller's matrix
    device.serve(batch)
    device.serve([("lone", rows[8])])
    rows[:] = 0.0
    drift = device._inference._serving.drift
    assert drift is not None

    kept, confidences = drift.snapshot()

    assert kept.tolist() == digits_model.rows[:9].astype(np.float32).tolist()
    assert confidences.shape == (9,)
    classes = drift.classes_of(kept)  # the predicted classes ride along from the batch and the lone path
    answers = device._inference.run([(f"r{i}", digits_model.rows[i].astype(np.float32)) for i in range(9)]).answers([])
    assert classes is not None
    assert classes.tolist() == [a.label_index for a in answers if isinstance(a, InferenceResult)]


# --- device.inference.Inference on its own: one path for a lone row and a micro-batch ---


def _inference(model_root: Path, **overrides: Any) -> tuple[Inference, Tally]:
    """The Inference part of a runtime, over a model manager that loaded digits v1."""
    device = runtime(model_root, MemoryBuffer(THING), **overrides)
    return device._inference, device._tally


def test_a_lone_row_and_the_same_row_in_a_micro_batch_get_the_same_columns(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    inference, tally = _inference(model_root)
    rows = digits_model.rows[:5].astype(np.float64)

    lone = [inference.run([(f"r{i}", rows[i])]) for i in range(5)]
    batch = inference.run([(f"r{i}", rows[i]) for i in range(5)])

    assert [outcome.accepted for outcome in lone] == [range(1)] * 5
    lone_columns = [column for outcome in lone for column in zip(*outcome.results[0][:4], strict=True)]
    assert lone_columns == list(zip(*batch.results[0][:4], strict=True))
    assert [label for _, label, _, _ in lone_columns] == digits_model.labels[:5].tolist()
    assert tally.snapshot().inferences == 10


def test_sampled_rows_come_back_with_the_stage_that_took_them(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    inference, _ = _inference(model_root, samplers={"random": 1.0})
    rows = digits_model.rows[:3].astype(np.float64)

    lone = inference.run([("lone", rows[0])])
    batch = inference.run([(f"r{i}", rows[i]) for i in range(3)])

    assert lone.stage is not None
    assert [(rid, sampler) for rid, _, _, _, _, sampler in lone.sampled] == [("lone", "random")]
    assert [rid for rid, *_ in batch.sampled] == ["r0", "r1", "r2"]
    _, row, index, confidence, margin, _ = batch.sampled[1]
    assert row.tolist() == rows[1].astype(np.float32).tolist()
    assert index == digits_model.labels[1]
    assert 0.0 <= margin <= confidence <= 1.0


def test_without_a_sampler_nothing_is_sampled(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    inference, _ = _inference(model_root)

    outcome = inference.run([(f"r{i}", digits_model.rows[i].astype(np.float64)) for i in range(4)])

    assert list(outcome.sampled) == []
    assert outcome.stage is None


@pytest.mark.parametrize("ids", [[7], [b"bytes"], ["ok", 7, "fine"], [None, "ok"]])
def test_a_request_id_that_is_not_a_string_is_refused_alone(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel, ids: list[object]
) -> None:
    make_model_dir(1)
    inference, tally = _inference(model_root)
    row = digits_model.rows[0].astype(np.float64)

    outcome = inference.run([(request_id, row) for request_id in ids])  # type: ignore[misc]

    bad = [i for i, request_id in enumerate(ids) if not isinstance(request_id, str)]
    assert outcome.rejected == dict.fromkeys(bad, BAD_REQUEST_ID)
    assert tally.snapshot().rejected_inputs == len(bad)


@pytest.mark.parametrize("n", [1, 3, 40, 200])
@pytest.mark.parametrize("samplers", [{}, {"random": 0.5}])
def test_result_columns_hold_only_plain_cells(
    make_model_dir: ModelDirFactory,
    model_root: Path,
    digits_model: DigitsModel,
    n: int,
    samplers: dict[str, float],
) -> None:
    """Staging stores these columns as `plain` (no per-cell check): every cell must be a built-in str/int/float."""
    make_model_dir(1)
    inference, _ = _inference(model_root, samplers=samplers)
    rows = np.resize(digits_model.rows, (n, digits_model.rows.shape[1])).astype(np.float64)

    outcome = inference.run([(f"r{i}", rows[i]) for i in range(n)], run_rows=32)

    assert sum(len(columns[0]) for columns in outcome.results) == n
    for ids, indices, labels, confidences, version, latency_ms in outcome.results:
        assert {type(v) for v in ids} | {type(v) for v in labels} == {str}
        assert {type(v) for v in indices} == {int}
        assert {type(v) for v in confidences} == {float}
        assert all(map(math.isfinite, confidences))
        assert type(version) is int
        assert type(latency_ms) is float
        assert len(ids) <= 64


def test_a_backlog_is_answered_as_its_micro_batches_would_be(
    make_model_dir: ModelDirFactory, model_root: Path, digits_model: DigitsModel
) -> None:
    make_model_dir(1)
    inference, tally = _inference(model_root)
    rows = np.resize(digits_model.rows, (100, digits_model.rows.shape[1])).astype(np.float64)
    backlog = [(f"r{i}", rows[i]) for i in range(100)]

    together = inference.run(backlog, run_rows=32)
    apart = [inference.run(backlog[i : i + 32]) for i in range(0, 100, 32)]

    def labels(outcomes: Sequence[Any]) -> list[int]:
        return [index for outcome in outcomes for columns in outcome.results for index in columns[1]]

    assert labels([together]) == labels(apart)
    assert [len(columns[0]) for columns in together.results] == [64, 36]  # MAX_RESULTS_PER_RECORD per record
    assert tally.snapshot().inferences == 200
