"""Removing handover records nothing will read again (``sessionkit gc``).

Every planned handover leaves one ``ready/<session>`` answer per backup and every
backup with ``approval="required"`` one ``approvals/<id>``; none is removed by the
handover itself (a primary may still be reading them). Past a retention they are:
answers to any request but the current one, and approvals (granted or not) asked
for longer ago than the retention. ``state`` and ``request`` are one record each
and stay. Whatever the retention, nothing a live session still needs goes: the
answer to the current request, and the approval requests of sessions whose record is
live (a backup waiting for a person to approve it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional, Union

from ..checks import check_timedelta
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import Conflict
from ..records import read_all
from ..sessions import live_session_ids
from ..store import Store, open_store
from .records import Approval, Ready, Request, handover_key, read_record

__all__ = ["remove_stale"]


def remove_stale(store: Union[Store, str], older_than: timedelta = timedelta(days=30), *,
                 clock: Optional[Clock] = None) -> int:
    """Remove old ``ready`` answers and approvals of every lease in ``store``; returns how
    many records were removed. Damaged ones past the retention are left (and logged)."""
    check_timedelta("older_than", older_than, "how long ago a record must have ended")
    store = open_store(store)
    cutoff = ((clock or SYSTEM_CLOCK).now() - older_than).isoformat()
    leases = sorted({key.split("/")[1] for key in store.list("handover/") if key.count("/") >= 2})
    live = live_session_ids(store) if leases else set()
    removed = 0
    for lease in leases:
        request = read_record(store, Request.decode, lease, "request")
        current = request.value.id if request is not None else None
        for stored in read_all(store, handover_key(lease, "ready") + "/", Ready.decode).records:
            if stored.value.request != current and str(stored.value.at or "") < cutoff:
                removed += _delete(store, stored.key, stored.version)
        for stored in read_all(store, handover_key(lease, "approvals") + "/", Approval.decode).records:
            if stored.value.session not in live and str(stored.value.at or "") < cutoff:
                removed += _delete(store, stored.key, stored.version)
    return removed


def _delete(store: Store, key: str, version: str) -> int:
    try:
        return int(store.delete(key, expect=version))
    except Conflict:
        return 0  # rewritten meanwhile: in use
