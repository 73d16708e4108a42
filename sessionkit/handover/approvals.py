"""Approvals: a backup started with ``approval="required"`` asks before taking over;
a person grants it with :func:`approve` (or ``sessionkit approve STORE REQUEST``)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Union

from ..errors import Conflict, NotFound, SessionkitError
from ..events import EventLog
from ..records import read_all, read_one
from ..store import Store, open_store
from .records import Approval, handover_key

__all__ = ["approve", "pending_approvals"]


def pending_approvals(store: Union[Store, str], lease_name: str = "primary") -> list[Approval]:
    """Approval requests still waiting (damaged ones are logged and left out)."""
    store = open_store(store)
    found = read_all(store, handover_key(lease_name, "approvals") + "/", Approval.decode)
    return [a for a in found.values() if a.status == "pending"]


def approve(store: Union[Store, str], request_id: str, *, lease_name: str = "primary",
            by: str = "user") -> None:
    """Grant a backup's approval request."""
    store = open_store(store)
    key = handover_key(lease_name, "approvals", request_id)
    found = read_one(store, key, Approval.decode)
    if found is None:
        pending = [a.id for a in pending_approvals(store, lease_name)] or "none"
        raise NotFound(f"no approval request {request_id!r} in {store.url}; pending: {pending}")
    granted = dataclasses.replace(found.value, status="granted", granted_by=by)
    try:
        store.put(key, granted.encode(), expect=found.version)
    except Conflict as exc:
        raise SessionkitError(f"approval {request_id!r} changed while granting it; try again") from exc
    approver = EventLog(store, f"approver-{uuid.uuid4().hex}")
    approver.emit("approval.granted", request=request_id, session=granted.session, by=by)
    approver.flush()
