"""SageMaker training conventions (SM_* variables, hyperparameters.json, /opt/ml paths) turned into a config.

Precedence: command-line flags override hyperparameters, which override the defaults. SageMaker
hands hyperparameters over as strings (the Python SDK even JSON-encodes them, so "200" or "\"digits\""),
and its training toolkit also passes them to the script as `--max_iter 200`: both spellings of every
flag are accepted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from edgeloop.core.errors import ConfigError, UsageError, ValidationError
from edgeloop.training.config import TrainingConfig
from edgeloop.training.data import DIGITS, check_spec

DEFAULT_MODEL_DIR = "/opt/ml/model"
DEFAULT_OUTPUT_DATA_DIR = "/opt/ml/output/data"
DEFAULT_INPUT_CONFIG_DIR = "/opt/ml/input/config"
HYPERPARAMETERS_FILE = "hyperparameters.json"
ENV_MODEL_DIR = "SM_MODEL_DIR"
ENV_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
ENV_INPUT_CONFIG_DIR = "SM_INPUT_CONFIG_DIR"
ENV_HPS = "SM_HPS"
ENV_TRAINING_ENV = "SM_TRAINING_ENV"
CHANNEL_PREFIX = "SM_CHANNEL_"
TRAIN_CHANNEL = "train"
DEFAULT_DIGITS_MODEL_NAME = "digits"

HYPERPARAMETERS = ("model_name", "dataset", "label_column", "hidden", "max_iter", "seed", "holdout_fraction")
RESERVED_PREFIXES = ("sagemaker_", "_")
"""Keys SageMaker adds itself (sagemaker_program, _tuning_objective_metric, ...): not ours to refuse."""


@dataclass(frozen=True)
class JobEnvironment:
    """What the SageMaker container (or a local imitation of it) tells the entry point."""

    model_dir: Path | None
    output_data_dir: Path | None
    channels: Mapping[str, Path] = field(default_factory=dict)
    training_job: str | None = None
    hyperparameters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> JobEnvironment:
        """Read SM_* variables; SageMaker's fixed /opt/ml paths apply only inside a training job."""
        in_job = bool(env.get(ENV_TRAINING_ENV) or env.get(ENV_MODEL_DIR))
        model_dir = env.get(ENV_MODEL_DIR) or (DEFAULT_MODEL_DIR if in_job else None)
        output_dir = env.get(ENV_OUTPUT_DATA_DIR) or (DEFAULT_OUTPUT_DATA_DIR if in_job else None)
        return cls(
            model_dir=Path(model_dir) if model_dir else None,
            output_data_dir=Path(output_dir) if output_dir else None,
            channels={
                key.removeprefix(CHANNEL_PREFIX).lower(): Path(value)
                for key, value in sorted(env.items())
                if key.startswith(CHANNEL_PREFIX) and value
            },
            training_job=_job_name(env),
            hyperparameters=read_hyperparameters(env),
        )


def _job_name(env: Mapping[str, str]) -> str | None:
    """The job name from SM_TRAINING_ENV; absent means a local run."""
    text = env.get(ENV_TRAINING_ENV)
    if not text:
        return None
    data = _json_object(text, ENV_TRAINING_ENV)
    name = data.get("job_name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{ENV_TRAINING_ENV}.job_name", f"expected a non-empty string, got {name!r}")
    return name


def read_hyperparameters(env: Mapping[str, str]) -> dict[str, str]:
    """SM_HPS if set, else <SM_INPUT_CONFIG_DIR>/hyperparameters.json if present; values as plain strings."""
    if env.get(ENV_HPS):
        data, where = _json_object(env[ENV_HPS], ENV_HPS), ENV_HPS
    else:
        path = Path(env.get(ENV_INPUT_CONFIG_DIR) or DEFAULT_INPUT_CONFIG_DIR) / HYPERPARAMETERS_FILE
        if not path.is_file():
            return {}
        data, where = _json_object(_read_text(path), str(path)), str(path)
    ours = {k: v for k, v in data.items() if not k.startswith(RESERVED_PREFIXES)}
    unknown = sorted(set(ours) - set(HYPERPARAMETERS))
    if unknown:
        raise ConfigError(where, f"unknown hyperparameter(s) {unknown}; expected some of {list(HYPERPARAMETERS)}")
    return {k: _hp_text(k, v) for k, v in ours.items()}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot be read ({exc})") from exc


