"""SageMaker conventions: SM_* variables, hyperparameters.json and flags drive the run, in that order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeloop.core.errors import ConfigError, UsageError, ValidationError
from edgeloop.core.manifest import MANIFEST_FILE, ModelManifest
from edgeloop.training import main
from edgeloop.training.conventions import JobEnvironment, build_config
from edgeloop.training.job import METRICS_FILE, MODEL_FILE


@pytest.fixture
def ml(tmp_path: Path) -> Path:
    """An /opt/ml look-alike with an empty input/config."""
    (tmp_path / "input" / "config").mkdir(parents=True)
    return tmp_path


def _env(ml: Path, **extra: str) -> dict[str, str]:
    return {
        "SM_MODEL_DIR": str(ml / "model"),
        "SM_OUTPUT_DATA_DIR": str(ml / "output" / "data"),
        "SM_INPUT_CONFIG_DIR": str(ml / "input" / "config"),
        **extra,
    }


def _write_hyperparameters(ml: Path, values: dict[str, str]) -> None:
    (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(values))


def test_sagemaker_environment_and_hyperparameters_file_drive_the_run(ml: Path) -> None:
    # What the SageMaker Python SDK writes: every value a string, strings JSON-encoded once more.
    _write_hyperparameters(
        ml,
        {
            "model_name": '"digits-sm"',
            "dataset": '"builtin:digits"',
            "hidden": '"16"',
            "max_iter": "5",
            "seed": "3",
            "sagemaker_program": '"train.py"',
            "sagemaker_region": '"us-east-1"',
        },
    )
    env = _env(ml, SM_TRAINING_ENV=json.dumps({"job_name": "edgeloop-digits-2026", "hosts": ["algo-1"]}))

    assert main([], env) == 0

    manifest = ModelManifest.from_json((ml / "model" / MANIFEST_FILE).read_text())
    assert (ml / "model" / MODEL_FILE).is_file()
    assert manifest.model_name == "digits-sm"
    assert manifest.lineage.training_job == "edgeloop-digits-2026"
    assert manifest.lineage.hyperparameters["hidden"] == "16"
    assert manifest.lineage.hyperparameters["max_iter"] == "5"
    assert manifest.lineage.hyperparameters["seed"] == "3"
    metrics = json.loads((ml / "output" / "data" / METRICS_FILE).read_text())
    assert metrics["training_job"] == "edgeloop-digits-2026"


def test_a_local_run_is_named_local_with_a_timestamp(ml: Path) -> None:
    assert main(["--max-iter", "2", "--hidden", "8"], _env(ml)) == 0
    manifest = ModelManifest.from_json((ml / "model" / MANIFEST_FILE).read_text())
    assert manifest.lineage.training_job.startswith("local-")
    assert manifest.lineage.training_job.endswith("Z")


def test_sm_hps_is_read_before_the_hyperparameters_file(ml: Path) -> None:
    _write_hyperparameters(ml, {"max_iter": "11", "seed": "1"})
    config = build_config([], _env(ml, SM_HPS=json.dumps({"max_iter": 22})))
    assert config.max_iter == 22
    assert config.seed == 0, "the file is not merged in when SM_HPS is set"


def test_flags_override_hyperparameters_which_override_defaults(ml: Path) -> None:
    env = _env(ml, SM_HPS=json.dumps({"max_iter": 3, "seed": 4}))
    config = build_config(["--max-iter", "7"], env)
    assert (config.max_iter, config.seed, config.hidden, config.holdout_fraction) == (7, 4, (64,), 0.2)


def test_toolkit_style_underscore_flags_are_accepted(ml: Path) -> None:
    argv = ["--max_iter", "9", "--holdout_fraction", "0.3", "--model_name", "m-1", "--model_dir", "/x/model"]
    config = build_config(argv, _env(ml))
    assert (config.max_iter, config.holdout_fraction, config.model_name) == (9, 0.3, "m-1")
    assert config.model_dir == Path("/x/model")


def test_typed_sm_hps_values_are_taken_as_their_text(ml: Path) -> None:
    hps = {"hidden": [32, 16], "holdout_fraction": 0.25, "label_column": "y", "features": ["a", "b"]}
    config = build_config([], _env(ml, SM_HPS=json.dumps(hps)))
    assert (config.hidden, config.holdout_fraction, config.label_column) == ((32, 16), 0.25, "y")
    assert config.features == ("a", "b")


def test_paths_come_from_sm_variables_and_flags_win(ml: Path) -> None:
    env = _env(ml, SM_CHANNEL_TRAIN=str(ml / "train"), SM_CHANNEL_VALIDATION=str(ml / "val"))
    job = JobEnvironment.from_env(env)
    assert job.channels == {"train": ml / "train", "validation": ml / "val"}
    assert build_config([], env).train_dir == ml / "train"
    config = build_config(["--train", "/data/t", "--output-data-dir", "/data/out"], env)
    assert (config.train_dir, config.output_data_dir) == (Path("/data/t"), Path("/data/out"))
    assert config.model_dir == ml / "model"


def test_inside_a_job_without_sm_paths_the_fixed_opt_ml_paths_are_used(ml: Path) -> None:
    env = {"SM_INPUT_CONFIG_DIR": str(ml / "input" / "config"), "SM_TRAINING_ENV": '{"job_name": "j-1"}'}
    job = JobEnvironment.from_env(env)
    assert job.model_dir == Path("/opt/ml/model")
    assert job.output_data_dir == Path("/opt/ml/output/data")
    assert (job.channels, job.training_job, job.hyperparameters) == ({}, "j-1", {})


def test_a_local_run_never_defaults_to_opt_ml(ml: Path) -> None:
    env = {"SM_INPUT_CONFIG_DIR": str(ml / "input" / "config")}
    job = JobEnvironment.from_env(env)
    assert (job.model_dir, job.output_data_dir) == (None, None)
    assert build_config(["--model-dir", str(ml / "m")], env).output_data_dir is None
    with pytest.raises(UsageError, match="--model-dir: is required outside a SageMaker training job"):
        build_config([], env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_iter", "abc", "hyperparameter max_iter: 'abc' is not an integer"),
        ("seed", "1.5", "hyperparameter seed: '1.5' is not an integer"),
        ("holdout_fraction", "most", "hyperparameter holdout_fraction: 'most' is not a number"),
        ("hidden", "64,x", "hyperparameter hidden: '64,x' is not a comma-separated list of integers"),
        ("max_iter", "0", "hyperparameter max_iter: must be >= 1, got 0"),
        ("holdout_fraction", "1.5", "hyperparameter holdout_fraction: 1.5 must be strictly between 0 and 1"),
        ("hidden", "64,0", "hyperparameter hidden: (64, 0) must be one or more layer sizes >= 1"),
        ("model_name", "Digits_V2", "hyperparameter model_name: 'Digits_V2' must be 2-40 lowercase"),
    ],
)
def test_bad_hyperparameters_are_refused_by_name(ml: Path, name: str, value: str, message: str) -> None:
    _write_hyperparameters(ml, {name: value})
    with pytest.raises(ValidationError) as caught:
        build_config([], _env(ml))
    assert str(caught.value).startswith(message)


def test_a_bad_flag_value_names_the_flag(ml: Path) -> None:
    with pytest.raises(ValidationError, match=r"^--max-iter: 'lots' is not an integer$"):
        build_config(["--max-iter", "lots"], _env(ml))


def test_unknown_hyperparameters_are_refused_but_sagemaker_reserved_ones_are_not(ml: Path) -> None:
    _write_hyperparameters(ml, {"max_iters": "5", "sagemaker_program": '"x.py"'})
    with pytest.raises(ConfigError, match=r"unknown hyperparameter\(s\) \['max_iters'\]"):
        build_config([], _env(ml))


def test_unknown_flags_are_a_usage_error(ml: Path) -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --epochs"):
        build_config(["--epochs", "3"], _env(ml))


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SM_TRAINING_ENV", "{not json", "SM_TRAINING_ENV: is not valid JSON"),
        ("SM_TRAINING_ENV", '{"hosts": []}', "SM_TRAINING_ENV.job_name: expected a non-empty string"),
        ("SM_HPS", "[1, 2]", "SM_HPS: expected a JSON object, got list"),
        ("SM_HPS", '{"seed": true}', "hyperparameter seed: True is not a string or a number"),
    ],
)
def test_malformed_sagemaker_variables_are_refused(ml: Path, variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config([], _env(ml, **{variable: value}))
    assert str(caught.value).startswith(message)


def test_a_csv_dataset_needs_a_model_name(ml: Path) -> None:
    with pytest.raises(ConfigError, match=r"^model_name: is required for user data \('csv'\)"):
        build_config(["--dataset", "csv"], _env(ml))


def test_main_reports_one_error_line_and_exit_code_and_writes_nothing(
    ml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--max-iter", "abc"], _env(ml)) == ValidationError.exit_code
    captured = capsys.readouterr()
    assert captured.err == "error: --max-iter: 'abc' is not an integer\n"
    assert not (ml / "model").exists()


def test_main_writes_the_failure_reason_where_sagemaker_reads_it(ml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ml / "output").mkdir()
    env = _env(ml, SM_OUTPUT_DIR=str(ml / "output"))
    assert main(["--dataset", "builtin:mnist"], env) == ConfigError.exit_code
    failure = (ml / "output" / "failure").read_text()
    assert failure.startswith("dataset: 'builtin:mnist' is not a dataset")
    assert capsys.readouterr().err == f"error: {failure}\n"


def test_gate_family_schema_and_parent_version_come_typed_from_hyperparameters(ml: Path) -> None:
    _write_hyperparameters(
        ml,
        {
            "family": '"trees"',
            "n_estimators": "30",
            "max_depth": "6",
            "gate_metric": '"macro_f1"',
            "gate_bound": "0.02",
            "gate_minimum": "0.9",
            "parent_version": "4",
            "features": '"a,b, c"',
        },
    )
    config = build_config(["--dataset", "csv", "--model-name", "tab"], _env(ml))
    assert (config.family, config.n_estimators, config.max_depth) == ("trees", 30, 6)
    assert (config.gate_metric, config.gate_bound, config.gate_minimum) == ("macro_f1", 0.02, 0.9)
    assert (config.parent_version, config.features) == (4, ("a", "b", "c"))
    assert "parent_version" not in config.hyperparameters(), "it has its own place in the lineage"


def test_local_aliases_out_data_and_model(ml: Path) -> None:
    config = build_config(["--out", "/x/m", "--data", "builtin:wine", "--model", "trees"], _env(ml))
    assert (config.model_dir, config.dataset, config.family, config.model_name) == (
        Path("/x/m"), "builtin:wine", "trees", "wine",
    )  # fmt: skip


def test_data_given_as_a_file_path_reads_that_file(ml: Path) -> None:
    (ml / "mine").mkdir()
    (ml / "mine" / "rows.parquet").write_bytes(b"not read here")
    config = build_config(["--data", str(ml / "mine" / "rows.parquet"), "--model-name", "rows"], _env(ml))
    assert (config.dataset, config.train_dir) == ("parquet:rows.parquet", ml / "mine")
    with pytest.raises(UsageError, match=r"^--data: .* is a file path; name it inside --train as parquet:rows.parquet"):
        build_config(["--data", str(ml / "mine" / "rows.parquet"), "--model-name", "r1", "--train", "/t"], _env(ml))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--n-estimators", "many"], "--n-estimators: 'many' is not an integer"),
        (["--max-depth", "0", "--model", "trees"], "--max-depth: must be >= 1, got 0"),
        (["--gate-bound", "high"], "--gate-bound: 'high' is not a number"),
        (["--gate-bound", "2"], "--gate-bound: 2.0 is outside [0, 1]"),
        (["--gate-minimum", "-0.1"], "--gate-minimum: -0.1 is outside [0, 1]"),
        (["--gate-metric", "f1"], "--gate-metric: unknown metric 'f1'; expected one of ['accuracy', 'macro_f1']"),
        (["--parent-version", "0"], "--parent-version: must be >= 1, got 0"),
        (["--parent-version", "v3"], "--parent-version: 'v3' is not an integer"),
        (
            ["--model", "forest"],
            "--family: unknown family 'forest'; expected one of ['mlp', 'trees', 'linear', 'auto']",
        ),
        (["--model", "trees", "--hidden", "8"], "--hidden: applies to family 'mlp', not 'trees'"),
        (["--n-estimators", "10"], "--n-estimators: applies to family 'trees', not 'mlp'"),
        (["--features", "a,,b"], "--features: ['a', '', 'b'] must be one or more non-empty column names"),
        (["--features", "a,label"], "--features: ['a', 'label'] repeats a name or holds the label column"),
    ],
)
def test_new_options_of_the_wrong_type_or_value_are_refused_by_name(ml: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build_config(argv, _env(ml))
    assert str(caught.value) == message
