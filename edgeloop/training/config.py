"""What one training run needs, validated once, whether it came from SageMaker, the CLI or a caller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeloop.core.errors import ConfigError, ValidationError
from edgeloop.core.gate import DEFAULT_BOUND, DEFAULT_METRIC
from edgeloop.core.names import validate_model_name
from edgeloop.training.model import AUTO, FAMILIES, FAMILY_CHOICES, METRICS, MLP

BUILTIN_PREFIX = "builtin:"
BUILTINS = ("digits", "breast_cancer", "wine", "iris")
"""Datasets scikit-learn ships inside the package (load_*): nothing is downloaded at run time."""
DIGITS = f"{BUILTIN_PREFIX}digits"
CSV = "csv"
PARQUET = "parquet"
NPZ = "npz"
FILE_KINDS = (CSV, PARQUET, NPZ)
"""User data in the train channel: `kind` (the one such file there) or `kind:<file>` (that file)."""
DATASET_SPECS = (
    *(f"{BUILTIN_PREFIX}{name}" for name in BUILTINS),
    *FILE_KINDS,
    *(f"{k}:<file>.{k}" for k in FILE_KINDS),
)
MAX_SEED = 2**32 - 1
"""numpy's RandomState (and so scikit-learn's random_state) accepts seeds in [0, 2**32 - 1]."""
NOT_HYPERPARAMETERS = ("model_dir", "output_data_dir", "train_dir", "training_job", "parent_version")
"""Fields that say where and which run, not how to train: they are not hyperparameters in the lineage."""


def check_spec(spec: str) -> str:
    """Refuse a dataset spec before any work is done; returns its kind (builtin: or a file kind)."""
    kind, _, name = spec.partition(":")
    if spec.startswith(BUILTIN_PREFIX) and name in BUILTINS:
        return BUILTIN_PREFIX
    if kind in FILE_KINDS and (not name or name.endswith(f".{kind}")):
        return kind
    raise ConfigError("dataset", f"{spec!r} is not a dataset; expected one of {list(DATASET_SPECS)}")


@dataclass(frozen=True)
class TrainingConfig:
    """One training run: where data comes from, where the model goes, the hyperparameters and the gate."""

    model_dir: Path
    model_name: str
    output_data_dir: Path | None = None
    dataset: str = DIGITS
    train_dir: Path | None = None
    label_column: str = "label"
    features: tuple[str, ...] | None = None
    """The declared feature schema (column names, in the order the device sends them); None takes the data's."""
    family: str = MLP
    """A family of FAMILIES, or auto: train() fits each, keeps the better on validation and records the choice."""
    hidden: tuple[int, ...] = (64,)
    max_iter: int = 200
    n_estimators: int = 50
    max_depth: int | None = None
    seed: int = 0
    holdout_fraction: float = 0.2
    gate_metric: str = DEFAULT_METRIC
    gate_bound: float = DEFAULT_BOUND
    gate_minimum: float | None = None
    parent_version: int | None = None
    """The registry version this run retrains (recorded in the lineage); None for a first model."""
    training_job: str | None = None
    """SageMaker job name; None means a local run, recorded as local-<UTC timestamp>."""

    def __post_init__(self) -> None:
        validate_model_name(self.model_name)
        check_spec(self.dataset)
        self._check_data()
        self._check_model()
        self._check_gate()
        if self.parent_version is not None and self.parent_version < 1:
            raise ValidationError("parent_version", f"must be >= 1, got {self.parent_version}")
        if self.training_job is not None and not self.training_job:
            raise ValidationError("training_job", "must be a job name or None for a local run")

    def _check_data(self) -> None:
        if not self.label_column:
            raise ValidationError("label_column", "must not be empty")
        if self.features is None:
            return
        if not self.features or any(not name for name in self.features):
            raise ValidationError("features", f"{list(self.features)} must be one or more non-empty column names")
        if len(set(self.features)) != len(self.features) or self.label_column in self.features:
            raise ValidationError("features", f"{list(self.features)} repeats a name or holds the label column")

    def _check_model(self) -> None:
        if self.family not in FAMILY_CHOICES:
            raise ConfigError("family", f"unknown family {self.family!r}; expected one of {list(FAMILY_CHOICES)}")
        if not self.hidden or any(size < 1 for size in self.hidden):
            raise ValidationError("hidden", f"{self.hidden} must be one or more layer sizes >= 1")
        for name in ("max_iter", "n_estimators"):
            if getattr(self, name) < 1:
                raise ValidationError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.max_depth is not None and self.max_depth < 1:
            raise ValidationError("max_depth", f"must be >= 1, got {self.max_depth}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValidationError("seed", f"{self.seed} is outside [0, {MAX_SEED}]")
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ValidationError("holdout_fraction", f"{self.holdout_fraction} must be strictly between 0 and 1")

    def _check_gate(self) -> None:
        if self.gate_metric not in METRICS:
            raise ConfigError("gate_metric", f"unknown metric {self.gate_metric!r}; expected one of {list(METRICS)}")
        if not 0.0 <= self.gate_bound <= 1.0:
            raise ValidationError("gate_bound", f"{self.gate_bound} is outside [0, 1]")
        if self.gate_minimum is not None and not 0.0 <= self.gate_minimum <= 1.0:
            raise ValidationError("gate_minimum", f"{self.gate_minimum} is outside [0, 1]")

    def hyperparameters(self) -> dict[str, str]:
        """The effective hyperparameters as strings (SageMaker's form), recorded in the lineage.

        Only the chosen family's own hyperparameters are recorded (every family's for auto); unset optional ones
        are left out.
        """
        owned = FAMILIES[self.family].hyperparameters if self.family != AUTO else _every_family_hyperparameter()
        values: dict[str, object] = {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "label_column": self.label_column,
            "features": None if self.features is None else ",".join(self.features),
            "family": self.family,
            **{name: getattr(self, name) for name in owned},
            "seed": self.seed,
            "holdout_fraction": self.holdout_fraction,
            "gate_metric": self.gate_metric,
            "gate_bound": self.gate_bound,
            "gate_minimum": self.gate_minimum,
        }
        return {name: _text(value) for name, value in values.items() if value is not None}


def _every_family_hyperparameter() -> tuple[str, ...]:
    """Each family's own hyperparameters, once each, in FAMILIES order (auto may fit any of them)."""
    return tuple(dict.fromkeys(name for family in FAMILIES.values() for name in family.hyperparameters))


def _text(value: object) -> str:
    """A hyperparameter as the string a flag would carry."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
