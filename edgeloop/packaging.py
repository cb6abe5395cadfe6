"""Build what leaves the repository: the inference component's zip and recipe, and each Lambda's folder.

Used by the CDK app and by the local stack, so both ship byte-identical code. It reads files from
the source tree (an editable install), which is why it lives outside the pure core.
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeloop.core.errors import NotFoundError, ValidationError
from edgeloop.core.names import INFERENCE_COMPONENT
from edgeloop.core.recipes import INFERENCE_ARCHIVE, inference_recipe_values, render_recipe

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
INFERENCE_COMPONENT_DIR = REPO_ROOT / "greengrass_components" / INFERENCE_COMPONENT
FUNCTIONS_DIR = REPO_ROOT / "functions"
RECIPE_TEMPLATE = "recipe.template.json"
COMPONENT_ENTRY = "main.py"
DEVICE_PACKAGES = ("core", "device")
"""Subpackages of edgeloop the inference component may import; the archive holds only the modules it does."""
LAMBDA_PACKAGES = ("core", "cloud")
"""Subpackages of edgeloop a handler may import; boto3 comes from the Lambda runtime."""

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_ZIP_FILE_MODE = 0o100644
_UNIX = 3
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})


def inference_recipe(
    component_version: str,
    archive_uri: str,
    *,
    root: Path = REPO_ROOT,
    fleet_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The inference component's recipe, rendered from the template and the core's names (and fleet defaults)."""
    if not _SEMVER.match(component_version):
        raise ValidationError("component_version", f"{component_version!r} is not MAJOR.MINOR.PATCH")
    template = _require(_component_dir(root) / RECIPE_TEMPLATE, "the inference recipe template")
    values = inference_recipe_values(component_version, archive_uri, fleet_config)
    return render_recipe(template.read_text(encoding="utf-8"), values)


def build_inference_archive(dest: Path, *, root: Path = REPO_ROOT) -> str:
    """Write dest/inference.zip reproducibly and return its sha256 hex: same sources, same bytes.

    It holds main.py and only the edgeloop modules main.py imports, directly or not (DEVICE_PACKAGES at most):
    what the device runs, computed from the imports, so a module split or added in edgeloop.device ships
    without a list to update and nothing the device never imports (simulation, cloud code) rides along.
    Entries sit at the archive root (main.py, edgeloop/...): Greengrass unpacks inference.zip into
    {artifacts:decompressedPath}/inference/, which is where the recipe's Run script looks.
    Entries are stored, not deflated, so the bytes do not depend on the zlib build either.
    """
    main = _require(_component_dir(root) / COMPONENT_ENTRY, "the inference main.py")
    entries = [(COMPONENT_ENTRY, main), *_imported_entries(root, main, DEVICE_PACKAGES, "the inference component")]
    data = _zip_bytes(entries)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / INFERENCE_ARCHIVE).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    log.info("built %s: %d files, %d bytes, sha256 %s", dest / INFERENCE_ARCHIVE, len(entries), len(data), digest)
    return digest


def stage_lambda_asset(function_name: str, dest: Path, *, root: Path = REPO_ROOT) -> Path:
    """Stage dest/<function_name>/ as a plain folder Lambda runs as is; returns that folder.

    It holds functions/<function_name>.py and only edgeloop's core and cloud packages, copied
    without timestamps or caches, so the CDK asset hash changes only when the code does.
    """
    if not _FUNCTION_NAME.match(function_name):
        raise ValidationError("function_name", f"{function_name!r} must be a lowercase Python module name")
    handler = _require(root / "functions" / f"{function_name}.py", f"the handler of Lambda {function_name!r}")
    entries = [(handler.name, handler), *_imported_entries(root, handler, LAMBDA_PACKAGES, "Lambdas")]
    target = dest / function_name
    if target.exists():
        shutil.rmtree(target)
    for name, source in entries:
        out = target / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, out)
    log.info("staged Lambda %s in %s: %d files", function_name, target, len(entries))
    return target


def _component_dir(root: Path) -> Path:
    return _require(root / "greengrass_components" / INFERENCE_COMPONENT, "the inference component folder")


def _require(path: Path, what: str) -> Path:
    """Name the missing piece and the likely cause instead of failing later with a bare OSError."""
    if not path.exists():
        raise NotFoundError(
            f"{what} is missing at {path}; edgeloop packages its own source tree, so use a git checkout "
            "with an editable install (pip install -e .)"
        )
    return path


def _imported_entries(root: Path, entry: Path, packages: tuple[str, ...], who: str) -> list[tuple[str, Path]]:
    """(archive name, file) of every edgeloop module the entry imports, directly or not, with their packages.

    Only the given subpackages may be reached: an import of anything else is refused here, before an
    artifact that cannot start (or that carries code it must not) is deployed.
    """
    seen: set[Path] = set()
    pending = [entry]
    while pending:
        source = pending.pop()
        for module in _edgeloop_imports(source):
            for name in _with_parents(module):
                path = _module_file(root, name)
                inside = path.relative_to(root / "edgeloop").parts
                if len(inside) > 1 and inside[0] not in packages:
                    via = "" if source == entry else f" (through {source.relative_to(root).as_posix()})"
                    reason = f"{entry.name} imports {name}{via}; {who} may use only {packages}"
                    raise ValidationError(entry.parent.name, reason)
                if path not in seen:
                    seen.add(path)
                    pending.append(path)
    return sorted((path.relative_to(root).as_posix(), path) for path in seen)


def _edgeloop_imports(path: Path) -> set[str]:
    """Absolute `edgeloop...` module names a file imports (`from edgeloop.core import wire` names both)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "edgeloop"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "edgeloop":
            module = str(node.module)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _with_parents(module: str) -> list[str]:
    """edgeloop.core.wire -> edgeloop, edgeloop.core, edgeloop.core.wire (a package's __init__ runs first)."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _module_file(root: Path, module: str) -> Path:
    """The source file of a module or package; a `from package import name` name that is no module is skipped."""
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if base.is_dir():  # a folder without __init__.py would ship as a namespace package, missing its init
        return _require(base / "__init__.py", f"the {module} package")
    if "." not in module:
        raise NotFoundError(f"module {module} is not in {root}")
    return _module_file(root, module.rsplit(".", 1)[0])


def _zip_bytes(entries: list[tuple[str, Path]]) -> bytes:
    """A zip of the entries in name order with fixed times and modes: only content decides the bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, source in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = _UNIX
            info.external_attr = _ZIP_FILE_MODE << 16
            archive.writestr(info, source.read_bytes())
    return buffer.getvalue()
