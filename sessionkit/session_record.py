"""A session's record (``sessions/<id>``, ``sessions-ended/<id>``) as a typed frozen value,
and the session's life cycle: its role and status as enums and a pure ``session_after``.

:class:`SessionRecord` is what ``Session.snapshot()`` returns, what views render and what
``read_session``/``list_sessions`` give back; :meth:`SessionRecord.decode` is the one
decode (it raises :class:`~sessionkit.errors.CorruptRecord` naming the key). The JSON is
the one docs/format.md describes, unchanged: records written by older versions read (a
missing optional field defaults; unknown fields are left out), and older versions read
what this writes (every field they read is still there, under the same name).

The life cycle (``session_after(role, status, event)``, tested in tests/test_session_record.py):

1. ``PROMOTE``: an active backup that took the lease becomes primary (the one role change);
   anything else is an InvalidTransition.
2. ``END``: an active or dropped session ends (``ended`` is final); an ended one stays.
3. ``DROP``: an observer marks an active session dropped when its record lay still; a
   session that is not active is left as it is.
4. ``BEAT``: a dropped session that beats again is active; any other stays as it is.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any, Callable, Optional

from .errors import CorruptRecord, InvalidTransition
from .phase import Phase, Thresholds
from .records import decode_object
from .runtimes import Runtime

__all__ = ["Role", "SessionStatus", "SessionEvent", "session_after", "LeaseHeld", "SessionRecord", "KIND"]

KIND = "sessionkit.session"


class Role(str, Enum):
    """A session's part in the work."""

    PRIMARY = "primary"
    BACKUP = "backup"
    OBSERVER = "observer"

    def __str__(self) -> str:
        return self.value


class SessionStatus(str, Enum):
    """Whether a session is alive, as its record says."""

    ACTIVE = "active"
    ENDED = "ended"  # it ended itself (``end_reason`` says why)
    DROPPED = "dropped"  # an observer found its record still for too long

    def __str__(self) -> str:
        return self.value


class SessionEvent(Enum):
    PROMOTE = "promote"
    END = "end"
    DROP = "drop"
    BEAT = "beat"


def session_after(role: Role, status: SessionStatus, event: SessionEvent) -> tuple[Role, SessionStatus]:
    """The role and status after ``event`` (steps in the module docstring)."""
    if event is SessionEvent.PROMOTE:  # 1
        if role is not Role.BACKUP or status is not SessionStatus.ACTIVE:
            raise InvalidTransition("a session", f"{status.value} {role.value}", Role.PRIMARY.value,
                                    (Role.PRIMARY.value,) if role is Role.BACKUP else ())
        return Role.PRIMARY, status
    if event is SessionEvent.END:  # 2
        return role, SessionStatus.ENDED
    if event is SessionEvent.DROP:  # 3
        return role, SessionStatus.DROPPED if status is SessionStatus.ACTIVE else status
    return role, SessionStatus.ACTIVE if status is SessionStatus.DROPPED else status  # 4


@dataclass(frozen=True)
class LeaseHeld:
    """The lease a primary's session holds (``lease`` in the record: ``{"name", "token"}``)."""

    name: str
    token: Optional[int]


DEFAULT_THRESHOLDS = Thresholds(3600.0, 900.0)  # what a record written before thresholds were stored had


