"""The model manager: verify a new model, swap it in atomically, keep verified versions and roll back locally.

A model component version is copied out of the Greengrass artifacts into the component's own store
(`<store>/<component>/<version>/`) and verified there (manifest signature when a key is configured, artifact
SHA-256, session shape, golden self-test), so the bytes that were verified are the bytes kept, and a rollback never
depends on Greengrass still having the old artifacts. A copy cut short by a crash is caught by the same
verification when it is next loaded. The activation order and the version that failed probation are kept in
`<store>/index.json`, so a restart neither loses the rollback targets nor re-activates a bad version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from edgeloop.core import wire
from edgeloop.core.errors import EdgeloopError, ModelFormatError, NotFoundError, ValidationError
from edgeloop.core.health import DETAIL_MAX_BYTES, ModelState, clip
from edgeloop.core.manifest import MANIFEST_FILE
from edgeloop.core.names import INFERENCE_COMPONENT, model_component_name, model_version_from_component
from edgeloop.core.probation import ModelStatus, Probation, ProbationPolicy, Verdict, failure_reason, verdict
from edgeloop.core.settings import DeviceConfig
from edgeloop.core.signing import MANIFEST_SIGNATURE_FILE
from edgeloop.device.onnx_model import LoadedModel, read_manifest
from edgeloop.device.signing import verify_manifest_signature

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
STORE_FOLDER = "models"
STAGING_PREFIX = ".staging-"

Loader = Callable[[Path, int, DeviceConfig], LoadedModel]
"""Loads and self-tests the model in a folder (the runtime's engine settings applied)."""


def default_store_dir(model_root: Path) -> Path:
    """The component's work folder on a Greengrass layout: <root>/work/<inference component>/models."""
    if model_root.parts[-2:] != ("packages", "artifacts"):
        raise ValidationError("store_dir", f"cannot derive it from {model_root}; pass the component's work folder")
    return model_root.parent.parent / "work" / INFERENCE_COMPONENT / STORE_FOLDER


@dataclass(frozen=True)
class KeptVersion:
    """One model component version, as the configuration names it."""

    component: str
    version: str

    @property
    def label(self) -> str:
        """How logs and the health detail name it."""
        return f"{self.component} {self.version}"

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"component": self.component, "version": self.version}

    @classmethod
    def from_dict(cls, data: object) -> KeptVersion:
        """Parse one index entry."""
        d = wire.mapping(data, "index.kept[]")
        wire.only_keys(d, {"component", "version"}, "index.kept[]")
        return cls(wire.text(d, "component", "index"), wire.text(d, "version", "index"))


@dataclass(frozen=True)
class StoreIndex:
    """Kept versions in activation order (newest last) and the version that must not come back by itself."""

    kept: tuple[KeptVersion, ...] = ()
    blocked: KeptVersion | None = None
    blocked_reason: str = ""

    def to_json(self) -> str:
        """The index file's content."""
        blocked = self.blocked.to_dict() if self.blocked else None
        data = {"kept": [k.to_dict() for k in self.kept], "blocked": blocked, "blocked_reason": self.blocked_reason}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StoreIndex:
        """Parse the index file; anything unexpected raises ValidationError."""
        try:
            data = wire.mapping(json.loads(text), "index")
        except json.JSONDecodeError as exc:
            raise ValidationError("index", f"is not JSON ({exc})") from exc
        wire.only_keys(data, {"kept", "blocked", "blocked_reason"}, "index")
        blocked = data.get("blocked")
        return cls(
            kept=tuple(KeptVersion.from_dict(k) for k in wire.sequence(data, "kept", "index")),
            blocked=None if blocked is None else KeptVersion.from_dict(blocked),
            blocked_reason=wire.text(data, "blocked_reason", "index", allow_empty=True),
        )

    def with_newest(self, entry: KeptVersion, keep_previous: int) -> tuple[StoreIndex, tuple[KeptVersion, ...]]:
        """The entry moved to newest, and the older entries beyond keep_previous that must go."""
        kept = (*(k for k in self.kept if k != entry), entry)
        cut = max(0, len(kept) - keep_previous - 1)
        return replace(self, kept=kept[cut:]), kept[:cut]


