"""Process-wide state, in one shape: a ``Registry`` of values by key, behind one lock.

A process holds a little state for as long as it lives: the primary a kernel started for
each store, the drop watcher for each store, the jobs whose loop ended early, the SIGTERM
handler in place. Each is one ``Registry`` instance, made at import by the module it
belongs to, typed by what it holds (``Registry[str, Primary]``). ``weak=True`` keeps no
value alive (a value that is garbage collected leaves its registry by itself), which is
how a registry of live objects is a set: ``add`` files a value under its own identity.

``reset()`` takes a registry back to its ``initial`` entries (the built-in store schemes)
and runs its ``on_reset`` (which undoes what the
registry's owner installed in the process: a signal handler, an exit hook), so a test
can start from a fresh process's state; ``registries()`` lists them all.
"""

from __future__ import annotations

import threading
import weakref
from typing import Callable, Generic, Hashable, Iterator, Mapping, MutableMapping, Optional, TypeVar

__all__ = ["Registry", "registries"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_ALL: "weakref.WeakValueDictionary[str, Registry]" = weakref.WeakValueDictionary()


class Registry(Generic[K, V]):
    """Values by key for this process; every operation holds the registry's lock."""

    def __init__(self, name: str, *, initial: Optional[Mapping[K, V]] = None, weak: bool = False,
                 on_reset: Optional[Callable[[], None]] = None) -> None:
        self.name = name  # its module and what it holds, e.g. "notebook.kernel_primaries"
        self.weak = weak
        self.lock = threading.RLock()  # re-entrant: held across compound steps, maybe by a signal handler
        self._on_reset = on_reset
        self._initial = dict(initial or {})  # what a fresh process has (built-in entries)
        self._values: MutableMapping[K, V] = weakref.WeakValueDictionary() if weak else {}
        self._values.update(self._initial)
        _ALL[name] = self  # a module reloaded replaces its registry

    def get(self, key: K, default: Optional[V] = None) -> Optional[V]:
        with self.lock:
            return self._values.get(key, default)

    def put(self, key: K, value: V) -> V:
        with self.lock:
            self._values[key] = value
            return value

    def pop(self, key: K, default: Optional[V] = None) -> Optional[V]:
        with self.lock:
            return self._values.pop(key, default)

    def get_or_make(self, key: K, make: Callable[[], V], *, keep: Callable[[V], bool] = lambda v: True) -> V:
        """The value under ``key`` if there is one that ``keep`` accepts, else ``make()``'s, filed."""
        with self.lock:
            value = self._values.get(key)
            if value is None or not keep(value):
                value = self._values[key] = make()
            return value

    def add(self, value: V) -> None:
        """File ``value`` under its own identity (a registry used as a set)."""
        self.put(id(value), value)  # type: ignore[arg-type]

    def discard(self, value: V) -> None:
        with self.lock:
            if self._values.get(id(value)) is value:  # type: ignore[call-overload]
                del self._values[id(value)]  # type: ignore[arg-type]

    def keys(self) -> list[K]:
        with self.lock:
            return list(self._values)

    def values(self) -> list[V]:
        """A copy: the registry may change while the caller goes through it."""
        with self.lock:
            return list(self._values.values())

    def __iter__(self) -> Iterator[V]:
        """The values (of a copy, as ``values()``)."""
        return iter(self.values())

    def __contains__(self, key: object) -> bool:
        with self.lock:
            return key in self._values

    def __len__(self) -> int:
        with self.lock:
            return len(self._values)

    def reset(self) -> None:
        """Back to a fresh process's state: only the initial entries, and what ``on_reset``
        undoes undone (tests)."""
        with self.lock:
            if self._on_reset is not None:
                self._on_reset()  # first: it may read what it undoes
            self._values.clear()
            self._values.update(self._initial)

    def __repr__(self) -> str:
        return f"<Registry {self.name}: {len(self)} {'weak ' if self.weak else ''}values>"


def registries() -> dict[str, Registry]:
    """Every registry of this process, by name."""
    return dict(_ALL)
