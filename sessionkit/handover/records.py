"""The records a handover reads and writes, under ``handover/<lease>/`` (docs/format.md).

- ``state``: the :class:`GuardRecord`: which job the lease guards, who holds it and with
  which token (the primary writes it; a backup reads it to know what to resume). The key
  keeps its old name so old and new versions read each other's stores;
- ``request``: the primary's planned-handover request;
- ``ready/<session>``: a backup's answer to a request (one writer each);
- ``approvals/<id>``: a backup's request for approval, granted by ``approve()``.

Each kind is a frozen dataclass with ``encode`` and a ``decode`` that raises
CorruptRecord naming the key; unknown fields are kept out, missing optional ones
default, so a record written by an older version still reads.

Names: in sessionkit "state" means one thing, a job's own resumable data (``Job.state``,
saved with each checkpoint). What something is doing is its *status* (``JobStatus``,
``PrimaryStatus``, ``BackupStatus``, ``SessionStatus``, ``GuardStatus``); what a view
shows is a *view* (``HandoverView``). So the record once called ``StateRecord`` is
:class:`GuardRecord` and its ``state`` field is ``status`` (stored as ``"state"`` still);
``Request.state`` is ``Request.status`` likewise. The old names still work, with a
DeprecationWarning.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, fields
from enum import Enum
import logging
from typing import Any, Callable, Optional, TypeVar

from ..errors import CorruptRecord
from ..records import Stored, decode_object, read_one
from ..store import Store
from ..store.base import check_key

__all__ = ["GuardRecord", "GuardStatus", "Request", "Ready", "Approval", "handover_key", "read_record"]

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
        except (TypeError, ValueError) as exc:
            raise CorruptRecord(key, where, f"not a handover record ({exc})", version) from None


class GuardStatus(str, Enum):
    """Whether the guarded job's primary holds the lease (stored under ``"state"``)."""

    PRIMARY = "primary"  # a primary holds the lease and runs the job
    RELEASED = "released"  # the primary let the lease go (handed over, finished or stopped)
    UNKNOWN = "unknown"  # a backup stood this in for a missing or damaged record

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class GuardRecord(_Record):
    """``handover/<lease>/state``: the job the lease guards and its primary (was ``StateRecord``)."""

    job: str
    primary: Optional[str] = None
    label: Optional[str] = None
    token: Optional[int] = None
    status: GuardStatus = GuardStatus.PRIMARY
    at: Optional[str] = None
    _required = ("job",)
    _renamed = {"status": "state"}

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", GuardStatus(self.status))  # ValueError: not a handover record

    @property
    def state(self) -> GuardStatus:
        """Deprecated: ``status``."""
        warnings.warn("GuardRecord.state is now GuardRecord.status", DeprecationWarning, stacklevel=2)
        return self.status


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
    status: str = "open"  # "open", then "released" once the primary let the lease go (stored as "state")
    released_at: Optional[str] = None
    _required = ("id",)
    _renamed = {"from_": "from", "status": "state"}

    @property
    def open(self) -> bool:
        return self.status != "released"

    @property
    def state(self) -> str:
        """Deprecated: ``status``."""
        warnings.warn("Request.state is now Request.status", DeprecationWarning, stacklevel=2)
        return self.status


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


def __getattr__(name: str) -> Any:
    if name == "StateRecord":
        warnings.warn("sessionkit.handover.records.StateRecord is now GuardRecord", DeprecationWarning, stacklevel=2)
        return GuardRecord
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