class ModelStore:
    """Verified model versions in the component's work folder, with an index that survives restarts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index_path = root / INDEX_FILE

    def path(self, entry: KeptVersion) -> Path:
        """Where a kept version lives."""
        return self.root / entry.component / entry.version

    def index(self) -> StoreIndex:
        """The index; a corrupt one is set aside (kept for inspection) and the store starts over empty."""
        try:
            return StoreIndex.from_json(self._index_path.read_text())
        except FileNotFoundError:
            return StoreIndex()
        except (ValidationError, UnicodeDecodeError) as exc:
            aside = self._index_path.with_suffix(".corrupt")
            log.error("model store index %s is corrupt (%s); moved to %s, starting empty", self._index_path, exc, aside)
            os.replace(self._index_path, aside)
            return StoreIndex()

    def staging(self, entry: KeptVersion) -> Path:
        """The folder a version is copied into and verified in before it is kept."""
        return self.root / entry.component / f"{STAGING_PREFIX}{entry.version}"

    def stage(self, entry: KeptVersion, source: Path, check_manifest: Callable[[Path], None]) -> Path:
        """Copy the manifest and its signature, check them before parsing, then copy the artifact it selects."""
        staged = self.staging(entry)
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name in (MANIFEST_FILE, MANIFEST_SIGNATURE_FILE):
            if (source / name).is_file():
                shutil.copy2(source / name, staged / name)
        check_manifest(staged)
        selected = read_manifest(staged).selected
        if (source / selected).is_file():
            shutil.copy2(source / selected, staged / selected)
        return staged

    def commit(self, entry: KeptVersion, staged: Path | None, keep_previous: int) -> None:
        """Make a verified version the newest kept one (moving its staged copy in place) and prune the oldest."""
        if staged is not None:
            target = self.path(entry)
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
        index, pruned = self.index().with_newest(entry, keep_previous)
        self._write(index)
        for old in pruned:
            log.info("pruning kept model %s", old.label)
            shutil.rmtree(self.path(old), ignore_errors=True)

    def discard(self, entry: KeptVersion) -> None:
        """Forget a version that failed (probation or a reload) and delete its copy."""
        index = self.index()
        self._write(replace(index, kept=tuple(k for k in index.kept if k != entry)))
        shutil.rmtree(self.path(entry), ignore_errors=True)

    def block(self, entry: KeptVersion | None, reason: str = "") -> None:
        """Remember (or with None, forget) the version that must not be activated again automatically."""
        self._write(replace(self.index(), blocked=entry, blocked_reason=reason))

    def _write(self, index: StoreIndex) -> None:
        """Replace the index atomically and durably (write, fsync, rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._index_path.with_suffix(".tmp")
        with tmp.open("w") as f:
            f.write(index.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._index_path)


@dataclass
class _Serving:
    """What serves now and how it got there; replaced as a whole under the manager's lock."""

    model: LoadedModel | None = None
    entry: KeptVersion | None = None
    state: ModelState = ModelState.NONE
    detail: str = "no model configured"
    activated_at: float | None = None
    signed: bool | None = None
    probation: Probation | None = field(default=None)


class ModelManager:
    """Verifies, activates, keeps and rolls back model versions; the runtime only asks it which model serves."""

    def __init__(self, *, model_root: Path, store_dir: Path, clock: Callable[[], float], loader: Loader) -> None:
        self._model_root = model_root
        self._store = ModelStore(store_dir)
        self._clock = clock
        self._loader = loader
        self._config = DeviceConfig()
        self._lock = threading.Lock()
        """Guards _serving and _rollbacks: held only for reads and one-step swaps, never during a load."""
        self._load_lock = threading.Lock()
        """One verification or rollback at a time."""
        self._serving = _Serving()
        self._rollbacks = 0

    @property
    def store(self) -> ModelStore:
        """The kept versions (read by tests and tools)."""
        return self._store

    def active(self) -> LoadedModel | None:
        """The model that answers requests now; a batch keeps the model it started with."""
        with self._lock:
            return self._serving.model

    def status(self) -> ModelStatus:
        """A consistent snapshot for the health report."""
        with self._lock:
            s, rollbacks = self._serving, self._rollbacks
        policy = ProbationPolicy.from_config(self._config)
        watching = s.probation is not None and verdict(policy, s.probation, self._clock()) is Verdict.WATCHING
        return ModelStatus(
            state=s.state,
            detail=s.detail,
            model_name=s.model.manifest.model_name if s.model else None,
            version=s.model.version if s.model else None,
            component_version=s.entry.version if s.entry else None,
            activated_at=s.activated_at,
            rollbacks=rollbacks,
            signed=s.signed,
            on_probation=watching,
        )

    def configure(self, config: DeviceConfig) -> None:
        """Take the settings that need no reload (probation policy, kept-version count)."""
        self._config = config

    def clear(self, detail: str) -> None:
        """Serve no model (the configuration names none)."""
        with self._load_lock:
            self._store.block(None)
            self._swap(_Serving(detail=_clip(detail)))

    def activate(self, config: DeviceConfig) -> None:
        """Verify the configured version and swap it in; on failure keep (or fall back to) a verified one."""
        with self._load_lock:
            self._config = config
            entry = KeptVersion(config.modelComponent, config.modelComponentVersion)
            index = self._store.index()
            if index.blocked == entry:
                self._fall_back(
                    ModelState.ROLLED_BACK, f"{entry.label} stays rolled back: {index.blocked_reason}", entry
                )
                return
            if index.blocked is not None:
                self._store.block(None)
            self._set_state(ModelState.VERIFYING, f"verifying {entry.label}")
            try:
                model, signed = self._verify(entry, config)
            except (EdgeloopError, OSError) as exc:
                log.error("model %s rejected, keeping the previous one: %s", entry.label, exc)
                self._reject(entry, f"{entry.label} rejected: {exc}")
                return
            log.info("model %s active", entry.label)
            with self._lock:
                current = self._serving.probation if self._serving.entry == entry else Probation(self._clock())
            probation = None if config.probationSeconds == 0 else current
            detail = f"{entry.label} active ({'signed' if signed else 'unsigned: no modelPublicKey configured'})"
            self._swap(_Serving(model, entry, ModelState.ACTIVE, detail, self._clock(), signed, probation))

    def observe(self, model: LoadedModel, *, requests: int, errors: int) -> None:
        """Count a batch's outcome against the model on probation; too many errors roll it back."""
        with self._lock:
            probation = self._serving.probation
            if probation is None or model is not self._serving.model:
                return
            policy = ProbationPolicy.from_config(self._config)
            now = self._clock()
            probation = probation.observe(policy, now, requests, errors)
            outcome = verdict(policy, probation, now)
            self._serving = replace(self._serving, probation=None if outcome is Verdict.PASSED else probation)
        if outcome is Verdict.PASSED:
            log.info("model %s passed probation (%d requests)", model.version, probation.requests)
        elif outcome is Verdict.FAILED:
            self._roll_back(model, failure_reason(policy, probation))

    def _roll_back(self, model: LoadedModel, reason: str) -> None:
        """Put the previous kept version back; skipped while a configuration change is being applied."""
        if not self._load_lock.acquire(blocking=False):
            return
        try:
            with self._lock:
                entry = self._serving.entry
                if model is not self._serving.model or self._serving.probation is None or entry is None:
                    return
                self._serving = replace(self._serving, probation=None)
                self._rollbacks += 1
            log.error("model %s failed probation, rolling back: %s", entry.label, reason)
            self._store.block(entry, reason)
            self._store.discard(entry)
            self._fall_back(ModelState.ROLLED_BACK, f"{entry.label} rolled back: {reason}", entry)
        finally:
            self._load_lock.release()

    def _verify(self, entry: KeptVersion, config: DeviceConfig) -> tuple[LoadedModel, bool]:
        """Copy the artifacts into the store, verify the copy, then keep it (or reuse a kept copy if they are gone)."""
        source = self._model_root / entry.component / entry.version
        if source.is_dir():
            try:
                staged = self._store.stage(entry, source, partial(_check_signature, config=config))
                loaded = self._check(staged, entry, config)
            except BaseException:
                shutil.rmtree(self._store.staging(entry), ignore_errors=True)
                raise
            self._store.commit(entry, staged, config.keepModelVersions)
            return loaded
        if self._store.path(entry).is_dir():
            loaded = self._check(self._store.path(entry), entry, config)
            self._store.commit(entry, None, config.keepModelVersions)
            return loaded
        raise NotFoundError(f"no artifacts in {source} and no kept copy")

    def _check(self, folder: Path, entry: KeptVersion, config: DeviceConfig) -> tuple[LoadedModel, bool]:
        """Signature (when a key is configured), then digest, session and self-test; and the right model."""
        _check_signature(folder, config=config)
        model = self._loader(folder, model_version_from_component(entry.version), config)
        if model_component_name(model.manifest.model_name) != entry.component:
            raise ModelFormatError(f"{entry.label} holds model {model.manifest.model_name!r}, not {entry.component}")
        return model, bool(config.modelPublicKey)

    def _reject(self, entry: KeptVersion, detail: str) -> None:
        """Keep serving the current model unless it failed, or unless a key is configured (then every candidate,
        the current one included, is re-verified against it): an unsigned model never outlives a new key."""
        with self._lock:
            keep = self._serving.model is not None and self._serving.entry != entry and not self._config.modelPublicKey
            if keep:
                self._serving = replace(self._serving, state=ModelState.REJECTED, detail=_clip(detail))
        if not keep:
            self._fall_back(ModelState.REJECTED, detail, entry)

    def _fall_back(self, state: ModelState, detail: str, bad: KeptVersion) -> None:
        """Serve the newest kept version other than the bad one, re-verified from the store; none if none loads."""
        for entry in reversed(self._store.index().kept):
            if entry == bad:
                continue
            try:
                model, signed = self._check(self._store.path(entry), entry, self._config)
            except (EdgeloopError, OSError) as exc:
                log.error("kept model %s does not load, trying an older one: %s", entry.label, exc)
                continue
            text = f"{detail}; serving {entry.label} from the local store"
            self._swap(_Serving(model, entry, state, _clip(text), self._clock(), signed))
            return
        self._swap(_Serving(None, None, state, _clip(f"{detail}; no previous version kept")))

    def _swap(self, serving: _Serving) -> None:
        """Replace what serves in one step."""
        with self._lock:
            self._serving = serving

    def _set_state(self, state: ModelState, detail: str) -> None:
        with self._lock:
            self._serving = replace(self._serving, state=state, detail=_clip(detail))


def _check_signature(folder: Path, *, config: DeviceConfig) -> None:
    """The manifest's signature, when the configuration carries a public key (else the model runs unsigned)."""
    if config.modelPublicKey:
        verify_manifest_signature(folder, config.modelPublicKey)


def _clip(detail: str) -> str:
    """Cut a detail to the health report's budget, so an error message cannot push the shadow past its limit."""
    return clip(detail, DETAIL_MAX_BYTES)
