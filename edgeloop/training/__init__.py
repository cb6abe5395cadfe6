"""Training entry point (SageMaker conventions): fit, export ONNX, score the export, write the manifest.

The names below load on first use, so `edgeloop train --help` reads the light parser without numpy or sklearn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeloop.training.config import TrainingConfig
    from edgeloop.training.data import Dataset, load_dataset
    from edgeloop.training.job import TrainingResult, main, train

_HOMES = {
    "TrainingConfig": "edgeloop.training.config",
    "Dataset": "edgeloop.training.data",
    "load_dataset": "edgeloop.training.data",
    "TrainingResult": "edgeloop.training.job",
    "main": "edgeloop.training.job",
    "train": "edgeloop.training.job",
}
__all__ = ["Dataset", "TrainingConfig", "TrainingResult", "load_dataset", "main", "train"]


def __getattr__(name: str) -> object:
    """Import a public name's module when the name is first asked for."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
