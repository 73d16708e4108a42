"""A session: one runtime taking part, as primary, backup or observer.

It writes ``sessions/<id>`` (only this session writes it, except an observer
marking it dropped), heartbeats from a background thread that touches only the
store, and knows how much time its runtime has left and which phase it is in:

    fresh -> active -> warning -> handover -> expired;  any --(ended or dropped)--> ended

(sessionkit/phase.py decides it). Its role and status are enums changed only through
session_record.session_after; its record is a :class:`~.session_record.SessionRecord`.
``remaining`` counts down on this session's own monotonic clock from the
runtime's start; wall-clock times in the record are for people.

Live sessions are kept apart from ended ones so that what watchers read every poll
grows with the sessions alive, not with history: an active session's record is
``sessions/<id>``; when it ends (or an observer marks it dropped) the record moves to
``sessions-ended/<id>`` (written there first, then removed from ``sessions/``; a
session marked dropped that beats again comes back to ``sessions/``). ``gc`` removes
ended records past a retention.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Optional, Union

from .validate import at_least_floor, check_period, check_seconds, check_timedelta
from .clock import SYSTEM_CLOCK, Clock, check_aware, clock_rate
from .errors import Conflict, CorruptRecord, InvalidTransition, SessionkitError, StoreError
from .events import EventLog
from .phase import PHASES, Phase, Thresholds, session_phase
from .records import read_all, read_one
from .session_record import LeaseHeld, Role, SessionEvent, SessionRecord, SessionStatus, session_after
from .env import detect, ipython_shell
from .runtimes import Runtime, get_runtime
from .scheduler import Task, scheduler_for
from .store import Store, open_store
from .registry import Registry

__all__ = ["Session", "SessionRecord", "Role", "SessionStatus", "Phase", "DropWatcher", "ROLES", "PHASES",
           "check_dropped", "list_sessions",
           "list_live_sessions", "live_session_ids", "read_session", "session_key", "ended_key", "remove_ended"]

log = logging.getLogger("sessionkit.session")
ROLES = tuple(r.value for r in Role)
HEARTBEAT = 30.0  # seconds between heartbeats by default (raised to the request floor: see validate.py)


LIVE, ENDED = "sessions/", "sessions-ended/"


def session_key(session_id: str) -> str:
    """Where a live session's record is."""
    return f"{LIVE}{session_id}"


def ended_key(session_id: str) -> str:
    """Where an ended (or dropped) session's record is."""
    return f"{ENDED}{session_id}"


def read_session(store: Store, session_id: str) -> Optional[SessionRecord]:
    """A session's record as stored (live or ended), or None."""
    for key in (session_key(session_id), ended_key(session_id)):
        stored = read_one(store, key, _decode)
        if stored is not None:
            return stored.value
    return None


def live_session_ids(store: Store) -> set[str]:
    """Ids of the sessions whose record is live (one listing, no reads): active ones, and
    ones that stopped beating and no observer has marked dropped yet."""
    return {key[len(LIVE):] for key in store.list(LIVE)}


def _end_record(store: Store, session_id: str, data: bytes, live_version: Optional[str]) -> None:
    """Move a session's record from live to ended: write the ended copy, then remove the
    live one (only if it is still ``live_version`` when given)."""
    store.put(ended_key(session_id), data)
    try:
        store.delete(session_key(session_id), expect=live_version)
    except Conflict:
        store.delete(session_key(session_id))  # marked dropped meanwhile: the end says more


_decode = SessionRecord.decode


