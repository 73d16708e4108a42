"""Primary and backup: a job carried from one runtime to the next, never run twice at once.

- ``records``: what a handover reads and writes under ``handover/<lease>/``;
- ``primary``: the runtime that runs the job and asks for a backup before it ends;
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
from .primary import HandoverView, HandoverViewer, Primary
from .primary_status import PrimaryStatus, transition
from .records import Approval, Ready, Request, StateRecord, read_record

__all__ = ["Primary", "Backup", "BackupStatus", "PrimaryStatus", "HandoverView", "HandoverViewer", "StateRecord", "Request", "Ready", "Approval",
           "approve", "pending_approvals", "read_state", "decide", "transition"]


def read_state(store: Union[Store, str], lease_name: str = "primary") -> Optional[StateRecord]:
    """The handover state record (job, primary session, token, state), or None when absent
    or damaged (a damaged one is logged; the next primary replaces it)."""
    found = read_record(open_store(store), StateRecord.decode, lease_name, "state")
    return found.value if found else None


def __getattr__(name: str) -> Any:
    if name == "HandoverState":
        warnings.warn("sessionkit.handover.HandoverState is now HandoverView", DeprecationWarning, stacklevel=2)
        return HandoverView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
