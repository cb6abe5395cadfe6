"""edgeloop.packaging: the inference zip is reproducible and minimal, Lambda folders carry no device code."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeloop.core.errors import NotFoundError, ValidationError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.recipes import INFERENCE_ARCHIVE
from edgeloop.packaging import (
    FUNCTIONS_DIR,
    INFERENCE_COMPONENT_DIR,
    REPO_ROOT,
    build_inference_archive,
    inference_recipe,
    stage_lambda_asset,
)

FUNCTIONS = sorted(p.stem for p in FUNCTIONS_DIR.glob("*.py") if not p.name.startswith("_"))
LAMBDA_RUNTIME_MODULES = {"boto3", "botocore"}
"""Third-party modules the Lambda Python runtime provides; anything else would have to be bundled."""
DEVICE_ONLY_MODULES = {"numpy", "onnxruntime", "awscrt", "awsiot", "sklearn", "onnx", "skl2onnx"}
LAMBDA_ASSET_BUDGET_BYTES = 320 * 1024
"""Raw source bytes of one staged handler and the modules it imports (the deflated zip CDK uploads is ~1/4)."""


def _source_files(package: str) -> set[str]:
    """What the archive should hold from one edgeloop subpackage, read from the source tree."""
    base = REPO_ROOT / "edgeloop" / package
    return {
        f"edgeloop/{package}/{p.relative_to(base).as_posix()}"
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def _fake_tree(root: Path, *, main: bool = True) -> Path:
    """A minimal source tree with caches, hidden files and packages that must all stay out of the zip."""
    files = {
        "edgeloop/__init__.py": "",
        "edgeloop/core/__init__.py": "",
        "edgeloop/core/names.py": "X = 1\n",
        "edgeloop/core/__pycache__/names.cpython-311.pyc": "compiled",
        "edgeloop/core/stale.pyc": "compiled",
        "edgeloop/core/.editor-swap": "junk",
        "edgeloop/core/unused.py": "Z = 3\n",
        "edgeloop/device/__init__.py": "",
        "edgeloop/device/sub/__init__.py": "",
        "edgeloop/device/sub/runtime.py": "from edgeloop.core.names import X\n",
        "edgeloop/device/idle.py": "Y = 2\n",
        "edgeloop/cloud/__init__.py": "",
        "edgeloop/training/__init__.py": "",
        f"greengrass_components/{INFERENCE_COMPONENT}/recipe.template.json": "{}",
        f"greengrass_components/{INFERENCE_COMPONENT}/README.md": "not shipped",
    }
    if main:
        files[f"greengrass_components/{INFERENCE_COMPONENT}/main.py"] = "import edgeloop.device.sub.runtime\n"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_inference_archive_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    first = build_inference_archive(tmp_path / "a")
    second = build_inference_archive(tmp_path / "b")
    data = (tmp_path / "a" / INFERENCE_ARCHIVE).read_bytes()
    assert first == second == hashlib.sha256(data).hexdigest()
    assert data == (tmp_path / "b" / INFERENCE_ARCHIVE).read_bytes()


def test_inference_archive_ignores_file_times_and_modes(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    first = build_inference_archive(tmp_path / "a", root=root)
    names = root / "edgeloop" / "core" / "names.py"
    os.utime(names, (2_000_000_000, 2_000_000_000))
    names.chmod(0o755)
    assert build_inference_archive(tmp_path / "b", root=root) == first


def _device_closure() -> set[str]:
    """The files the inference main.py imports, directly or not, found here by walking imports from the source tree."""
    found: set[str] = set()
    pending = [INFERENCE_COMPONENT_DIR / "main.py"]
    while pending:
        for name in _imports(pending.pop()):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                base = REPO_ROOT.joinpath(*parts[:depth])
                candidates = [base / "__init__.py", base.with_suffix(".py")]
                for path in (p for p in candidates if p.is_file() and parts[0] == "edgeloop"):
                    relative = path.relative_to(REPO_ROOT).as_posix()
                    if relative not in found:
                        found.add(relative)
                        pending.append(path)
    return found


def test_inference_archive_holds_main_and_exactly_what_it_imports(tmp_path: Path) -> None:
    build_inference_archive(tmp_path)
    with zipfile.ZipFile(tmp_path / INFERENCE_ARCHIVE) as archive:
        infos = archive.infolist()
    names = [i.filename for i in infos]
    assert set(names) == {"main.py"} | _device_closure()
    assert names == sorted(names)
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) and i.external_attr >> 16 == 0o100644 for i in infos)
    assert {"edgeloop/__init__.py", "edgeloop/device/component.py", "edgeloop/core/errors.py"} <= set(names)


def test_inference_archive_leaves_simulation_cloud_and_tooling_out(tmp_path: Path) -> None:
    build_inference_archive(tmp_path)
    with zipfile.ZipFile(tmp_path / INFERENCE_ARCHIVE) as archive:
        names = archive.namelist()
    packages = {n.split("/")[1] for n in names if n.startswith("edgeloop/") and n.count("/") > 1}
    assert packages == {"core", "device"}
    assert not [n for n in names if "sim" in n.split("/") or n.endswith("packaging.py")]
    assert _source_files("core") - set(names), "core modules only the cloud side uses stay home"


_IMPORT_UNPACKED = """
import sys
sys.path.insert(0, {folder!r})
import main
import edgeloop.device.component
loaded = {{n: m.__file__ for n, m in sys.modules.items() if n == "main" or n.split(".")[0] == "edgeloop"}}
outside = sorted(n for n, f in loaded.items() if not str(f).startswith({folder!r}))
assert not outside, outside
assert callable(main.main)
"""
"""Import main.py from the unpacked archive; every edgeloop module must come from there (the editable install
would otherwise quietly supply one the archive lacks)."""


def test_inference_archive_unpacked_imports_its_main_with_nothing_else_of_edgeloop(tmp_path: Path) -> None:
    build_inference_archive(tmp_path)
    folder = tmp_path / "inference"
    with zipfile.ZipFile(tmp_path / INFERENCE_ARCHIVE) as archive:
        archive.extractall(folder)
    code = _IMPORT_UNPACKED.format(folder=str(folder))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_inference_archive_main_is_the_components_main(tmp_path: Path) -> None:
    build_inference_archive(tmp_path)
    with zipfile.ZipFile(tmp_path / INFERENCE_ARCHIVE) as archive:
        assert archive.read("main.py") == (INFERENCE_COMPONENT_DIR / "main.py").read_bytes()


def test_inference_archive_leaves_caches_hidden_files_and_other_packages_out(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    build_inference_archive(tmp_path / "out", root=root)
    with zipfile.ZipFile(tmp_path / "out" / INFERENCE_ARCHIVE) as archive:
        assert archive.namelist() == [
            "edgeloop/__init__.py",
            "edgeloop/core/__init__.py",
            "edgeloop/core/names.py",
            "edgeloop/device/__init__.py",
            "edgeloop/device/sub/__init__.py",
            "edgeloop/device/sub/runtime.py",
            "main.py",
        ]


def test_inference_archive_follows_a_module_split_without_a_list(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    runtime = root / "edgeloop" / "device" / "sub" / "runtime.py"
    runtime.write_text("from edgeloop.device import idle\nfrom edgeloop.core.names import X\n")
    build_inference_archive(tmp_path / "out", root=root)
    with zipfile.ZipFile(tmp_path / "out" / INFERENCE_ARCHIVE) as archive:
        names = archive.namelist()
    assert "edgeloop/device/idle.py" in names
    assert "edgeloop/core/unused.py" not in names


@pytest.mark.parametrize("package", ["cloud", "training"])
def test_a_component_importing_code_devices_must_not_run_is_refused(package: str, tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    (root / "edgeloop" / package / "store.py").write_text("X = 1\n")
    (root / "edgeloop" / "device" / "idle.py").write_text(f"from edgeloop.{package}.store import X\n")
    (root / "edgeloop" / "device" / "sub" / "runtime.py").write_text("import edgeloop.device.idle\n")
    reason = rf"main\.py imports edgeloop\.{package} \(through edgeloop/device/idle\.py\); the inference component"
    with pytest.raises(ValidationError, match=reason + r" may use only \('core', 'device'\)"):
        build_inference_archive(tmp_path / "out", root=root)


def test_inference_archive_without_main_names_the_missing_file(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src", main=False)
    with pytest.raises(NotFoundError, match=r"inference main\.py is missing at .*main\.py"):
        build_inference_archive(tmp_path / "out", root=root)


def test_inference_archive_without_a_device_package_names_it(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    (root / "edgeloop" / "device" / "__init__.py").unlink()
    with pytest.raises(NotFoundError, match=r"edgeloop\.device package"):
        build_inference_archive(tmp_path / "out", root=root)


def test_inference_recipe_points_at_the_archive_and_passes_the_schema(
    validate_recipe: Callable[[dict[str, Any]], None],
) -> None:
    recipe = inference_recipe("1.2.3", "s3://bucket/key/inference.zip")
    validate_recipe(recipe)
    assert (recipe["ComponentName"], recipe["ComponentVersion"]) == (INFERENCE_COMPONENT, "1.2.3")
    [manifest] = recipe["Manifests"]
    assert [a["Uri"] for a in manifest["Artifacts"]] == ["s3://bucket/key/inference.zip"]


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", ""])
def test_inference_recipe_refuses_a_non_semantic_version(version: str) -> None:
    with pytest.raises(ValidationError, match="component_version"):
        inference_recipe(version, "s3://bucket/inference.zip")


def _imported_roots(path: Path) -> set[str]:
    """Top-level modules a file imports (absolute imports only; relative ones stay inside the folder)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module)
    return roots


