"""The backup: a runtime that watches the primary and takes the job over.

Each ``step`` (1) beats and marks silent sessions dropped, (2) observes the store
into an :class:`~.decide.Observation`, (3) asks the pure :func:`~.decide.decide`
what to do, and (4) carries the decision out. Planned: the primary's request is
answered "ready" and the lease, once released, is taken. Unplanned: the primary
dies; its lease expires on this backup's clock and is taken. With several backups
the lowest ``priority`` goes first and the others wait ``grace`` seconds per rank
(ties: session id). Taking the lease promotes this backup's session and builds a
new :class:`~.primary.Primary` around it.
"""

from __future__ import annotations

import logging
import random
import uuid
import warnings
from typing import Callable, Optional, Union

from ..validate import check_period, check_seconds
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import CorruptRecord
from ..jobs.listing import latest_id
from ..jobs.manifest import FINISHED, load
from ..lease import Lease
from ..runtimes import Runtime
from ..session_record import Role
from ..sessions import DropWatcher, Session, list_live_sessions
from ..store import ABSENT, Store, open_store
from .decide import Act, ApprovalSeen, BackupStatus, Decision, LeaseSeen, Observation, decide
from .primary import HandoverView, Primary
from .records import Approval, GuardRecord, GuardStatus, Ready, Request, handover_key, read_record

__all__ = ["Backup", "NO_PRIMARY_POLLS", "POLL_JITTER"]

NO_PRIMARY_POLLS = 5  # a backup says "no primary here" after this many polls without one
#: each wait between looks is ``poll`` times 1 to 1 + POLL_JITTER, so that backups that
#: started together do not all look (and write) at the same moment
POLL_JITTER = 0.2
log = logging.getLogger("sessionkit.handover")


def _waited(lease: Lease) -> dict[str, Optional[float]]:
    """How long the lease record lay still before this acquisition, on this runtime's own
    clock (``waited_s``), and how much longer it may have (``window_s``: the time between
    the look before the change and the look that saw it): the gap, as seen here."""
    waited, window = lease.acquired_after or (None, None)
    return {"waited_s": waited, "window_s": window}


