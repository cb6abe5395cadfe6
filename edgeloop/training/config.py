"""What one training run needs, validated once, whether it came from SageMaker, the CLI or a caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeloop.core.errors import ValidationError
from edgeloop.core.names import validate_model_name
from edgeloop.training.data import DIGITS, check_spec

MAX_SEED = 2**32 - 1
"""numpy's RandomState (and so scikit-learn's random_state) accepts seeds in [0, 2**32 - 1]."""


@dataclass(frozen=True)
class TrainingConfig:
    """One training run: where data comes from, where the model goes, and the hyperparameters."""

    model_dir: Path
    model_name: str
    output_data_dir: Path | None = None
    dataset: str = DIGITS
    train_dir: Path | None = None
    label_column: str = "label"
    hidden: tuple[int, ...] = (64,)
    max_iter: int = 200
    seed: int = 0
    holdout_fraction: float = 0.2
    training_job: str | None = None
    """SageMaker job name; None means a local run, recorded as local-<UTC timestamp>."""

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        check_spec(self.dataset)
        if not self.hidden or any(size < 1 for size in self.hidden):
            raise ValidationError("hidden", f"{self.hidden} must be one or more layer sizes >= 1")
        if self.max_iter < 1:
            raise ValidationError("max_iter", f"must be >= 1, got {self.max_iter}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValidationError("seed", f"{self.seed} is outside [0, {MAX_SEED}]")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValidationError("holdout_fraction", f"{self.holdout_fraction} must be strictly between 0 and 1")
        if not self.label_column:
            raise ValidationError("label_column", "must not be empty")
        if self.training_job is not None and not self.training_job:
            raise ValidationError("training_job", "must be a job name or None for a local run")

    def hyperparameters(self) -> dict[str, str]:
        """The effective hyperparameters as strings (SageMaker's form), recorded in the lineage."""
        return {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "label_column": self.label_column,
            "hidden": ",".join(str(size) for size in self.hidden),
            "max_iter": str(self.max_iter),
            "seed": str(self.seed),
            "holdout_fraction": repr(self.holdout_fraction),
        }
