"""Write job outputs so a reader sees a whole model or none: stage beside the model dir, then rename."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from edgeloop.core.errors import ConfigError


def prepare_dirs(model_dir: Path, output_data_dir: Path | None) -> None:
    """Fail before training, not after, when an output location cannot be written."""
    if model_dir.exists() and not model_dir.is_dir():
        raise ConfigError("model_dir", f"{str(model_dir)!r} exists and is not a directory")
    for where, path in (("model_dir", model_dir.parent), ("output_data_dir", output_data_dir)):
        if path is None:
            continue
        try:
            path.mkdir(parents=True, exist_ok=True)
            Path(tempfile.mkdtemp(prefix=".edgeloop-probe-", dir=path)).rmdir()
        except OSError as exc:
            raise ConfigError(where, f"cannot write in {str(path)!r} ({exc.strerror or exc})") from exc


def publish(model_dir: Path, files: Mapping[str, bytes], remove: Iterable[str] = ()) -> dict[str, Path]:
    """Put files into model_dir all at once; the last file named is moved last (make it the manifest).

    `remove` names files of an earlier run that the new manifest no longer lists; they go after it is in place.

    Files are staged in a temporary folder next to model_dir. A missing model_dir is created by
    renaming the whole folder (atomic); an existing one (SageMaker's /opt/ml/model, maybe a mount)
    gets one atomic replace per file, so a reader that waits for the manifest never sees a partial model.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.staging-", dir=model_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; as the model dir it must be readable like any other
    try:
        for name, data in files.items():
            _write_synced(staging / name, data)
        if not model_dir.exists():
            staging.rename(model_dir)
        else:
            for name in files:
                _replace(staging / name, model_dir / name)
            for name in remove:
                (model_dir / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: model_dir / name for name in files}


def write_atomic(path: Path, data: bytes) -> Path:
    """Write one file through a temporary sibling and a rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    _write_synced(temporary, data)
    os.replace(temporary, path)
    return path


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace(source: Path, target: Path) -> None:
    """Rename into place; across file systems, copy beside the target first so the final step is a rename."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        write_atomic(target, source.read_bytes())