class Backup:
    """A runtime that watches the primary and takes the job over (planned or not)."""

    def __init__(self, store: Union[Store, str], label: Optional[str] = None, *, priority: int = 1,
                 approval: str = "auto", runtime: Union[None, str, Runtime] = None,
                 clock: Optional[Clock] = None, ttl: float = 60.0, poll: Optional[float] = None,
                 grace: Optional[float] = None, lease_name: str = "primary", ping_url: Optional[str] = None,
                 warning_at: float = 3600.0, handover_at: float = 900.0, job: Optional[str] = None) -> None:
        if job is not None and (not isinstance(job, str) or not job):
            raise ValueError(f"job must be the primary's job id (or None: whichever it runs), got {job!r}")
        self.job_id = job  # the job this backup is for: another one is never taken over
        if approval not in ("auto", "required"):
            raise ValueError(f"approval must be 'auto' or 'required', got {approval!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int (lower goes first), got {priority!r}")
        self.store = open_store(store)
        # checked before anything is written (the session record)
        if poll is not None:
            poll = check_period("poll", poll, clock=clock or SYSTEM_CLOCK, remote=getattr(self.store, "remote", False),
                                what="how often the primary is looked at, or None: the lease's retry period")
        if grace is not None:
            grace = check_seconds("grace", grace, "the head start of each backup ranked before this one")
        self.priority, self.approval, self.lease_name = priority, approval, lease_name
        self.session = Session(self.store, "backup", runtime=runtime, label=label, clock=clock, ping_url=ping_url,
                               warning_at=warning_at, handover_at=handover_at)
        self.session.priority = priority
        self.clock = self.session.clock
        self.lease = Lease(self.store, lease_name, holder=self.session.id, ttl=ttl, clock=self.clock,
                           events=self.session.events)
        self.poll = poll if poll is not None else self.lease.retry_period
        self.grace = grace if grace is not None else 2 * self.poll
        self._dropwatch = DropWatcher(self.store, clock=self.clock, events=self.session.events,
                                      exclude=(self.session.id,))
        self._answered: Optional[str] = None  # the last request id answered "ready"
        self._available_since: Optional[float] = None  # when the lease was first seen free/expired
        self._approval_id: Optional[str] = None
        self._waiting_since: Optional[float] = None  # when it first found no primary, on its clock
        self._guarded: Optional[GuardRecord] = None  # the guard record as last read
        self._request: Optional[Request] = None  # the handover request as last read
        self._warned_guard = False
        self._warned_lease = False
        self.status = BackupStatus.WATCHING
        self.session.beat()

    @property
    def state(self) -> HandoverView:
        """Deprecated: ``handover_view`` ("state" is a job's own resumable data only)."""
        warnings.warn("Backup.state is now Backup.handover_view", DeprecationWarning, stacklevel=2)
        return self.handover_view

    @property
    def handover_view(self) -> HandoverView:
        """What views show, from the last look (reads nothing)."""
        record = self.lease.record
        detail = f"priority {self.priority}"
        waited = (self.clock.monotonic() - self._waiting_since) if self._waiting_since is not None else 0.0
        if self.status is BackupStatus.WAITING_FOR_PRIMARY and waited >= NO_PRIMARY_POLLS * self.poll:
            detail = (f"no primary has written to {self.store.url} for {waited:.0f} s: is STORE the same "
                      f"as the primary's? {detail}")
        return HandoverView("backup", self.status, self.lease_name, record.holder if record else None,
                             record.token if record else None, self._guarded.job if self._guarded else None,
                             detail)

    def rank(self) -> int:
        """How many live backups go before this one (reads the live sessions only)."""
        me = (self.priority, self.session.id)
        return sum(1 for s in list_live_sessions(self.store)
                   if s.role is Role.BACKUP and s.active and s.id != self.session.id
                   and (1 if s.priority is None else s.priority, s.id) < me)

    # -- one look ----------------------------------------------------------------

    def step(self) -> Optional[Primary]:
        """Look once and act: returns the new Primary once taken over, else None
        (``status`` says why). The steps are listed in decide.py."""
        self.session.beat_if_due()
        # dropped: silent for 3 heartbeats, and never sooner than a lease could expire
        self._dropwatch.check(timeout=max(3 * self.session.heartbeat, self.lease.ttl))
        seen = self.observe()
        return self._carry_out(decide(seen), seen)

    def observe(self) -> Observation:
        """Read what ``decide`` needs: the guarded job, an open request, the lease; and only
        when the lease is free or expired, whether the job finished, this backup's turn and
        its approval (so a backup watching a live primary reads no more than that)."""
        self._guarded = self._guard_record()
        job = self._guarded.job if self._guarded else None
        now = self.clock.monotonic()
        if job is None:
            self._waiting_since = self._waiting_since if self._waiting_since is not None else now
            return Observation(None, self.job_id, None, LeaseSeen.HELD)
        self._waiting_since = None
        lease = self._look_at_lease()
        request = self._open_request()
        if lease is LeaseSeen.HELD:
            self._available_since = None
            return Observation(job, self.job_id, request, lease)
        if self._available_since is None:
            self._available_since = now
        finished = lease is LeaseSeen.FREE and self._job_finished(self._guarded)
        turn_in = self.rank() * self.grace - (now - self._available_since)
        return Observation(job, self.job_id, request, lease, finished, turn_in, self._approval_seen())

    def _carry_out(self, decision: Decision, seen: Observation) -> Optional[Primary]:
        if decision.answer is not None:
            self._answer(decision.answer)
        self.status = decision.status
        if decision.act is Act.REFUSE_OTHER_JOB:
            raise ValueError(f"the primary at {self.store.url} runs job {seen.job!r}, not {self.job_id!r}: "
                             f"set the backup's job to the primary's, or use another store (nothing was "
                             f"taken over)")
        if decision.act is Act.ASK_APPROVAL:
            self._ask_approval()
        if decision.act is not Act.ACQUIRE:
            return None
        previous = self.lease.record.holder if self.lease.record else None
        if self.lease.try_acquire() is None:
            self.status = BackupStatus.WATCHING  # another backup won, or the ttl is not yet over
            return None
        return self._become_primary(previous, released=seen.lease is LeaseSeen.FREE)

    # -- observing -------------------------------------------------------------------

    def _look_at_lease(self) -> LeaseSeen:
        try:
            current = self.lease.observe()
        except CorruptRecord as exc:  # held by an unknown holder until it lies still for its ttl
            current = None
            if not self._warned_lease:
                self._warned_lease = True
                log.warning("%s; this backup takes over once it has lain unchanged for %g s",
                            exc, self.lease.ttl)
        if self.lease.damaged is None and (current is None or current.holder is None):
            return LeaseSeen.FREE
        return LeaseSeen.EXPIRED if (self.lease.expires_in() or 0) <= 0 else LeaseSeen.HELD

    def _guard_record(self) -> Optional[GuardRecord]:
        """The guard record (``handover/<lease>/state``); when it is missing or damaged but the lease shows a
        primary existed (token >= 1), the most recent active job stands in for it, so a
        backup never waits on a record nobody will write (the new primary writes it anew)."""
        found = read_record(self.store, GuardRecord.decode, self.lease_name, "state")
        if found is not None:
            return found.value
        try:
            record = self.lease.observe()
            token = record.token if record is not None else 0
        except CorruptRecord:
            record, token = None, -1  # someone wrote it: a primary existed
        if token == 0:
            return None  # no primary ever held this lease: truly waiting for one
        job = latest_id(self.store, self.clock)
        if job is None:
            return None
        if not self._warned_guard:
            self._warned_guard = True
            log.warning("the guard record %s in %s is missing or damaged; lease %r was held "
                        "(token %d; -1: its record is damaged), so this backup guards the most recent "
                        "active job, %r", handover_key(self.lease_name, "state"), self.store.url,
                        self.lease_name, token, job)
        return GuardRecord(job, record.holder if record else None, status=GuardStatus.UNKNOWN)

    def _open_request(self) -> Optional[str]:
        """The id of an open handover request this backup has not answered yet."""
        found = read_record(self.store, Request.decode, self.lease_name, "request")
        self._request = found.value if found else None
        if found is None or not found.value.open or found.value.id == self._answered:
            return None
        return found.value.id

    def _job_finished(self, guard: GuardRecord) -> bool:
        """The primary released the lease because its job ended (not to hand it over)."""
        if guard.status is not GuardStatus.RELEASED:
            return False
        loaded = load(self.store, guard.job)
        return loaded is not None and loaded.manifest.status in FINISHED

    def _approval_seen(self) -> ApprovalSeen:
        if self.approval == "auto":
            return ApprovalSeen.NOT_NEEDED
        if self._approval_id is None:
            return ApprovalSeen.NOT_ASKED
        found = read_record(self.store, Approval.decode, self.lease_name, "approvals", self._approval_id)
        return ApprovalSeen.GRANTED if found and found.value.status == "granted" else ApprovalSeen.PENDING

    # -- acting ------------------------------------------------------------------

    def _answer(self, request_id: str) -> None:
        ready = Ready(request_id, self.session.id, self.session.label, self.priority, self.clock.now().isoformat())
        self.store.put(handover_key(self.lease_name, "ready", self.session.id), ready.encode())
        self._answered = request_id
        primary = self._request.from_ if self._request is not None and self._request.id == request_id else None
        self.session.events.emit("handover.ready", request=request_id, primary=primary, priority=self.priority)
        self.session.events.flush()

    def _ask_approval(self) -> None:
        self._approval_id = uuid.uuid4().hex
        asked = Approval(self._approval_id, self.session.id, self.session.label, "pending",
                         self.clock.now().isoformat())
        self.store.put(handover_key(self.lease_name, "approvals", self._approval_id), asked.encode(),
                       expect=ABSENT)
        self.session.events.emit("approval.requested", request=self._approval_id)
        self.session.events.flush()
        log.warning("backup %r waits for approval: sessionkit.handover.approve(store, %r)",
                    self.session.label, self._approval_id)

    def _become_primary(self, previous: Optional[str], released: bool) -> Primary:
        """This backup holds the lease: promote its session and build the Primary that
        resumes the guarded job."""
        # The look that led here read both records after the primary's last writes: a primary
        # marks its request released before it releases the lease, and decide() takes a lease
        # only for a guarded job.
        guard, request = self._guarded, self._request
        assert guard is not None
        planned = released and request is not None and not request.open
        self.session.promote()
        self.status = BackupStatus.PRIMARY
        primary = Primary(self.store, guard.job, session=self.session, lease=self.lease, clock=self.clock)
        self.session.events.emit("handover.completed", **{"from": previous or guard.primary,
                                 "to": self.session.id, "planned": planned, "token": self.lease.token,
                                 "how": "planned" if planned else ("released" if released else "expired"),
                                 "job": guard.job, **_waited(self.lease)})
        self.session.events.flush()
        return primary

    # -- the loop ------------------------------------------------------------------

    def watch(self, timeout: Optional[float] = None, on_step: Optional[Callable[["Backup"], None]] = None
              ) -> Optional[Primary]:
        """Look every ``poll`` seconds (plus up to ``POLL_JITTER`` of it) until taking over
        (returns the new Primary), the job finished (None, ``status`` "done") or ``timeout``
        seconds pass (None). ``on_step`` is called after each look, from this thread (a
        view can refresh there)."""
        start = self.clock.monotonic()
        while True:
            primary = self.step()
            if on_step is not None:
                on_step(self)
            if primary is not None:
                return primary
            if self.status is BackupStatus.DONE:
                return None
            if timeout is not None and self.clock.monotonic() - start >= timeout:
                return None
            self.clock.sleep(self.poll * (1.0 + POLL_JITTER * random.random()))

    def close(self) -> None:
        self.session.end("closed")