class Session:
    """This runtime's part in the work. ``role``: "primary", "backup" or "observer".

    Thresholds (seconds left): ``warning_at`` (default 60 min) and ``handover_at``
    (15 min); ``fresh_for``: how long a new session counts as fresh (5 min).
    ``ping_url``: a dead-man's switch (e.g. a healthchecks.io check URL) pinged on every
    heartbeat, so an outside service can alert when the whole runtime is gone.
    """

    def __init__(self, store: Union[Store, str], role: str, *, runtime: Union[None, str, Runtime] = None,
                 label: Optional[str] = None, clock: Optional[Clock] = None, heartbeat: Optional[float] = None,
                 warning_at: float = 3600.0, handover_at: float = 900.0, fresh_for: float = 300.0,
                 started: Optional[datetime] = None, start: bool = True, ping_url: Optional[str] = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        role = Role(role)
        self.store = open_store(store)
        self.clock = clock or SYSTEM_CLOCK
        remote = getattr(self.store, "remote", False)
        heartbeat = (check_period("heartbeat", heartbeat, clock=self.clock, remote=remote,
                                  what="how often the session record is written, or None: 30 s")
                     if heartbeat is not None else at_least_floor(HEARTBEAT, clock=self.clock, remote=remote))
        warning_at = check_seconds("warning_at", warning_at, "time left when the warning phase starts")
        handover_at = check_seconds("handover_at", handover_at, "time left when the handover phase starts",
                                    zero_ok=True)
        fresh_for = check_seconds("fresh_for", fresh_for, "how long a new session shows 'fresh'", zero_ok=True)
        if not warning_at > handover_at >= 0:
            raise ValueError(f"warning_at ({warning_at}) must be greater than handover_at "
                             f"({handover_at}), and handover_at >= 0")
        if ping_url is not None and not (isinstance(ping_url, str) and ping_url.startswith(("http://", "https://"))):
            raise ValueError(f"ping_url must be an http:// or https:// URL (a dead-man's switch such as "
                             f"healthchecks.io), got {ping_url!r}")
        self.ping_url = ping_url
        self.role = role
        env = detect(self.clock)
        self.environment = env.kind
        self.runtime = get_runtime(runtime) if runtime is not None else get_runtime(env.preset)
        self.label = label or f"{env.kind}"
        self.id = uuid.uuid4().hex
        self.heartbeat = float(heartbeat)
        self.warning_at, self.handover_at, self.fresh_for = warning_at, handover_at, fresh_for
        #: seconds a handover needs (set by a Primary from its measured checkpoint time and
        #: its backup's polls); the handover phase starts no later than that before the end
        self.handover_lead = 0.0
        now = self.clock.now()
        if started is not None:
            started_at = check_aware(started, "started")
        elif self.clock.real_seconds(1.0) == 1.0:
            started_at = env.started  # real seconds: the runtime's real start (VM uptime or process start)
        else:
            started_at = now  # fake and scaled clocks: the runtime's real uptime means nothing there
        self.started = started_at
        self._mono_start = self.clock.monotonic() - max(0.0, (now - started_at).total_seconds())
        self._last_activity = self.clock.monotonic()
        self.events = EventLog(self.store, self.id, clock=self.clock,
                               context={"session": self.id, "role": role, "label": self.label})
        self.status = SessionStatus.ACTIVE  # changed only through session_after
        self.end_reason: Optional[str] = None
        self._version: Optional[str] = None
        self._beats = 0
        self._last_beat = self.clock.monotonic()
        self._phase = self.phase
        self._lock = threading.RLock()
        self._heartbeats: Optional[Task] = None  # the heartbeat task, on the clock's scheduler
        # shown in views and status: a primary's job and lease, a backup's priority, a stall
        self.job: Optional[str] = None
        self.lease_held: Optional[LeaseHeld] = None
        self.priority: Optional[int] = None
        self.stalled = False
        #: called on every heartbeat, before the record is written (from the beating thread)
        self.watchers: list[Callable[[], None]] = []
        self._watch_activity()
        if start:
            self.start()

    # -- time ------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return self.clock.monotonic() - self._mono_start

    @property
    def remaining(self) -> Optional[float]:
        """Seconds until the runtime's limit (None: no limit)."""
        if self.runtime.max_runtime is None:
            return None
        return self.runtime.max_runtime - self.elapsed

    @property
    def deadline(self) -> Optional[datetime]:
        """Wall-clock time of the runtime's limit (for display)."""
        remaining = self.remaining
        return None if remaining is None else self.clock.now() + timedelta(seconds=remaining)

    @property
    def idle_remaining(self) -> Optional[float]:
        """Estimated seconds until an idle cut-off: from the last cell run (IPython's
        pre_run_cell) or the session's start. None where the runtime has no idle limit."""
        if self.runtime.idle_timeout is None:
            return None
        return self.runtime.idle_timeout - (self.clock.monotonic() - self._last_activity)

    def touch(self) -> None:
        """Record activity now (called for each cell run where IPython tells us)."""
        self._last_activity = self.clock.monotonic()

    def _watch_activity(self) -> None:
        shell = ipython_shell()
        if shell is not None:
            shell.events.register("pre_run_cell", lambda *a: self.touch())

    @property
    def phase(self) -> Phase:
        """This session's phase (phase.session_phase): ``ended`` once it ended."""
        return session_phase(self.status is SessionStatus.ACTIVE, self.remaining, self.elapsed, self.thresholds())

    def promote(self) -> None:
        """A backup that took the lease becomes the primary: its record, views and events say
        so from now on (the one role change a session makes)."""
        with self._lock:
            try:
                self.role, self.status = session_after(self.role, self.status, SessionEvent.PROMOTE)
            except InvalidTransition:
                raise InvalidTransition(f"session {self.id[:8]}", self.role.value, "primary",
                                        ("primary",) if self.role == "backup" else ()) from None
            self.events.context["role"] = self.role.value

    def thresholds(self) -> Thresholds:
        """Where this session's phases start, the measured handover lead included (the page's
        countdown is given the same, so the two never disagree: sessionkit/phase.py)."""
        return Thresholds(self.warning_at, self.handover_at, self.handover_lead, self.fresh_for)

    # -- the record --------------------------------------------------------------

    def snapshot(self) -> SessionRecord:
        """This session now, for views and the record (``last_heartbeat``: the last one written)."""
        deadline = self.deadline
        return SessionRecord(
            id=self.id, role=self.role, label=self.label, status=self.status, phase=self.phase,
            runtime=self.runtime, environment=self.environment, started=self.started.isoformat(),
            remaining_s=self.remaining, deadline=deadline.isoformat() if deadline else None,
            idle_remaining_s=self.idle_remaining, thresholds=self.thresholds(), elapsed_s=self.elapsed,
            clock_rate=clock_rate(self.clock), fresh_left_s=max(0.0, self.fresh_for - self.elapsed),
            end_reason=self.end_reason, host=socket.gethostname(), pid=os.getpid(),
            heartbeats=self._beats, job=self.job, lease=self.lease_held, priority=self.priority,
            stalled=self.stalled)

    def _write(self) -> None:
        record = dataclasses.replace(self.snapshot(), last_heartbeat=self.clock.now().isoformat())
        data = record.encode()
        if self.status is not SessionStatus.ACTIVE:
            _end_record(self.store, self.id, data, self._version)
            return
        try:
            self._version = self.store.put(session_key(self.id), data, expect=self._version)
        except Conflict:
            # Only an observer marking this session dropped changes its record: it is back.
            log.warning("session %s was marked dropped while silent; it is back", self.id[:8])
            self.events.emit("session.resumed")
            self._version = self.store.put(session_key(self.id), data)

    def start(self) -> None:
        with self._lock:
            self._write()
            self.events.emit("session.started", runtime=self.runtime.as_dict(), environment=self.environment,
                             started=self.started.isoformat(), remaining_s=self.remaining)
            self.events.flush()
            # a thread on real and scaled clocks; a FakeClock's advance runs the beats that fall due
            self._heartbeats = scheduler_for(self.clock).start(f"heartbeat-{self.id[:8]}", self._beat_step,
                                                               after=self.heartbeat)

    def beat(self) -> str:
        """Write one heartbeat now; emit a phase event if the phase changed. Returns the phase."""
        with self._lock:
            if self.status != "active":
                return self.phase
            self._beats += 1
            self._last_beat = self.clock.monotonic()
            for watch in list(self.watchers):  # e.g. a Primary's stall check: before the write
                try:
                    watch()
                except SessionkitError as exc:
                    log.warning("session %s: a heartbeat watcher failed: %s", self.id[:8], exc)
            phase = self.phase
            if phase != self._phase:
                self.events.emit("session.phase", **{"from": self._phase, "to": phase},
                                 remaining_s=self.remaining)
                self._phase = phase
            self._write()
            if self.events.pending:
                self.events.flush()
            if self.ping_url:
                scheduler_for(self.clock).start("ping", self._ping, after=0)
            return phase

    def _ping(self) -> None:
        """The dead-man's switch: tell an outside service (healthchecks-style) this runtime
        lives. It alerts when pings stop: the whole runtime is gone and nothing else can say so.
        A task of its own (one step), so a slow service never delays a heartbeat or the loop."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.ping_url, timeout=10) as answer:
                answer.read(1024)
        except (urllib.error.URLError, OSError) as exc:
            log.warning("session %s: ping to the dead-man's switch failed: %s", self.id[:8],
                        getattr(exc, "reason", exc))

    @property
    def beating(self) -> bool:
        """True while background heartbeats run."""
        return self._heartbeats is not None and self._heartbeats.alive

    def stop_beating(self) -> None:
        """Stop the background heartbeats without ending the session: its record stays as it
        is, and watchers see it go silent (what a runtime that froze or was killed leaves)."""
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            self._heartbeats.join(timeout=5)

    def beat_if_due(self) -> str:
        """Beat now if a heartbeat is due on this session's clock (a loop may call this to
        beat between the background heartbeats)."""
        if self.clock.monotonic() - self._last_beat >= self.heartbeat:
            return self.beat()
        return self.phase

    def _beat_step(self) -> Optional[float]:
        """One background heartbeat; the next one ``heartbeat`` seconds later (none once ended)."""
        if self.status != "active":
            return None
        try:
            self.beat()
        except (StoreError, OSError) as exc:
            log.warning("session %s: heartbeat failed: %s", self.id[:8], exc)
        return self.heartbeat if self.status == "active" else None

    def end(self, reason: str = "ended") -> None:
        """Stop heartbeating and mark the session ended (it stays listed as history)."""
        with self._lock:
            if self.status != "active":
                return
            if self._heartbeats is not None:
                self._heartbeats.cancel()
            self.role, self.status = session_after(self.role, self.status, SessionEvent.END)
            self.end_reason = reason
            self.events.emit("session.ended", reason=reason, elapsed_s=self.elapsed)
            try:
                self._write()
                self.events.flush()
            except (StoreError, OSError) as exc:
                log.warning("session %s: could not record its end: %s", self.id[:8], exc)
        if self._heartbeats is not None:
            self._heartbeats.join(timeout=5)  # a beat in flight (never the caller's own thread)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end("error" if exc is not None else "ended")

    def __repr__(self) -> str:
        return f"<Session {self.id[:8]} {self.role} {self.label!r} {self.phase}>"


class DropWatcher:
    """Marks sessions dropped whose record has not changed for ``timeout`` seconds on
    the watcher's own clock (never by comparing another machine's timestamps)."""

    def __init__(self, store: Union[Store, str], *, clock: Optional[Clock] = None,
                 events: Optional[EventLog] = None, exclude: tuple[str, ...] = ()) -> None:
        self.store = open_store(store)
        self.clock = clock or SYSTEM_CLOCK
        self.events = events
        self.exclude = set(exclude)  # e.g. the watcher's own session
        self._seen: dict[str, tuple[str, float]] = {}  # id -> (version, my time it changed)

    def check(self, timeout: float) -> list[str]:
        """Look once; return the ids marked dropped by this call."""
        dropped = []
        now = self.clock.monotonic()
        for stored in read_all(self.store, LIVE, _decode).records:
            key, body = stored.key, stored.value
            session_id = key.split("/", 1)[1]
            if session_id in self.exclude:
                continue
            seen = self._seen.get(session_id)
            if seen is None or seen[0] != stored.version:
                self._seen[session_id] = (stored.version, now)
                continue
            if now - seen[1] < timeout or not body.active:
                continue
            _, status = session_after(body.role, body.status, SessionEvent.DROP)
            body = dataclasses.replace(body, status=status, phase=Phase.ENDED, end_reason="no heartbeat",
                                       dropped_at=self.clock.now().isoformat())
            if not self._mark_dropped(session_id, body, stored.version):
                continue  # it beat just now: alive
            del self._seen[session_id]
            dropped.append(session_id)
            if self.events is not None:
                self.events.emit("session.dropped", dropped=session_id, label=body.label,
                                 role=body.role.value, silent_s=now - seen[1],
                                 last_heartbeat=body.last_heartbeat)
        if self.events is not None and self.events.pending:
            self.events.flush()
        return dropped


    def _mark_dropped(self, session_id: str, body: SessionRecord, version: str) -> bool:
        """Move a silent session's record to the ended ones, marked dropped; False when it
        beat meanwhile (its live record changed: nothing is left changed), or when it had
        ended and only its live record was left (killed between its two writes: that record
        is removed, and its own end kept)."""
        try:
            ended = read_one(self.store, ended_key(session_id), _decode)  # only when dropping: rare
        except CorruptRecord:
            ended = None  # a damaged end says less than this record: replace it
        if ended is not None and not _newer(body, ended.value):
            _remove_stale_live(self.store, session_id, version)
            return False
        marked = self.store.put(ended_key(session_id), body.encode())
        try:
            self.store.delete(session_key(session_id), expect=version)
            return True
        except Conflict:
            try:  # undo, unless the session itself ended meanwhile and wrote its own end
                self.store.delete(ended_key(session_id), expect=marked)
            except Conflict:
                log.info("session %s ended while being marked dropped", session_id[:8])
            return False


#: this process's drop watcher for each store (by url): what it has seen over repeated calls
_watchers: Registry[str, DropWatcher] = Registry("sessions.drop_watchers")


def check_dropped(store: Union[Store, str], timeout: float, *, clock: Optional[Clock] = None,
                  events: Optional[EventLog] = None) -> list[str]:
    """Mark sessions dropped whose heartbeat record has not changed for ``timeout`` seconds,
    as seen by this process over repeated calls; returns the ids dropped now."""
    store = open_store(store)
    watcher = _watchers.get_or_make(store.url, lambda: DropWatcher(store, clock=clock, events=events),
                                    keep=lambda w: clock is None or w.clock is clock)
    if events is not None:
        watcher.events = events
    return watcher.check(timeout)


def _remove_stale_live(store: Store, session_id: str, version: str) -> None:
    """Remove a live record its session's own end superseded (unless it beat meanwhile)."""
    try:
        store.delete(session_key(session_id), expect=version)
    except Conflict:
        log.info("session %s beat again while its stale live record was being removed", session_id[:8])


