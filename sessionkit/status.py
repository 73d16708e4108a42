"""The read model: what is in a store now, as plain data for the command line, the demo
and views that re-attach. Nothing here writes; a damaged record is logged and left out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from datetime import datetime, timezone
from typing import Any, Optional

from .clock import SYSTEM_CLOCK, Clock
from .jobs.progress import Progress
from .store import Store

if TYPE_CHECKING:
    from .handover.records import GuardRecord
    from .session_record import SessionRecord

__all__ = ["LiveView", "PrimarySeen", "live_view", "primary_seen", "status_data"]


def status_data(store: Store) -> dict[str, Any]:
    """The fixed ``status --json`` shape (see docs/cli.md)."""
    from .jobs.listing import list_jobs
    from .lease import list_leases
    from .sessions import list_sessions

    now = datetime.now(timezone.utc)
    damaged: list[Any] = []
    sessions = [{"id": s.id, "role": s.role.value, "label": s.label, "status": s.status.value,
                 "phase": s.phase.value, "remaining_s": s.remaining_s, "last_heartbeat": s.last_heartbeat,
                 "stalled": s.stalled} for s in list_sessions(store, damaged)]
    leases = []
    for name, lease in list_leases(store, damaged):
        expires = None
        if lease.holder is not None:
            # An estimate for people, from the holder's wall clock; takeovers never use it.
            renewed = datetime.fromisoformat(lease.renewed)
            expires = round(lease.ttl - (now - renewed).total_seconds(), 1)
        leases.append({"name": name, "holder": lease.holder, "token": lease.token,
                       "expires_in_s": expires})
    jobs = [{"id": j.id, "status": j.status, "done": j.done, "total": j.total, "stage": j.stage,
             "updated": j.updated} for j in list_jobs(store, damaged)]
    return {"sessions": sessions, "leases": leases, "jobs": jobs,
            "damaged": [{"key": exc.key, "reason": exc.reason} for exc in damaged]}


@dataclass(frozen=True)
class LiveView:
    """Snapshots for re-attached views: the primary's session record (with ``remaining_s``
    brought up to now), its job's progress, and the guard record (handover/<lease>/state)."""

    session: Optional["SessionRecord"]
    progress: Optional[Progress]
    handover: Optional["GuardRecord"]


def live_view(store: Store, lease_name: str = "primary", job: Optional[str] = None,
              clock: Optional[Clock] = None) -> LiveView:
    """What the primary of ``lease_name`` (or the last one) is doing, read from the store;
    ``clock`` tells the time now (its wall clock judges the record's age)."""
    from .handover import handed_to, read_guard
    from .jobs.manifest import load
    from .sessions import read_session

    guard = read_guard(store, lease_name)
    session = read_session(store, guard.primary) if guard and guard.primary else None
    if session is not None and session.remaining_s is not None and session.last_heartbeat:
        # an estimate from the writer's wall clock, for display only
        now = (clock or SYSTEM_CLOCK).now()
        age = (now - datetime.fromisoformat(session.last_heartbeat)).total_seconds()
        session = replace(session, remaining_s=session.remaining_s - max(0.0, age))
    job_id = job or (guard.job if guard else None)
    progress = None
    loaded = load(store, job_id) if job_id else None
    if loaded is not None:
        m = loaded.manifest
        progress = Progress(job=job_id, status=m.status, done=m.done, total=m.total, skipped=0, rate=None,
                            eta=None, bytes=m.bytes, elapsed=m.elapsed, stage=m.stage,
                            stage_index=(m.stages.index(m.stage) + 1) if m.stage in m.stages else None,
                            stages=len(m.stages),
                            handed_to=handed_to(store, lease_name, job_id) if m.status == "paused" else None)
    return LiveView(session, progress, guard)


@dataclass(frozen=True)
class PrimarySeen:
    """What a backup shows of the primary it watches, and whether its own runtime is long
    enough to finish the job. Seconds are on the clock both run on."""

    label: Optional[str]
    remaining_s: Optional[float]  # the primary runtime's time left (None: no limit, or unknown)
    job: Optional[str]
    status: Optional[str]
    done: int
    total: Optional[int]
    rate: Optional[float]  # items per second over the job's running time so far
    needs_s: Optional[float]  # time the rest of the job needs at that rate
    own_remaining_s: Optional[float]  # the backup runtime's own time left
    released: bool = False  # the primary released the lease (handed over or stopped) as the store says

    @property
    def own_too_short(self) -> bool:
        """The backup's runtime ends before the job would: it would have to hand over again."""
        return (self.needs_s is not None and self.own_remaining_s is not None
                and self.own_remaining_s < self.needs_s)


def primary_seen(live: LiveView, own_remaining_s: Optional[float]) -> PrimarySeen:
    """A backup's view of ``live`` (from ``live_view``) against its own time left."""
    from .handover.records import GuardStatus

    session, p = live.session, live.progress
    done = p.done if p is not None else 0
    total = p.total if p is not None else None
    rate = done / p.elapsed if p is not None and p.elapsed > 0 and done > 0 else None
    needs = (total - done) / rate if rate and total is not None and total >= done else None
    return PrimarySeen(session.label if session else None, session.remaining_s if session else None,
                       p.job if p is not None else None,
                       p.status if p is not None else None, done, total, rate, needs, own_remaining_s,
                       live.handover is not None and live.handover.status is GuardStatus.RELEASED)
