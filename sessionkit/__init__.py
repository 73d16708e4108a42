"""sessionkit: keep notebook work alive across runtimes that end.

The top level offers the dozen names most users need: the job, the lease, the session,
the primary and its backup, the store and how to open one, and the three errors a
loop catches. Everything else lives in the module named after its idea and is imported
from there (``from sessionkit.clock import FakeClock``, ``from sessionkit.errors import
StoreError``, ``from sessionkit.store import ABSENT``). The names the top level offered
before (issue 28) still work for a deprecation period, with a DeprecationWarning that
names their new import path.
"""

from .errors import Conflict, LeaseLost, SessionkitError
from .jobs import Job
from .jobs import views as _job_views
from .lease import Lease
from .sessions import Session
from .store import Store, known_schemes, open_store, register_scheme

def _auto_view(progress: object) -> object:
    """What ``display=True`` shows (registered into the jobs layer, which names no views):
    a widget in notebooks, a text line elsewhere; sessionkit.widgets loads on first use."""
    from .widgets import auto_view

    return auto_view(progress)


_job_views.register_view(_auto_view)

__version__ = "0.1.0"
__distribution__ = "sessionkit-runtime"  # the PyPI name; "sessionkit" there is another project

__all__ = [
    "Backup",
    "Conflict",
    "Job",
    "Lease",
    "LeaseLost",
    "Primary",
    "Session",
    "SessionkitError",
    "Store",
    "__version__",
    "known_schemes",
    "open_store",
    "register_scheme",
]

# Submodules that need pandas, matplotlib or ipywidgets, or are applications, load on first
# use (PEP 562): ``import sessionkit as sk; sk.history.load(...)`` works, and ``import
# sessionkit`` itself stays light.
_LAZY_MODULES = ("cli", "config", "demo", "doctor", "handover", "history", "ingest", "jobs", "lease", "notebook",
                 "notify", "plots", "runtimes", "sessions", "store", "widgets")
_LAZY_NAMES = {"Primary": "handover", "Backup": "handover"}

#: Names the top level exported until issue 28, and the module each is imported from now.
#: They still resolve (with a DeprecationWarning) for a deprecation period.
_MOVED = {
    **{name: "sessionkit.errors" for name in (
        "BlobError", "CorruptRecord", "DuplicateKey", "InvalidKey", "InvalidTransition", "JobCancelled",
        "LeaseTimeout", "NotFound", "SegmentMissing", "SessionkitWarning", "StoreError", "StoreFull",
        "StoreMissing", "StoreReadOnly", "StoreTimeout", "SignInError")},
    **{name: "sessionkit.clock" for name in ("Clock", "FakeClock", "ScaledClock", "SystemClock")},
    "ABSENT": "sessionkit.store",
    "Record": "sessionkit.store",
    "Runtime": "sessionkit.runtimes",
    "flush_mounted_drive": "sessionkit.store.local",
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    if name in _MOVED:
        import warnings

        warnings.warn(f"sessionkit.{name} is deprecated: use 'from {_MOVED[name]} import {name}' "
                      f"(the top level keeps only {', '.join(n for n in __all__ if n != '__version__')})",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'sessionkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))  # not the moved names: deprecated
