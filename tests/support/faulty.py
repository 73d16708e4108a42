"""Stores that fail the way real ones do, at chosen moments, for the failure-path tests.

``Faulty`` wraps a real store (a local folder on the real file system, in the tests)
and makes chosen writes fail: it stands for a disk or a service that refuses one
request (a full disk for a moment, a Drive 5xx after its retries, a dropped
connection). A write it fails either did not happen (``lands=False``: the
request was refused) or happened and lost its answer (``lands=True``), as the Store
contract allows: "a write that failed may have landed". ``KillAt`` stands for a
runtime that vanishes: it SIGKILLs its own process at the n-th write, before or
after the write reached the store. Both override only the store's public operations.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable, Optional

from sessionkit.errors import StoreError
from sessionkit.store import Store


class Wrapped(Store):
    """Every operation goes to ``inner``; subclasses decide before or after each write."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url
        self.remote = getattr(inner, "remote", False)

    def get(self, key):
        return self.inner.get(key)

    def list(self, prefix=""):
        return self.inner.list(prefix)

    def get_file(self, key, path):
        return self.inner.get_file(key, path)

    def put(self, key, data, *, expect=None):
        return self.write("put", key, lambda: self.inner.put(key, data, expect=expect))

    def put_file(self, key, path):
        return self.write("put_file", key, lambda: self.inner.put_file(key, path))

    def delete(self, key, *, expect=None):
        return self.write("delete", key, lambda: self.inner.delete(key, expect=expect))

    def write(self, op: str, key: str, do: Callable[[], object]):
        return do()


class Faulty(Wrapped):
    """Fails the writes ``fails(op, key, n)`` picks (``n`` counts the writes matching it so
    far, from 1); ``lands``: the failed write reached the store first."""

    def __init__(self, inner: Store, fails: Callable[[str, str, int], bool], *, lands: bool = False) -> None:
        super().__init__(inner)
        self.fails, self.lands = fails, lands
        self.failed: list[str] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def write(self, op, key, do):
        with self._lock:
            kind = key.split("/", 1)[0]
            n = self._counts[kind] = self._counts.get(kind, 0) + 1
            fail = self.fails(op, key, n)
        if not fail:
            return do()
        if self.lands:
            do()
        self.failed.append(key)
        raise StoreError(f"{op} {key!r}: injected failure ({'landed, answer lost' if self.lands else 'refused'})",
                         key=key)


class KillAt(Wrapped):
    """SIGKILLs this process at write number ``at`` (from 1), before it reaches the store
    or, with ``after=True``, once it has landed. ``at=0``: never; the count is printed at
    exit by the worker that uses it."""

    def __init__(self, inner: Store, at: int, *, after: bool = False) -> None:
        super().__init__(inner)
        self.at, self.after = at, after
        self.count = 0
        self._lock = threading.Lock()

    def write(self, op, key, do):
        with self._lock:
            self.count += 1
            kill = self.count == self.at
        if kill and not self.after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = do()
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        return result


def matching(prefix: str, nth: Optional[int] = None) -> Callable[[str, str, int], bool]:
    """Fail writes under ``prefix`` (only the ``nth`` of them, when given)."""
    kind = prefix.split("/", 1)[0]

    def fails(op: str, key: str, n: int) -> bool:
        return key.startswith(prefix) and key.split("/", 1)[0] == kind and (nth is None or n == nth)
    return fails
