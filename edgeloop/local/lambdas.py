"""Stand-in for EventBridge + Lambda: real-shaped events go to the real handlers in functions/."""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edgeloop.core import wire
from edgeloop.core.errors import NotFoundError
from edgeloop.core.events import EVENT_ROUTES
from edgeloop.packaging import FUNCTIONS_DIR

log = logging.getLogger(__name__)


def load_function(name: str) -> ModuleType:
    """Import functions/<name>.py by path, as Lambda would load the staged asset's module."""
    path = FUNCTIONS_DIR / f"{name}.py"
    if not path.is_file():
        raise NotFoundError(f"no Lambda handler {path}")
    spec = importlib.util.spec_from_file_location(f"edgeloop_local_functions.{name}", path)
    if spec is None or spec.loader is None:
        raise NotFoundError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Invocation:
    """One handler run: what it got and what it returned."""

    function: str
    detail_type: str
    result: Mapping[str, Any]


class LocalEventBus:
    """Routes events to handlers by detail-type (EVENT_ROUTES), invoking each with injected adapters.

    Unlike Lambda's asynchronous invoke, errors propagate to the caller at once, so the demo fails loudly.
    """

    def __init__(self, deps: Mapping[str, Mapping[str, Any]]) -> None:
        self._deps = deps
        self._modules = {name: load_function(name) for name in deps}
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()

    def put(self, event: Mapping[str, Any]) -> Invocation:
        """Deliver one event to the handler its rule names."""
        detail_type = wire.text(event, "detail-type", "event")
        function = EVENT_ROUTES.get(detail_type)
        if function is None or function not in self._modules:
            raise NotFoundError(f"no rule routes {detail_type!r} to a local handler")
        return self._run(function, detail_type, event)

    def invoke(self, function: str, event: Mapping[str, Any]) -> Invocation:
        """A direct (RequestResponse) invoke of one handler, as the schedule and the health rule do."""
        if function not in self._modules:
            raise NotFoundError(f"no local handler {function!r}; expected one of {sorted(self._modules)}")
        return self._run(function, "invoke", event)

    def _run(self, function: str, detail_type: str, event: Mapping[str, Any]) -> Invocation:
        result = self._modules[function].handle(dict(event), dict(self._deps[function]))
        log.info("%s <- %s: %s", function, detail_type, result)
        invocation = Invocation(function, detail_type, result)
        with self._lock:
            self.invocations.append(invocation)
        return invocation