def _imports(path: Path) -> set[str]:
    """Every module name a file imports, with `from a.b import c` also naming a.b.c."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_every_handler_is_found() -> None:
    assert {"training_completed", "model_approved"} <= set(FUNCTIONS)


@pytest.mark.parametrize("function_name", FUNCTIONS)
def test_lambda_asset_holds_the_handler_with_core_and_cloud_only(function_name: str, tmp_path: Path) -> None:
    folder = stage_lambda_asset(function_name, tmp_path)
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    shipped = {"edgeloop/__init__.py"} | _source_files("core") | _source_files("cloud")
    assert folder == tmp_path / function_name
    assert f"{function_name}.py" in files
    assert files - {f"{function_name}.py"} <= shipped, "nothing but core and cloud"
    for path in files - {f"{function_name}.py"}:  # every staged module is imported by something staged
        module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        wanted = {name for other in files for name in _imports(folder / other)}
        assert module.count(".") < 2 or any(w == module or w.startswith(module + ".") for w in wanted), path
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < LAMBDA_ASSET_BUDGET_BYTES


@pytest.mark.parametrize("function_name", FUNCTIONS)
def test_lambda_asset_imports_only_stdlib_boto3_and_staged_edgeloop(function_name: str, tmp_path: Path) -> None:
    folder = stage_lambda_asset(function_name, tmp_path)
    allowed = set(sys.stdlib_module_names) | LAMBDA_RUNTIME_MODULES | {"edgeloop"}
    for path in folder.rglob("*.py"):
        modules = _imported_roots(path)
        assert not {m.split(".")[0] for m in modules} & DEVICE_ONLY_MODULES, path
        assert {m.split(".")[0] for m in modules} <= allowed, path
        for module in (m for m in modules if m.startswith("edgeloop.")):
            parts = module.split(".")
            staged = folder.joinpath(*parts)
            assert staged.with_suffix(".py").is_file() or (staged / "__init__.py").is_file(), (path, module)


_BLOCKING_IMPORT = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(name + " is not in the Lambda runtime")
sys.meta_path.insert(0, Block())
import {handler}, edgeloop
assert edgeloop.__file__.startswith({folder!r}), edgeloop.__file__
assert callable({handler}.handler)
"""


