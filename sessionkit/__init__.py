"""sessionkit: keep notebook work alive across runtimes that end.

The public names most users need are importable from here; each lives in the
module named after the idea it implements (``clock``, ``store``, ``errors``, ...).
"""

from __future__ import annotations

from .clock import Clock, FakeClock, ScaledClock, SystemClock
from .errors import (
    BlobError,
    Conflict,
    CorruptRecord,
    DuplicateKey,
    InvalidKey,
    InvalidTransition,
    JobCancelled,
    LeaseLost,
    LeaseTimeout,
    NotFound,
    SegmentMissing,
    SessionkitError,
    SessionkitWarning,
    StoreError,
    StoreFull,
    StoreMissing,
    StoreReadOnly,
    StoreTimeout,
    SignInError,
)
from .jobs import Job
from .jobs import views as _job_views
from .lease import Lease
from .runtimes import Runtime
from .sessions import Session
from .store import ABSENT, Record, Store, known_schemes, open_store, register_scheme
from .store.local import flush_mounted_drive

def _auto_view(progress: object) -> object:
    """What ``display=True`` shows (registered into the jobs layer, which names no views):
    a widget in notebooks, a text line elsewhere; sessionkit.widgets loads on first use."""
    from .widgets import auto_view

    return auto_view(progress)


_job_views.register_view(_auto_view)

__version__ = "0.1.0"
__distribution__ = "sessionkit-runtime"  # the PyPI name; "sessionkit" there is another project

# Submodules that need pandas, matplotlib or ipywidgets, or are applications, load on first
# use (PEP 562): ``import sessionkit as sk; sk.history.load(...)`` works, and ``import
# sessionkit`` itself stays light.
_LAZY_MODULES = ("cli", "config", "demo", "doctor", "handover", "history", "ingest", "jobs", "lease", "notebook",
                 "notify", "plots", "runtimes", "sessions", "store", "widgets")
_LAZY_NAMES = {"Primary": "handover", "Backup": "handover"}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'sessionkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))

__all__ = [
    "ABSENT",
    "Backup",
    "BlobError",
    "Clock",
    "Conflict",
    "CorruptRecord",
    "DuplicateKey",
    "FakeClock",
    "InvalidKey",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "Lease",
    "LeaseLost",
    "LeaseTimeout",
    "NotFound",
    "Primary",
    "Record",
    "Runtime",
    "ScaledClock",
    "SegmentMissing",
    "Session",
    "SessionkitError",
    "SessionkitWarning",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreMissing",
    "StoreReadOnly",
    "StoreTimeout",
    "SignInError",
    "SystemClock",
    "__version__",
    "flush_mounted_drive",
    "known_schemes",
    "open_store",
    "register_scheme",
]
