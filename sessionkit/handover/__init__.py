"""Primary and backup: a job carried from one runtime to the next, never run twice at once.

- ``records``: what a handover reads and writes under ``handover/<lease>/`` (the guard
  record, requests, answers, approvals; "state" means only a job's own data: see there);
- ``primary``: the runtime that runs the job and asks for a backup before it ends;
- ``primary_status``: a primary's statuses and the pure ``transition`` (the transitions);
- ``decide``: a backup's states and the pure ``decide(observation)`` (the transitions);
- ``backup``: the loop that observes, decides and acts;
- ``approvals``: a person's go-ahead for a backup that needs one.

Observers never take a lease.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Union

from ..store import Store, open_store
from .approvals import approve, pending_approvals
from .backup import Backup
from .decide import BackupStatus, decide
from .primary import HandoverView, HandoverViewer, Primary, handed_to
from .primary_status import PrimaryStatus, transition
from .records import Approval, GuardRecord, GuardStatus, Ready, Request, read_record

__all__ = ["Primary", "Backup", "BackupStatus", "PrimaryStatus", "HandoverView", "HandoverViewer", "GuardRecord",
           "GuardStatus", "Request", "Ready", "Approval",
           "approve", "pending_approvals", "read_guard", "decide", "transition", "handed_to"]


def read_guard(store: Union[Store, str], lease_name: str = "primary") -> Optional[GuardRecord]:
    """The guard record (job, primary session, token, status), or None when absent or
    damaged (a damaged one is logged; the next primary replaces it)."""
    found = read_record(open_store(store), GuardRecord.decode, lease_name, "state")
    return found.value if found else None


def read_state(store: Union[Store, str], lease_name: str = "primary") -> Optional[GuardRecord]:
    """Deprecated: ``read_guard``."""
    warnings.warn("sessionkit.handover.read_state is now read_guard", DeprecationWarning, stacklevel=2)
    return read_guard(store, lease_name)


def __getattr__(name: str) -> Any:
    if name == "HandoverState":
        warnings.warn("sessionkit.handover.HandoverState is now HandoverView", DeprecationWarning, stacklevel=2)
        return HandoverView
    if name == "StateRecord":
        warnings.warn("sessionkit.handover.StateRecord is now GuardRecord", DeprecationWarning, stacklevel=2)
        return GuardRecord
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
