"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from support import load_event


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    """Load a real-shaped sample event from tests/events/ by file stem."""
    return load_event
