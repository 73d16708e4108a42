"""sessionkit: keep notebook work alive across runtimes that end.

The public names most users need are importable from here; each lives in the
module named after the idea it implements (``clock``, ``store``, ``errors``, ...).
"""

from __future__ import annotations

from .clock import Clock, FakeClock, ScaledClock, SystemClock
from .errors import (
    Conflict,
    CorruptRecord,
    InvalidKey,
    LeaseLost,
    SessionkitError,
    SessionkitWarning,
    StoreError,
)
from .jobs import Job
from .lease import Lease, LeaseTimeout
from .runtimes import Runtime
from .sessions import Session
from .store import ABSENT, Record, Store, known_schemes, open_store, register_scheme
from .store.local import flush_mounted_drive

from .jobs import job as _job_module
from .widgets import auto_view as _auto_view

_job_module.default_view = _auto_view  # display=True: a widget in notebooks, a text line elsewhere

__version__ = "0.1.0"

__all__ = [
    "ABSENT",
    "Clock",
    "Conflict",
    "CorruptRecord",
    "FakeClock",
    "InvalidKey",
    "Job",
    "Lease",
    "LeaseLost",
    "LeaseTimeout",
    "Record",
    "Runtime",
    "ScaledClock",
    "Session",
    "SessionkitError",
    "SessionkitWarning",
    "Store",
    "StoreError",
    "SystemClock",
    "__version__",
    "flush_mounted_drive",
    "known_schemes",
    "open_store",
    "register_scheme",
]
