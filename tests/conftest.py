"""Shared fixtures. ``STORE_BACKENDS`` is where every backend plugs into the contract suite."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

import sessionkit
from sessionkit.store.memory import MemoryStore

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

_names = itertools.count()

# backend name -> factory(tmp_path) returning a fresh, empty store.
STORE_BACKENDS: dict[str, Callable[[Path], sessionkit.Store]] = {
    "local": lambda tmp: sessionkit.open_store(tmp / "store"),
    "memory": lambda tmp: sessionkit.open_store(f"memory://contract-{next(_names)}"),
    "memory-private": lambda tmp: MemoryStore(),
}


@pytest.fixture(params=sorted(STORE_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionkit.Store]:
    s = STORE_BACKENDS[request.param](tmp_path)
    yield s
    s.close()
