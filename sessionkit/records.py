"""Reading stored records: one decode per kind, one way to read a whole prefix.

Every record kind has a decode ``(key, where, data, version) -> value`` that returns a
typed value or raises :class:`~sessionkit.errors.CorruptRecord` naming the key.
:func:`read_all` lists a prefix, reads and decodes each record, and keeps what it
could not decode apart, so every reader treats damage the same way: the damaged
record is logged and left out, the rest is shown, and a caller that must flag it
(``sessionkit status``) finds it in ``damaged``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, Optional, TypeVar

from .errors import CorruptRecord
from .store import Store

__all__ = ["Stored", "ReadAll", "read_all", "read_one", "decode_object"]

log = logging.getLogger("sessionkit.records")
_reported: set[tuple[str, str, Optional[str]]] = set()  # (store, key, version) warned about once
R = TypeVar("R")
Decode = Callable[[str, str, bytes, str], R]


@dataclass(frozen=True)
class Stored(Generic[R]):
    """One decoded record: where it is, its version (for a compare-and-swap), its value."""

    key: str
    version: str
    value: R


@dataclass(frozen=True)
class ReadAll(Generic[R]):
    """Every readable record under a prefix, in key order, and the damaged ones apart."""

    records: tuple[Stored[R], ...]
    damaged: tuple[CorruptRecord, ...]
    skipped: tuple[str, ...] = ()  # keys under the prefix that ``accept`` refused

    def values(self) -> list[R]:
        return [stored.value for stored in self.records]


def decode_object(key: str, where: str, data: bytes, version: str, kind: Optional[str] = None) -> dict[str, Any]:
    """A JSON object (whose ``kind`` field is ``kind`` when given), or CorruptRecord."""
    try:
        body = json.loads(data)
    except ValueError as exc:  # also UnicodeDecodeError
        raise CorruptRecord(key, where, f"not JSON ({exc})", version) from None
    if not isinstance(body, dict):
        raise CorruptRecord(key, where, "not a JSON object", version)
    if kind is not None and body.get("kind") != kind:
        raise CorruptRecord(key, where, f"not a {kind} record", version)
    return body


def read_one(store: Store, key: str, decode: Decode[R]) -> Optional[Stored[R]]:
    """The record at ``key`` decoded, or None when absent; CorruptRecord when damaged."""
    record = store.get(key)
    if record is None:
        return None
    return Stored(key, record.version, decode(key, store.url, record.data, record.version))


def read_all(store: Store, prefix: str, decode: Decode[R],
             accept: Optional[Callable[[str], bool]] = None) -> ReadAll[R]:
    """Read every record under ``prefix`` (``accept(key)`` picks which keys, when given).
    A record removed between the listing and the read is skipped; a damaged one is logged
    and returned in ``damaged``."""
    records: list[Stored[R]] = []
    damaged: list[CorruptRecord] = []
    skipped: list[str] = []
    for key in store.list(prefix):
        if accept is not None and not accept(key):
            skipped.append(key)
            continue
        try:
            stored = read_one(store, key, decode)
        except CorruptRecord as exc:
            _report(store, exc)
            damaged.append(exc)
            continue
        if stored is not None:
            records.append(stored)
    return ReadAll(tuple(records), tuple(damaged), tuple(skipped))


def _report(store: Store, exc: CorruptRecord) -> None:
    """Log a damaged record once per version (watchers read the same prefix every poll)."""
    seen = (store.url, exc.key or "", exc.version)
    if seen in _reported:
        return
    if len(_reported) > 10_000:
        _reported.clear()
    _reported.add(seen)
    log.warning("%s", exc)
