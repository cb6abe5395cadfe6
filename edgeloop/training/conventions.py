"""SageMaker training conventions (SM_* variables, hyperparameters.json, /opt/ml paths) turned into a config.

Precedence: command-line flags override hyperparameters, which override the defaults. SageMaker
hands hyperparameters over as strings (the Python SDK even JSON-encodes them, so "200" or "\"digits\""),
and its training toolkit also passes them to the script as `--max_iter 200`: both spellings of every
flag are accepted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from edgeloop.core.errors import ConfigError, UsageError, ValidationError
from edgeloop.training.config import (
    BUILTIN_PREFIX,
    DATASET_SPECS,
    FILE_KINDS,
    NOT_HYPERPARAMETERS,
    TrainingConfig,
    check_spec,
)
from edgeloop.training.model import FAMILIES, FAMILY_CHOICES, METRICS, MLP

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

HYPERPARAMETERS = (*(f.name for f in fields(TrainingConfig) if f.name not in NOT_HYPERPARAMETERS), "parent_version")
"""Every key a hyperparameters file or SM_HPS may hold, each also a --flag (parent_version goes to the lineage)."""
ALIASES = {"model_dir": ("--out",), "dataset": ("--data",), "family": ("--model",)}
"""Short spellings for a local run: `edgeloop train --out DIR --data builtin:wine --model trees`."""
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
    if isinstance(value, list) and all(isinstance(v, int | str) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)  # hidden [64, 32] or features ["a", "b"]
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return str(value)
    raise ConfigError(f"hyperparameter {name}", f"{value!r} is not a string or a number")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("arguments", message)


MODULE_PROG = "python -m edgeloop.training"
"""How the entry point names itself when SageMaker (or a person) runs the module; `edgeloop train` passes its own."""
_CHOICES: Mapping[str, tuple[str, ...]] = {
    "family": FAMILY_CHOICES,
    "dataset": DATASET_SPECS,
    "gate_metric": METRICS,
}
"""Hyperparameters with a fixed set of values, listed in --help (TrainingConfig refuses any other)."""


def _parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Train, export ONNX, write a manifest.")
    parser.add_argument("--model-dir", "--model_dir", *ALIASES["model_dir"], dest="model_dir",
                        help=f"where the model and manifest.json go; default ${ENV_MODEL_DIR}")  # fmt: skip
    parser.add_argument("--output-data-dir", "--output_data_dir", dest="output_data_dir")
    parser.add_argument("--train", help=f"the train channel directory; default ${CHANNEL_PREFIX}TRAIN")
    for name in HYPERPARAMETERS:
        flag = name.replace("_", "-")
        spellings = [f"--{flag}", *([f"--{name}"] if flag != name else []), *ALIASES.get(name, ())]
        parser.add_argument(*spellings, dest=name, help=_help(name))
    return parser


def _help(name: str) -> str:
    """A hyperparameter's help: its choices where it has a fixed set, and its default where it has one."""
    text = f"overrides hyperparameter {name}"
    if name in _CHOICES:
        text += f"; one of {', '.join(_CHOICES[name])}"
    owner = next((family for family, spec in FAMILIES.items() if name in spec.hyperparameters), None)
    if owner is not None:
        text += f"; family {owner} only"
    default = _DEFAULTS.get(name)
    if default not in (None, ""):
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text += f" (default {shown})"
    return text.replace("%", "%%")


_DEFAULTS: Mapping[str, Any] = {f.name: f.default for f in fields(TrainingConfig) if f.default is not MISSING}


def parse_arguments(argv: Sequence[str], prog: str = MODULE_PROG) -> argparse.Namespace:
    """The command line alone: `--help` prints and exits here, before any training module is imported."""
    return _parser(prog).parse_args(list(argv))


def build_config(argv: Sequence[str], env: Mapping[str, str]) -> TrainingConfig:
    """Merge defaults < hyperparameters < flags into a validated TrainingConfig."""
    args = parse_arguments(argv)
    job = JobEnvironment.from_env(env)
    given: dict[str, tuple[str, str]] = {k: (f"hyperparameter {k}", v) for k, v in job.hyperparameters.items()}
    for name in HYPERPARAMETERS:
        value = getattr(args, name)
        if value is not None:
            given[name] = ("--" + name.replace("_", "-"), value)
    train_dir = Path(args.train) if args.train else job.channels.get(TRAIN_CHANNEL)
    typed = _typed(given)
    train_dir = _data_file(typed, train_dir, args.train is not None)
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


def _data_file(typed: dict[str, Any], train_dir: Path | None, train_given: bool) -> Path | None:
    """A local convenience: `--data path/to/file.csv` reads that file, as `csv:file.csv` in its folder would."""
    spec = str(typed.get("dataset", ""))
    path = Path(spec)
    kind = path.suffix.removeprefix(".")
    if not spec or spec.startswith(BUILTIN_PREFIX) or kind not in FILE_KINDS or not path.is_file():
        return train_dir
    if train_given:
        raise UsageError("--data", f"{spec!r} is a file path; name it inside --train as {kind}:{path.name} instead")
    typed["dataset"] = f"{kind}:{path.name}"
    return path.parent


def _typed(given: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """Parse each given hyperparameter string to its type; the error names where the value came from."""
    out: dict[str, Any] = {name: _PARSERS.get(name, _text)(source, text) for name, (source, text) in given.items()}
    _check_family(out, given)
    if "model_name" not in out:
        spec = str(out.get("dataset", TrainingConfig.dataset))
        if not Path(spec).is_file():
            check_spec(spec)  # a mistyped spec is named as such, not as a missing model name
        if not spec.startswith(BUILTIN_PREFIX):
            raise ConfigError("model_name", f"is required for user data ({spec!r}): hyperparameter or --model-name")
        out["model_name"] = _default_model_name(spec)
    return out


def _default_model_name(spec: str) -> str:
    """A built-in dataset names its model (builtin:breast_cancer trains breast-cancer)."""
    return spec.removeprefix(BUILTIN_PREFIX).replace("_", "-")


def _check_family(out: Mapping[str, Any], given: Mapping[str, tuple[str, str]]) -> None:
    """A hyperparameter of another family is a mistake (--hidden for a forest): refuse it rather than ignore it."""
    family = str(out.get("family", MLP))
    if family not in FAMILIES:
        return  # TrainingConfig names the unknown family
    for name, (source, _) in given.items():
        owner = next((f for f, spec in FAMILIES.items() if name in spec.hyperparameters), family)
        if owner != family:
            raise ConfigError(source, f"applies to family {owner!r}, not {family!r}")


def _text(source: str, text: str) -> str:
    return text.strip()


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


def _names(source: str, text: str) -> tuple[str, ...]:
    """Declared feature columns: "a,b,c"."""
    return tuple(part.strip() for part in text.split(","))


_PARSERS: Mapping[str, Callable[[str, str], Any]] = {
    "max_iter": _integer,
    "seed": _integer,
    "n_estimators": _integer,
    "max_depth": _integer,
    "parent_version": _integer,
    "holdout_fraction": _fraction,
    "gate_bound": _fraction,
    "gate_minimum": _fraction,
    "hidden": _layers,
    "features": _names,
}
"""How each typed hyperparameter is read from its text; the rest are plain strings."""