def _json_object(text: str, where: str) -> dict[str, object]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(where, f"expected a JSON object, got {type(data).__name__}")
    return data


def _hp_text(name: str, value: object) -> str:
    """One hyperparameter as the plain string a flag would carry, undoing the SDK's JSON encoding."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        if isinstance(decoded, bool) or not isinstance(decoded, str | int | float | list):
            return value
        value = decoded
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return str(value)
    raise ConfigError(f"hyperparameter {name}", f"{value!r} is not a string or a number")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("arguments", message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m edgeloop.training", description="Train, export ONNX, write a manifest.")
    parser.add_argument("--model-dir", "--model_dir", dest="model_dir", help=f"default ${ENV_MODEL_DIR}")
    parser.add_argument("--output-data-dir", "--output_data_dir", dest="output_data_dir")
    parser.add_argument("--train", help=f"the train channel directory; default ${CHANNEL_PREFIX}TRAIN")
    for name in HYPERPARAMETERS:
        flag = name.replace("_", "-")
        spellings = [f"--{flag}"] + ([f"--{name}"] if flag != name else [])
        parser.add_argument(*spellings, dest=name, help=f"overrides hyperparameter {name}")
    return parser


def build_config(argv: Sequence[str], env: Mapping[str, str]) -> TrainingConfig:
    """Merge defaults < hyperparameters < flags into a validated TrainingConfig."""
    args = _parser().parse_args(list(argv))
    job = JobEnvironment.from_env(env)
    given: dict[str, tuple[str, str]] = {k: (f"hyperparameter {k}", v) for k, v in job.hyperparameters.items()}
    for name in HYPERPARAMETERS:
        value = getattr(args, name)
        if value is not None:
            given[name] = ("--" + name.replace("_", "-"), value)
    train_dir = Path(args.train) if args.train else job.channels.get(TRAIN_CHANNEL)
    typed = _typed(given)
    model_dir = Path(args.model_dir) if args.model_dir else job.model_dir
    if model_dir is None:
        raise UsageError("--model-dir", f"is required outside a SageMaker training job (no {ENV_MODEL_DIR} set)")
    try:
        return TrainingConfig(
            model_dir=model_dir,
            output_data_dir=Path(args.output_data_dir) if args.output_data_dir else job.output_data_dir,
            train_dir=train_dir,
            training_job=job.training_job,
            **typed,
        )
    except ValidationError as exc:
        source = given.get(exc.field, (exc.field, ""))[0]
        raise type(exc)(source, exc.message) from exc


def _typed(given: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """Parse each given hyperparameter string to its type; the error names where the value came from."""
    out: dict[str, Any] = {}
    for name, (source, text) in given.items():
        if name in ("max_iter", "seed"):
            out[name] = _integer(source, text)
        elif name == "holdout_fraction":
            out[name] = _fraction(source, text)
        elif name == "hidden":
            out[name] = _layers(source, text)
        else:
            out[name] = text.strip()
    if "model_name" not in out:
        if check_spec(str(out.get("dataset", DIGITS))) != DIGITS:
            raise ConfigError("model_name", "is required for a CSV dataset (hyperparameter or --model-name)")
        out["model_name"] = DEFAULT_DIGITS_MODEL_NAME
    return out


def _integer(source: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError as exc:
        raise ValidationError(source, f"{text!r} is not an integer") from exc


def _fraction(source: str, text: str) -> float:
    try:
        return float(text.strip())
    except ValueError as exc:
        raise ValidationError(source, f"{text!r} is not a number") from exc


def _layers(source: str, text: str) -> tuple[int, ...]:
    """Hidden layer sizes: "64" or "64,32"."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise ValidationError(source, f"{text!r} is not a comma-separated list of integers") from exc