@dataclass(frozen=True)
class SessionRecord:
    """One session as its record says (docs/format.md, "Sessions"): plain data for views,
    ``sessionkit status`` and other runtimes. Times are ISO-8601 strings, for people;
    seconds are of the session's own clock."""

    id: str
    role: Role
    status: SessionStatus
    label: str = ""
    phase: Phase = Phase.ACTIVE
    runtime: Runtime = field(default_factory=Runtime)
    environment: Optional[str] = None
    started: Optional[str] = None
    remaining_s: Optional[float] = None
    deadline: Optional[str] = None
    idle_remaining_s: Optional[float] = None
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    elapsed_s: float = 0.0
    clock_rate: float = 1.0
    fresh_left_s: float = 0.0
    end_reason: Optional[str] = None
    host: Optional[str] = None
    pid: Optional[int] = None
    last_heartbeat: Optional[str] = None
    heartbeats: int = 0
    job: Optional[str] = None  # a primary's job
    lease: Optional[LeaseHeld] = None  # a primary's lease
    priority: Optional[int] = None  # a backup's priority (lower goes first)
    stalled: bool = False  # a primary's job finishes no item while its runtime beats
    dropped_at: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.status is SessionStatus.ACTIVE

    # -- JSON ----------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """The record's JSON body (without ``kind`` and ``v``), in the stored shape; fields an
        older record did not have when they are unset (a primary's ``job``, a backup's
        ``priority``) are left out, as older versions wrote them."""
        body: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OMIT_WHEN_NONE and value is None:
                continue
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, Runtime):
                value = value.as_dict()
            elif isinstance(value, Thresholds):
                value = value.as_dict()
            elif isinstance(value, LeaseHeld):
                value = asdict(value)
            body[f.name] = value
        return body

    def encode(self) -> bytes:
        return json.dumps({"kind": KIND, "v": 1, **self.as_dict()}, default=str).encode()

    @classmethod
    def decode(cls, key: str, where: str, data: bytes, version: str) -> "SessionRecord":
        """The record at ``key``, or CorruptRecord naming it."""
        body = decode_object(key, where, data, version, kind=KIND)
        return cls.from_dict(body, key, where, version)

    @classmethod
    def from_dict(cls, body: dict[str, Any], key: str = "", where: str = "", version: str = "") -> "SessionRecord":
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in body:
                if f.name in _REQUIRED:
                    raise CorruptRecord(key, where, f"not a session record (no {f.name!r})", version)
                continue
            convert = _DECODE.get(f.name)
            try:
                values[f.name] = convert(body[f.name]) if convert is not None else body[f.name]
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise CorruptRecord(key, where, f"not a session record ({f.name!r}: {exc})", version) from None
        if not isinstance(values["id"], str) or not values["id"]:
            raise CorruptRecord(key, where, "not a session record ('id' is not a name)", version)
        return cls(**values)

    # -- deprecated: the record was a dict ---------------------------------------------

    def get(self, name: str, default: Any = None) -> Any:
        """Deprecated: read the attribute (``record.label``), not ``record.get("label")``."""
        warnings.warn("session records are SessionRecord values now: read record.<field>, not "
                      "record.get(...)", DeprecationWarning, stacklevel=2)
        return self.as_dict().get(name, default)

    def __getitem__(self, name: str) -> Any:
        warnings.warn("session records are SessionRecord values now: read record.<field>, not "
                      "record[...]", DeprecationWarning, stacklevel=2)
        return self.as_dict()[name]


_REQUIRED = ("id", "role", "status")
_OMIT_WHEN_NONE = frozenset({"job", "lease", "priority", "dropped_at"})


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _thresholds(value: Any) -> Thresholds:
    if value is None:
        return DEFAULT_THRESHOLDS
    d = DEFAULT_THRESHOLDS.as_dict()
    return Thresholds(float(value.get("warning", d["warning"])), float(value.get("handover_at", d["handover_at"])),
                      float(value.get("lead", d["lead"])), float(value.get("fresh_for", d["fresh_for"])))


def _runtime(value: Any) -> Runtime:
    if value is None:
        return Runtime()
    return Runtime(value.get("max_runtime"), value.get("idle_timeout"), str(value.get("name") or "custom"))


def _lease(value: Any) -> Optional[LeaseHeld]:
    if not value:
        return None
    token = value.get("token")
    return LeaseHeld(str(value["name"]), None if token is None else int(token))


_DECODE: dict[str, Callable[[Any], Any]] = {
    "role": Role, "status": SessionStatus, "phase": Phase, "runtime": _runtime, "thresholds": _thresholds,
    "label": lambda v: "" if v is None else str(v), "remaining_s": _optional(float),
    "idle_remaining_s": _optional(float), "elapsed_s": lambda v: float(v or 0.0),
    "clock_rate": lambda v: float(v or 1.0), "fresh_left_s": lambda v: float(v or 0.0),
    "pid": _optional(int), "heartbeats": lambda v: int(v or 0), "lease": _lease,
    "priority": _optional(int), "stalled": bool,
}
