"""``memory://NAME``: an in-process store, shared by name, for tests and examples.

Nothing survives the process; everything else follows the Store contract.
Thread-safe: one lock per named store.
"""

from __future__ import annotations

import itertools
import threading
from typing import Optional

from .base import Expect, Record, Store, check_data, check_expect, check_key, check_prefix, match_expect

__all__ = ["MemoryStore", "open_memory"]


class _Space:
    """The shared contents behind every ``MemoryStore`` opened with one name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, Record] = {}
        self.versions = itertools.count(1)  # never reset, so versions never repeat


_spaces: dict[str, _Space] = {}
_spaces_lock = threading.Lock()


class MemoryStore(Store):
    """A store held in this process's memory. ``MemoryStore()`` alone is private."""

    def __init__(self, name: Optional[str] = None) -> None:
        if name is None:
            self._space = _Space()
            self.url = "memory://"
        else:
            with _spaces_lock:
                self._space = _spaces.setdefault(name, _Space())
            self.url = f"memory://{name}"

    def get(self, key: str) -> Optional[Record]:
        check_key(key)
        with self._space.lock:
            return self._space.records.get(key)

    def put(self, key: str, data: bytes, *, expect: Expect = None) -> str:
        check_key(key)
        data = check_data(key, data)
        check_expect(key, expect)
        space = self._space
        with space.lock:
            match_expect(key, expect, _version_of(space.records.get(key)))
            version = str(next(space.versions))
            space.records[key] = Record(data, version)
            return version

    def delete(self, key: str, *, expect: Expect = None) -> bool:
        check_key(key)
        check_expect(key, expect)
        with self._space.lock:
            match_expect(key, expect, _version_of(self._space.records.get(key)))
            return self._space.records.pop(key, None) is not None

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        with self._space.lock:
            return sorted(k for k in self._space.records if k.startswith(prefix))


def _version_of(record: Optional[Record]) -> Optional[str]:
    return record.version if record is not None else None


def open_memory(url: str) -> MemoryStore:
    """Open ``memory://NAME`` (every call with one NAME shares one store)."""
    name = url[len("memory://"):]
    if not name:
        raise ValueError(
            f"{url!r} has no name: use memory://NAME (stores opened with the same NAME "
            f"share their records within this process)"
        )
    return MemoryStore(name)
