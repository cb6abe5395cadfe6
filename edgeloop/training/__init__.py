"""Training entry point (SageMaker conventions): fit, export ONNX, score the export, write the manifest."""

from edgeloop.training.config import TrainingConfig
from edgeloop.training.data import Dataset, load_dataset
from edgeloop.training.train import TrainingResult, main, train

__all__ = ["Dataset", "TrainingConfig", "TrainingResult", "load_dataset", "main", "train"]
