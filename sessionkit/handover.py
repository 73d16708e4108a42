"""Primary and backup: a job carried from one runtime to the next, never run twice at once.

Records under ``handover/<lease>/`` (one lease, ``primary`` by default, per store):

- ``state``: which job the lease guards, who holds it and with which token (the
  primary writes it; a backup reads it to know what to resume);
- ``request``: the primary's planned-handover request ``{id, from, token, job}``;
- ``ready/<session>``: a backup's answer to a request (one writer each);
- ``approvals/<id>``: a backup's request for approval, granted by ``approve()``.

Planned: the primary reaches its ``handover`` phase, publishes a request; a live
backup answers ready; the primary stops taking items, checkpoints and releases
the lease; the backup acquires it (token + 1) and resumes the job.
Unplanned: the primary dies; its lease expires on the backup's clock; the
backup takes over. With several backups the lowest ``priority`` goes first and
the others wait ``grace`` seconds per rank (ties: session id). Observers never
take a lease.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

from .clock import Clock, check_seconds
from .events import EventLog
from .errors import Conflict, CorruptRecord, SessionkitError
from .jobs import Job
from .lease import Lease
from .runtimes import Runtime
from . import stopping
from .sessions import DropWatcher, Session, list_sessions
from .store import ABSENT, Store, open_store

__all__ = ["Primary", "Backup", "approve", "pending_approvals", "read_state", "HandoverState"]

T = TypeVar("T")
NO_PRIMARY_POLLS = 5  # a backup says "no primary here" after this many polls without one
MIN_STALL_AFTER = 300.0  # a job is never called stalled sooner than this (seconds)
log = logging.getLogger("sessionkit.handover")


def _key(lease: str, *rest: str) -> str:
    return "/".join(("handover", lease) + rest)


def _read(store: Store, key: str) -> Optional[tuple[dict[str, Any], str]]:
    """A handover record and its version; None when absent or damaged (logged: the next
    writer replaces it)."""
    try:
        record = store.get(key)
    except CorruptRecord as exc:
        log.warning("ignoring %s", exc)
        return None
    if record is None:
        return None
    try:
        body = json.loads(record.data)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        log.warning("ignoring %s: %s", key, exc)
        return None
    return body, record.version


def read_state(store: Store, lease_name: str = "primary") -> Optional[dict[str, Any]]:
    """The handover state record (job, primary session, token, state), or None."""
    found = _read(store, _key(lease_name, "state"))
    return found[0] if found else None


def _put(store: Store, key: str, body: dict[str, Any], **kw: Any) -> str:
    return store.put(key, json.dumps(body, default=str).encode(), **kw)


@dataclass(frozen=True)
class HandoverState:
    """What a view shows about handover: plain data."""

    role: str  # "primary", "backup" or "observer"
    status: str  # "watching", "approval pending", "taking over", "primary", "handing over", "done"
    lease: str
    holder: Optional[str]
    token: Optional[int]
    job: Optional[str]
    detail: str = ""


class Primary:
    """The runtime that runs the job: a session, the lease, and the job fenced by it."""

    def __init__(self, store: Union[Store, str], job_id: str, *, label: Optional[str] = None,
                 runtime: Union[None, str, Runtime] = None, clock: Optional[Clock] = None,
                 ttl: float = 60.0, poll: Optional[float] = None, lease_name: str = "primary",
                 session: Optional[Session] = None, lease: Optional[Lease] = None,
                 acquire_timeout: Optional[float] = None, stall_after: Optional[float] = None,
                 ping_url: Optional[str] = None, warning_at: float = 3600.0, handover_at: float = 900.0,
                 **job_kwargs: Any) -> None:
        if stall_after is not None:
            stall_after = check_seconds("stall_after", stall_after,
                                        "or None: 10x the recent mean item time, at least 5 min")
        self.stall_after = stall_after
        self.stalled = False
        self.store = open_store(store)
        if session is not None and session.role == "observer":
            raise ValueError("an observer session never takes a lease: open a Backup or a Primary "
                             "session to run the job")
        self.session = session or Session(self.store, "primary", runtime=runtime, label=label, clock=clock,
                                          ping_url=ping_url, warning_at=warning_at, handover_at=handover_at)
        self.clock = self.session.clock
        self.lease_name = lease_name
        self.lease = lease or Lease(self.store, lease_name, holder=self.session.id, ttl=ttl,
                                    clock=self.clock, events=self.session.events)
        self.poll = check_seconds("poll", poll, "how often the store is read") if poll is not None else self.lease.retry_period
        if not self.lease.held:
            self.lease.acquire(timeout=acquire_timeout)
        self.lease.start_renewing()
        self.session.role = "primary"
        self.job = Job(self.store, job_id, lease=self.lease, clock=self.clock, events=self.session.events,
                       **job_kwargs)
        self.job.runtime_left = lambda: self.session.remaining
        self._update_lead()
        self.session.watchers.append(self.check_stall)
        self.session.extra.update(job=job_id, lease={"name": lease_name, "token": self.lease.token})
        self._request: Optional[dict[str, Any]] = None
        self._last_poll = -1e18
        self.handed_over = False
        #: Views (Countdown, SessionBanner, HandoverStatus, ...) refreshed from the loop's
        #: thread when the phase or handover state changes; never from a background thread.
        self.views: list[Any] = []
        self._shown: Optional[tuple[str, str]] = None
        self._publish_state("primary")
        self.session.beat()
        stopping.install(self)  # SIGTERM and interpreter exit hand over at once (stopping.py)

    def _publish_state(self, state: str) -> None:
        _put(self.store, _key(self.lease_name, "state"), {
            "job": self.job.id, "primary": self.session.id, "label": self.session.label,
            "token": self.lease.token, "state": state, "at": self.clock.now().isoformat()})

    @property
    def state(self) -> HandoverState:
        status = "handing over" if self._request else ("done" if self.handed_over else "primary")
        return HandoverState("primary", status, self.lease_name, self.session.id, self.lease.token,
                             self.job.id)

    def track(self, iterable: Iterable[T], key: Optional[Callable[[T], str]] = None,
              display: Any = True) -> Iterator[T]:
        """``job.track`` that also hands over at the handover phase (see module docstring)."""
        self.job.stop_when = self._should_hand_over
        try:
            yield from self.job.track(iterable, key=key, display=display)
        finally:
            self.job.stop_when = None
        if self.handed_over:
            self._release("handover")
        elif self.job.status in ("completed", "cancelled"):
            self._release(self.job.status)
        elif stopping.requested() and self.lease.token is not None:
            self._release(f"stopped ({stopping.requested()})")
            stopping.pass_on()

    def check_stall(self) -> bool:
        """Stalled: the job runs but has finished no item for ``stall_after`` seconds (default
        10x the recent mean item time, at least 5 min) while this runtime still beats. Called
        on every heartbeat; emits ``job.stalled`` (a notification) once, and ``job.unstalled``
        when items finish again. The session record carries ``stalled`` for other runtimes'
        views and ``sessionkit status``."""
        job = self.job
        since = job.last_progress_at
        if job.status != "running" or since is None:
            stalled, idle, after = False, 0.0, 0.0
        else:
            rate = job.progress.rate
            after = self.stall_after or max(MIN_STALL_AFTER, 10.0 / rate if rate else MIN_STALL_AFTER)
            idle = self.clock.monotonic() - since
            stalled = idle >= after
        if stalled != self.stalled:
            self.stalled = stalled
            self.session.extra["stalled"] = stalled
            self.session.events.emit("job.stalled" if stalled else "job.unstalled", job=job.id,
                                     idle_s=round(idle, 1), stall_after_s=round(after, 1))
        return stalled

    def _update_lead(self) -> None:
        """A handover needs a final checkpoint (as long as the last one took) and a backup's
        takeover (two polls): the handover phase starts at least that long before the end."""
        lead = self.job.checkpoint_seconds + 2 * self.poll
        self.job.handover_lead = self.session.handover_lead = lead

    def stop_now(self, reason: str) -> bool:
        """Told to stop (SIGTERM, exit): end the loop with a final checkpoint and release the
        lease now. False when the loop is inside sessionkit's own code: it stops at its next
        tick (``_should_hand_over`` sees ``stopping.requested()``)."""
        if self.lease.token is None or not self.lease.held:
            return True  # not primary (any more): nothing to hand over, nothing to write
        active = self.job._active() if self.job._active is not None else None
        if active is not None and active.gi_running:
            return False
        if active is not None:
            active.close()  # the item in progress is not done: the backup runs it again
        elif self.job.status == "running":
            self.job.checkpoint()
        self._release(f"stopped ({reason})")
        return True

    def _should_hand_over(self) -> Optional[str]:
        if stopping.requested():
            return f"stopped ({stopping.requested()})"
        now = self.clock.monotonic()
        if now - self._last_poll < self.poll:
            return None
        self._last_poll = now
        self._update_lead()
        # Renewals and heartbeats have their own threads on real clocks; the loop does them
        # only where none runs (a FakeClock in tests), so it never waits on them otherwise.
        if self.lease.token is not None and self.lease.held and not self.lease.renewing:
            self.lease.renew_if_due()
        if not self.session.beating:
            self.session.beat_if_due()
        self.refresh_views()
        if self.session.phase not in ("handover", "expired"):
            return None
        if self._request is None:
            self._request = {"id": uuid.uuid4().hex, "from": self.session.id, "label": self.session.label,
                             "token": self.lease.token, "job": self.job.id,
                             "at": self.clock.now().isoformat(), "remaining_s": self.session.remaining}
            _put(self.store, _key(self.lease_name, "request"), self._request)
            self.session.events.emit("handover.requested", request=self._request["id"], job=self.job.id,
                                     token=self.lease.token, remaining_s=self.session.remaining)
            self.session.events.flush()
            return None
        if self._ready_backups():
            self.handed_over = True
            return "handover"
        return None

    def refresh_views(self, force: bool = False) -> None:
        """Re-render the views if the phase or handover status changed (loop thread only)."""
        shown = (self.session.phase, self.state.status)
        if force or shown != self._shown:
            self._shown = shown
            for view in self.views:
                view.update(self.state if type(view).__name__ == "HandoverStatus" else self.session.snapshot())

    def _ready_backups(self) -> list[str]:
        ready = []
        live = {s["id"] for s in list_sessions(self.store) if s.get("status") == "active"}
        for key in self.store.list(_key(self.lease_name, "ready") + "/"):
            found = _read(self.store, key)
            if found and found[0].get("request") == self._request["id"] and found[0].get("session") in live:
                ready.append(found[0]["session"])
        return ready

    def _release(self, reason: str) -> None:
        self.lease.stop_renewing()
        if self._request is not None:
            _put(self.store, _key(self.lease_name, "request"),
                 dict(self._request, state="released", released_at=self.clock.now().isoformat()))
        self._publish_state("released")
        self.lease.release()
        self.session.end(reason)
        stopping.uninstall(self)

    def close(self) -> None:
        """Give up the lease and end the session (e.g. at the end of a notebook)."""
        if self.lease.token is not None:
            self._release("closed")


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
        if not isinstance(priority, int):
            raise TypeError(f"priority must be an int (lower goes first), got {priority!r}")
        self.store = open_store(store)
        self.priority, self.approval, self.lease_name = priority, approval, lease_name
        self.session = Session(self.store, "backup", runtime=runtime, label=label, clock=clock, ping_url=ping_url,
                               warning_at=warning_at, handover_at=handover_at)
        self.session.extra.update(priority=priority)
        self.clock = self.session.clock
        self.lease = Lease(self.store, lease_name, holder=self.session.id, ttl=ttl, clock=self.clock,
                           events=self.session.events)
        self.poll = check_seconds("poll", poll, "how often the store is read") if poll is not None else self.lease.retry_period
        self.grace = grace if grace is not None else 2 * self.poll
        self._dropwatch = DropWatcher(self.store, clock=self.clock, events=self.session.events,
                                      exclude=(self.session.id,))
        self._answered: Optional[str] = None
        self._available_since: Optional[float] = None
        self._approval_id: Optional[str] = None
        self._waiting_since: Optional[float] = None  # when it first found no primary, on its clock
        self._warned_state = False
        self._warned_lease = False
        self.status = "watching"
        self.session.beat()

    @property
    def state(self) -> HandoverState:
        record = self.lease.record
        found = _read(self.store, _key(self.lease_name, "state"))
        detail = f"priority {self.priority}"
        waited = (self.clock.monotonic() - self._waiting_since) if self._waiting_since is not None else 0.0
        if self.status == "waiting for a primary" and waited >= NO_PRIMARY_POLLS * self.poll:
            detail = (f"no primary has written to {self.store.url} for {waited:.0f} s: is STORE the same "
                      f"as the primary's? {detail}")
        return HandoverState("backup", self.status, self.lease_name, record.holder if record else None,
                             record.token if record else None, found[0].get("job") if found else None, detail)

    def rank(self) -> int:
        """How many live backups go before this one."""
        me = (self.priority, self.session.id)
        ahead = 0
        for s in list_sessions(self.store):
            if s.get("role") == "backup" and s.get("status") == "active" and s["id"] != self.session.id:
                if (int(s.get("priority", 1)), s["id"]) < me:
                    ahead += 1
        return ahead

    def step(self) -> Optional[Primary]:
        """Look once: answer handover requests, take the lease when it is this backup's turn.
        Returns the new Primary once taken over, else None (``status`` says why)."""
        self.session.beat_if_due()
        # dropped: silent for 3 heartbeats, and never sooner than a lease could expire
        self._dropwatch.check(timeout=max(3 * self.session.heartbeat, self.lease.ttl))
        state = self._guarded_state()
        if not state or not state[0].get("job"):
            self.status = "waiting for a primary"
            if self._waiting_since is None:
                self._waiting_since = self.clock.monotonic()
            return None  # a free lease that never guarded a job is nothing to take over
        self._waiting_since = None
        if self.job_id is not None and state[0]["job"] != self.job_id:
            raise ValueError(f"the primary at {self.store.url} runs job {state[0]['job']!r}, not "
                             f"{self.job_id!r}: set the backup's job to the primary's, or use another store "
                             f"(nothing was taken over)")
        self._answer_request()
        try:
            current = self.lease.observe()
        except CorruptRecord as exc:  # held by an unknown holder until it lies still for its ttl
            current = None
            if not self._warned_lease:
                self._warned_lease = True
                log.warning("%s; this backup takes over once it has lain unchanged for %g s",
                            exc, self.lease.ttl)
        free = self.lease.damaged is None and (current is None or current.holder is None)
        if free and self._job_finished(state[0]):
            self.status = "done"
            return None
        expired = not free and (self.lease.expires_in() or 0) <= 0
        if not (free or expired):
            self._available_since = None
            self.status = "watching"
            return None
        now = self.clock.monotonic()
        if self._available_since is None:
            self._available_since = now
        if now - self._available_since < self.rank() * self.grace:
            return None  # a backup of higher priority goes first
        if self.approval == "required" and not self._approved():
            return None
        self.status = "taking over"
        token = self.lease.try_acquire()
        if token is None:
            return None
        return self._become_primary(current.holder if current else None, planned=free)

    def _guarded_state(self) -> Optional[tuple[dict[str, Any], Optional[str]]]:
        """The handover state record; when it is missing or damaged but the lease shows a
        primary existed (token >= 1), the most recent active job stands in for it, so a
        backup never waits on a record nobody will write (the new primary writes it anew)."""
        found = _read(self.store, _key(self.lease_name, "state"))
        if found and found[0].get("job"):
            return found
        try:
            record = self.lease.observe()
            token = record.token if record is not None else 0
        except CorruptRecord:
            record, token = None, -1  # someone wrote it: a primary existed
        if token == 0:
            return found  # no primary ever held this lease: truly waiting for one
        from .jobs.listing import latest_id

        job = latest_id(self.store, self.clock)
        if job is None:
            return found
        if not self._warned_state:
            self._warned_state = True
            log.warning("the handover state record %s in %s is missing or damaged; lease %r was "
                        "held (token %d; -1: its record is damaged), so this backup guards the most recent active job, %r",
                        _key(self.lease_name, "state"), self.store.url, self.lease_name, token, job)
        return {"job": job, "state": "unknown", "primary": record.holder if record else None}, None

    def _job_finished(self, state: dict[str, Any]) -> bool:
        """The primary released the lease because its job ended (not to hand it over)."""
        if state.get("state") != "released" or not state.get("job"):
            return False
        from .jobs.manifest import FINISHED, load

        loaded = load(self.store, state["job"])
        return loaded is not None and loaded.manifest.status in FINISHED

    def _answer_request(self) -> None:
        found = _read(self.store, _key(self.lease_name, "request"))
        if not found:
            return
        request = found[0]
        if request.get("state") == "released" or request.get("id") == self._answered:
            return
        self._answered = request["id"]
        _put(self.store, _key(self.lease_name, "ready", self.session.id), {
            "request": request["id"], "session": self.session.id, "label": self.session.label,
            "priority": self.priority, "at": self.clock.now().isoformat()})
        self.session.events.emit("handover.ready", request=request["id"], primary=request.get("from"),
                                 priority=self.priority)
        self.session.events.flush()

    def _approved(self) -> bool:
        if self._approval_id is None:
            self._approval_id = uuid.uuid4().hex
            _put(self.store, _key(self.lease_name, "approvals", self._approval_id), {
                "id": self._approval_id, "session": self.session.id, "label": self.session.label,
                "status": "pending", "at": self.clock.now().isoformat()}, expect=ABSENT)
            self.session.events.emit("approval.requested", request=self._approval_id)
            self.session.events.flush()
            log.warning("backup %r waits for approval: sessionkit.handover.approve(store, %r)",
                        self.session.label, self._approval_id)
        self.status = "approval pending"
        found = _read(self.store, _key(self.lease_name, "approvals", self._approval_id))
        return bool(found and found[0].get("status") == "granted")

    def _become_primary(self, previous: Optional[str], planned: bool) -> Primary:
        found = self._guarded_state()
        if not found or not found[0].get("job"):
            self.lease.release()
            raise SessionkitError(f"lease {self.lease_name!r} guards no job yet: start the primary first")
        state = found[0]
        request = _read(self.store, _key(self.lease_name, "request"))
        released = planned  # the lease was free: handed over, or released by an orderly stop
        planned = released and bool(request and request[0].get("state") == "released")
        self.session.role = "primary"
        self.session.events.context["role"] = "primary"
        self.status = "primary"
        primary = Primary(self.store, state["job"], session=self.session, lease=self.lease, clock=self.clock)
        self.session.events.emit("handover.completed", **{"from": previous or state.get("primary"),
                                 "to": self.session.id, "planned": planned, "token": self.lease.token,
                                 "how": "planned" if planned else ("released" if released else "expired"),
                                 "job": state["job"], **_waited(self.lease)})
        self.session.events.flush()
        return primary

    def watch(self, timeout: Optional[float] = None, on_step: Optional[Callable[["Backup"], None]] = None
              ) -> Optional[Primary]:
        """Watch every ``poll`` seconds until taking over (returns the new Primary) or
        ``timeout`` seconds pass (returns None). ``on_step`` is called after each look,
        from this thread (a view can refresh there)."""
        start = self.clock.monotonic()
        while True:
            primary = self.step()
            if on_step is not None:
                on_step(self)
            if primary is not None:
                return primary
            if self.status == "done":
                return None
            if timeout is not None and self.clock.monotonic() - start >= timeout:
                return None
            self.clock.sleep(self.poll)

    def close(self) -> None:
        self.session.end("closed")


def pending_approvals(store: Union[Store, str], lease_name: str = "primary") -> list[dict[str, Any]]:
    """Approval requests still waiting."""
    store = open_store(store)
    out = []
    for key in store.list(_key(lease_name, "approvals") + "/"):
        found = _read(store, key)
        if found and found[0].get("status") == "pending":
            out.append(found[0])
    return out


def approve(store: Union[Store, str], request_id: str, *, lease_name: str = "primary",
            by: str = "user") -> None:
    """Grant a backup's approval request (``sessionkit approve STORE REQUEST`` does this too)."""
    store = open_store(store)
    key = _key(lease_name, "approvals", request_id)
    found = _read(store, key)
    if found is None:
        raise LookupError(f"no approval request {request_id!r} in {store.url}; pending: "
                          f"{[a['id'] for a in pending_approvals(store, lease_name)] or 'none'}")
    body, version = found
    body.update(status="granted", granted_by=by)
    try:
        _put(store, key, body, expect=version)
    except Conflict as exc:
        raise SessionkitError(f"approval {request_id!r} changed while granting it; try again") from exc
    approver = EventLog(store, f"approver-{uuid.uuid4().hex}")
    approver.emit("approval.granted", request=request_id, session=body.get("session"), by=by)
    approver.flush()

