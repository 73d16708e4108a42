"""The records a handover reads and writes, under ``handover/<lease>/`` (docs/format.md).

- ``state``: which job the lease guards, who holds it and with which token (the
  primary writes it; a backup reads it to know what to resume);
- ``request``: the primary's planned-handover request;
- ``ready/<session>``: a backup's answer to a request (one writer each);
- ``approvals/<id>``: a backup's request for approval, granted by ``approve()``.

Each kind is a frozen dataclass with ``encode`` and a ``decode`` that raises
CorruptRecord naming the key; unknown fields are kept out, missing optional ones
default, so a record written by an older version still reads.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
import logging
from typing import Callable, Optional, TypeVar

from ..errors import CorruptRecord
from ..records import Stored, decode_object, read_one
from ..store import Store
from ..store.base import check_key

__all__ = ["StateRecord", "Request", "Ready", "Approval", "handover_key", "read_record"]

R = TypeVar("R", bound="_Record")
log = logging.getLogger("sessionkit.handover")


def handover_key(lease: str, *rest: str) -> str:
    return check_key("/".join(("handover", lease) + rest))


def read_record(store: Store, decode: Callable[[str, str, bytes, str], R], lease: str,
                *rest: str) -> Optional[Stored[R]]:
    """The handover record ``handover/<lease>/<rest...>``, or None when absent or damaged
    (logged: its writer replaces it, and nobody should wait on a record it cannot read)."""
    try:
        return read_one(store, handover_key(lease, *rest), decode)
    except CorruptRecord as exc:
        log.warning("ignoring %s", exc)
        return None


class _Record:
    """Shared encode/decode of the handover records: JSON objects with named fields."""

    _required: tuple[str, ...] = ()
    _renamed: dict[str, str] = {}  # field name -> stored name (``from`` is a keyword)

    def encode(self) -> bytes:
        body = {self._renamed.get(k, k): v for k, v in asdict(self).items()}  # type: ignore[call-overload]
        return json.dumps(body, default=str).encode()

    @classmethod
    def decode(cls: type[R], key: str, where: str, data: bytes, version: str) -> R:
        body = decode_object(key, where, data, version)
        values = {}
        for f in fields(cls):  # type: ignore[arg-type]
            stored = cls._renamed.get(f.name, f.name)
            if stored in body:
                values[f.name] = body[stored]
            elif f.name in cls._required:
                raise CorruptRecord(key, where, f"not a handover record (no {stored!r})", version)
        for name in cls._required:
            if not isinstance(values[name], str) or not values[name]:
                raise CorruptRecord(key, where, f"not a handover record ({name!r} is not a name)", version)
        try:
            return cls(**values)
        except TypeError as exc:
            raise CorruptRecord(key, where, f"not a handover record ({exc})", version) from None


@dataclass(frozen=True)
class StateRecord(_Record):
    """``handover/<lease>/state``: the job the lease guards and its primary."""

    job: str
    primary: Optional[str] = None
    label: Optional[str] = None
    token: Optional[int] = None
    state: str = "primary"  # "primary", "released", or "unknown" (stood in for a lost record)
    at: Optional[str] = None
    _required = ("job",)


@dataclass(frozen=True)
class Request(_Record):
    """``handover/<lease>/request``: a primary asks for a backup before its runtime ends."""

    id: str
    from_: Optional[str] = None
    label: Optional[str] = None
    token: Optional[int] = None
    job: Optional[str] = None
    at: Optional[str] = None
    remaining_s: Optional[float] = None
    state: str = "open"  # "open", then "released" once the primary let the lease go
    released_at: Optional[str] = None
    _required = ("id",)
    _renamed = {"from_": "from"}

    @property
    def open(self) -> bool:
        return self.state != "released"


@dataclass(frozen=True)
class Ready(_Record):
    """``handover/<lease>/ready/<session>``: a backup answers a request."""

    request: str
    session: str
    label: Optional[str] = None
    priority: int = 1
    at: Optional[str] = None
    _required = ("request", "session")


@dataclass(frozen=True)
class Approval(_Record):
    """``handover/<lease>/approvals/<id>``: a backup asks a person before taking over."""

    id: str
    session: Optional[str] = None
    label: Optional[str] = None
    status: str = "pending"  # "pending" or "granted"
    at: Optional[str] = None
    granted_by: Optional[str] = None
    _required = ("id",)