@pytest.mark.parametrize("function_name", FUNCTIONS)
def test_lambda_asset_imports_in_a_runtime_without_device_packages(function_name: str, tmp_path: Path) -> None:
    folder = stage_lambda_asset(function_name, tmp_path)
    code = _BLOCKING_IMPORT.format(blocked=DEVICE_ONLY_MODULES, handler=function_name, folder=str(folder))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_lambda_asset_is_deterministic_and_restaging_drops_stale_files(tmp_path: Path) -> None:
    first = _tree_digest(stage_lambda_asset(FUNCTIONS[0], tmp_path / "a"))
    folder = stage_lambda_asset(FUNCTIONS[0], tmp_path / "b")
    (folder / "stale.py").write_text("left over\n")
    restaged = stage_lambda_asset(FUNCTIONS[0], tmp_path / "b")
    assert not (restaged / "stale.py").exists()
    assert _tree_digest(restaged) == first


def test_lambda_asset_leaves_caches_and_other_packages_out(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    (root / "functions").mkdir()
    (root / "functions" / "probe.py").write_text(
        "from edgeloop.core.names import X\n\ndef handler(event, context):\n    return {}\n"
    )
    (root / "edgeloop" / "cloud" / "__pycache__").mkdir()
    (root / "edgeloop" / "cloud" / "__pycache__" / "x.pyc").write_text("compiled")
    folder = stage_lambda_asset("probe", tmp_path / "out", root=root)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["edgeloop/__init__.py", "edgeloop/core/__init__.py", "edgeloop/core/names.py", "probe.py"]


def test_lambda_asset_holds_only_what_the_handler_imports_transitively(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    (root / "edgeloop" / "cloud" / "store.py").write_text("from edgeloop.core import names\n")
    (root / "edgeloop" / "core" / "unused.py").write_text("X = 1\n")
    (root / "functions").mkdir()
    (root / "functions" / "probe.py").write_text("import edgeloop.cloud.store\n")
    folder = stage_lambda_asset("probe", tmp_path / "out", root=root)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "edgeloop/core/names.py" in files
    assert "edgeloop/cloud/store.py" in files
    assert "edgeloop/core/unused.py" not in files


def test_a_handler_importing_device_code_is_refused_at_staging(tmp_path: Path) -> None:
    root = _fake_tree(tmp_path / "src")
    (root / "functions").mkdir()
    (root / "functions" / "probe.py").write_text("from edgeloop.device.runtime import DeviceRuntime\n")
    with pytest.raises(ValidationError, match=r"probe.py imports edgeloop.device.*only \('core', 'cloud'\)"):
        stage_lambda_asset("probe", tmp_path / "out", root=root)


def test_lambda_asset_for_a_missing_handler_names_it(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"handler of Lambda 'no_such_function' is missing"):
        stage_lambda_asset("no_such_function", tmp_path)


@pytest.mark.parametrize("name", ["../etc", "Training", "a-b", "", "x" * 65])
def test_lambda_asset_refuses_a_name_that_is_not_a_module(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="function_name"):
        stage_lambda_asset(name, tmp_path)
