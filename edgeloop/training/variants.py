"""Compressed variants of the fp32 export (dynamic and static INT8) and what each one measures on the holdout.

The variants keep the fp32 graph's signature (input `input` float32 [N, features], output
`probabilities` float [N, classes]), so the device loads any of them the same way. Quantizing
skl2onnx graphs needs shape pre-processing without symbolic inference and a default float tensor
type; static QDQ quantizes only MatMul and Gemm (see the platform notes).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from edgeloop.core.manifest import REFERENCE_PRECISION
from edgeloop.training import model as mdl

if TYPE_CHECKING:
    import onnxruntime as ort

FP32_FILE = "model.onnx"
CALIBRATION_ROWS = 256
"""Training rows the static calibration sees: enough for stable min/max ranges of a small model, quick to run."""
CALIBRATION_BATCH = 64
LATENCY_CALLS = 200
"""Batch-1 calls timed per variant (after a warm-up); the p50 of so many is steady to a few percent."""
WARMUP_CALLS = 20
ORT_WARNING, ORT_ERROR = 2, 3
"""onnxruntime logger severities (2 is its default)."""

Builder = Callable[[bytes, np.ndarray], bytes]
"""fp32 model bytes and calibration rows (float32 training features) -> the variant's model bytes."""

log = logging.getLogger(__name__)


def variant_file(precision: str) -> str:
    """model.onnx for the reference; model.<precision>.onnx for the others."""
    return FP32_FILE if precision == REFERENCE_PRECISION else f"model.{precision}.onnx"


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Hush the quantizer's expected noise (skipped ai.onnx.ml tensors, unused initializers) while it runs.

    onnxruntime.quantization warns through the root logger and onnxruntime's C++ logger is process-wide,
    so both are turned down only for the duration and restored after.
    """
    import onnxruntime

    hush = _NotFrom("onnxruntime/quantization")
    logging.getLogger().addFilter(hush)
    onnxruntime.set_default_logger_severity(ORT_ERROR)
    try:
        yield
    finally:
        onnxruntime.set_default_logger_severity(ORT_WARNING)
        logging.getLogger().removeFilter(hush)


class _NotFrom(logging.Filter):
    """Drops warnings logged from one library's source tree."""

    def __init__(self, path_part: str) -> None:
        super().__init__()
        self._part = path_part

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep records from anywhere else, and anything of error level or worse."""
        return record.levelno >= logging.ERROR or self._part not in record.pathname.replace("\\", "/")


def _preprocessed(model: bytes, work: Path) -> Path:
    """The graph after the quantizer's pre-processing (symbolic shape inference cannot read ai.onnx.ml ops)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = work / "fp32.onnx", work / "pre.onnx"
    source.write_bytes(model)
    quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    target.write_bytes(_typed_scaler_outputs(target.read_bytes()))
    return target


def _typed_scaler_outputs(model: bytes) -> bytes:
    """Declare the float output of each ai.onnx.ml Scaler, which ONNX shape inference leaves untyped.

    Without a type the static quantizer skips every activation after the scaler, and "static INT8"
    quietly becomes weight-only; with it, the MatMuls get calibrated QDQ activations as intended.
    """
    import onnx

    proto = onnx.load_from_string(model)
    known = {info.name: info for info in [*proto.graph.input, *proto.graph.value_info]}
    for node in proto.graph.node:
        if node.op_type == "Scaler" and node.input[0] in known and node.output[0] not in known:
            info = proto.graph.value_info.add()
            info.CopyFrom(known[node.input[0]])
            info.name = node.output[0]
            info.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    data: bytes = onnx.shape_inference.infer_shapes(proto).SerializeToString()
    return data


def quantize_dynamic_int8(model: bytes, calibration: np.ndarray) -> bytes:
    """INT8 weights, activations quantized at run time: no calibration needed, helps GEMM-heavy MLPs."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgeloop-int8-dynamic-") as work, _quiet_quantizer():
        target = Path(work) / "int8.onnx"
        quantize_dynamic(
            _preprocessed(model, Path(work)),
            target,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        return target.read_bytes()


def quantize_static_int8(model: bytes, calibration: np.ndarray) -> bytes:
    """QDQ INT8 with activation ranges calibrated on training rows (never on the holdout it is judged on)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory(prefix="edgeloop-int8-static-") as work, _quiet_quantizer():
        target = Path(work) / "int8.onnx"
        quantize_static(
            _preprocessed(model, Path(work)),
            target,
            _Calibration(calibration[:CALIBRATION_ROWS]),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Gemm"],
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        return target.read_bytes()


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a few batches of training rows."""

    def __init__(self, rows: np.ndarray) -> None:
        feed = np.ascontiguousarray(rows, dtype=np.float32)
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            {mdl.INPUT_NAME: feed[i : i + CALIBRATION_BATCH]} for i in range(0, len(feed), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch, or None when calibration is done."""
        return next(self._batches, None)


BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {"int8-dynamic": quantize_dynamic_int8, "int8-static": quantize_static_int8}
)
"""How each compressed precision is made from the fp32 export."""


def stamped(model: bytes, metadata: Mapping[str, str]) -> bytes:
    """The model with our lineage in its metadata_props (replacing any the quantizer set under the same keys)."""
    import onnx

    proto = onnx.load_from_string(model)
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    for key, value in [*kept, *sorted(metadata.items())]:
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    data: bytes = proto.SerializeToString()
    return data


@dataclass(frozen=True, eq=False)
class Measured:
    """One variant on the holdout: its predictions and its metrics row for the manifest."""

    labels: np.ndarray
    probabilities: np.ndarray
    metrics: dict[str, float]


def measure(model: bytes, x_holdout: np.ndarray, y_holdout: np.ndarray) -> Measured:
    """Holdout metrics as the device would compute them, plus the file size and batch-1 latency (p50, µs)."""
    session = mdl.session(model)
    labels, probabilities = mdl.predict_onnx(session, x_holdout)
    metrics = {
        **mdl.scores(y_holdout, labels),
        "bytes": float(len(model)),
        "latency_us_p50": latency_us_p50(session, x_holdout),
    }
    return Measured(labels, probabilities, metrics)


def latency_us_p50(session: ort.InferenceSession, rows: np.ndarray) -> float:
    """Median wall time of one batch-1 `session.run` over holdout rows: a figure to compare variants by, not a spec."""
    feeds = [{mdl.INPUT_NAME: rows[i : i + 1]} for i in range(min(len(rows), LATENCY_CALLS))]
    run = session.run
    for feed in feeds[:WARMUP_CALLS]:
        run([mdl.PROBABILITIES_OUTPUT], feed)
    times = []
    for feed in feeds:
        started = time.perf_counter_ns()
        run([mdl.PROBABILITIES_OUTPUT], feed)
        times.append(time.perf_counter_ns() - started)
    return round(statistics.median(times) / 1000.0, 1)