def list_sessions(store: Union[Store, str], damaged: Optional[list[CorruptRecord]] = None) -> list[SessionRecord]:
    """Every session record (active, ended and dropped), oldest start first; a damaged one
    is logged, left out, and added to ``damaged`` when given."""
    store = open_store(store)
    by_id: dict[str, SessionRecord] = {}
    for prefix in (ENDED, LIVE):
        found = read_all(store, prefix, _decode)
        if damaged is not None:
            damaged.extend(found.damaged)
        for body in found.values():
            other = by_id.get(body.id)
            if other is None or _newer(body, other):
                by_id[body.id] = body
    return sorted(by_id.values(), key=lambda s: s.started or "")


def _newer(live: SessionRecord, ended: SessionRecord) -> bool:
    """A session found in both places: the live record wins when it beat after the ended one
    was written (marked dropped, then came back); the ended one when the session ended and
    was killed before removing its live record."""
    return (live.last_heartbeat or "") > (ended.last_heartbeat or "")


def list_live_sessions(store: Union[Store, str]) -> list[SessionRecord]:
    """The records of live sessions only: what watchers read every poll (O(live sessions))."""
    return read_all(open_store(store), LIVE, _decode).values()


def remove_ended(store: Union[Store, str], older_than: timedelta = timedelta(days=30), *,
                 clock: Optional[Clock] = None) -> list[str]:
    """Remove the records of sessions that ended (or were dropped) more than ``older_than``
    ago, and move ended records still among the live ones (stores written by older versions, or a
    session killed between its two writes) to the ended ones. Returns the ids removed.
    Their events stay: history is built from events, not from these records."""
    check_timedelta("older_than", older_than, "how long ago a record must have ended")
    store = open_store(store)
    cutoff = ((clock or SYSTEM_CLOCK).now() - older_than).isoformat()
    ended = {stored.key[len(ENDED):]: stored for stored in read_all(store, ENDED, _decode).records}
    moved = False
    for stored in read_all(store, LIVE, _decode).records:
        session_id = stored.key[len(LIVE):]
        later = ended.get(session_id)
        if later is not None and not _newer(stored.value, later.value):
            _remove_stale_live(store, session_id, stored.version)
        elif not stored.value.active:
            _end_record(store, session_id, stored.value.encode(), stored.version)
            moved = True
    if moved:
        ended = {stored.key[len(ENDED):]: stored for stored in read_all(store, ENDED, _decode).records}
    removed = []
    for stored in ended.values():
        ended_at = stored.value.dropped_at or stored.value.last_heartbeat or ""
        if ended_at and ended_at < cutoff:
            try:
                store.delete(stored.key, expect=stored.version)
            except Conflict:
                continue  # it came back and ended again just now
            removed.append(stored.key[len(ENDED):])
    return removed
