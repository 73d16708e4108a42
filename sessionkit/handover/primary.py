"""The primary: the runtime that runs the job, fenced by the lease, and hands it over.

Planned: the primary reaches its ``handover`` phase, publishes a request; a live
backup answers ready; the primary stops taking items, checkpoints and releases the
lease; the backup acquires it (token + 1) and resumes the job. On SIGTERM or at
interpreter exit it checkpoints and releases at once (stopping.py).

Every change of the primary's :class:`~.primary_status.PrimaryStatus` goes through the
pure ``transition`` of primary_status.py; views are given a :class:`HandoverView` (a
view that is a :class:`HandoverViewer`) or the session's record (every other view).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, TypeVar, Union, runtime_checkable

from .. import stopping
from ..validate import check_period, check_seconds
from ..clock import SYSTEM_CLOCK, Clock, clock_rate
from ..errors import LeaseLost, StoreError
from ..jobs import Job
from ..lease import Lease, read_lease
from ..records import read_all
from ..runtimes import Runtime
from ..session_record import LeaseHeld
from ..sessions import Session, live_session_ids, read_session
from ..stall import StallSeen, decide_stall
from ..store import Store, open_store
from .decide import BackupStatus
from .primary_status import LoopEvent, LoopSeen, PrimaryAct, PrimaryStatus, transition
from .records import GuardRecord, GuardStatus, Ready, Request, handover_key, read_record

__all__ = ["Primary", "HandoverView", "HandoverViewer"]

log = logging.getLogger("sessionkit.handover")

T = TypeVar("T")
#: real seconds between redraws of a running primary's views, so a page tells a live view
#: from one a reload cut off (widgets/session.py marks a view stale after 90 s without one)
VIEW_KEEPALIVE_S = 20.0


@dataclass(frozen=True)
class HandoverView:
    """What a view shows about handover: plain data (was ``HandoverState``)."""

    role: str  # "primary", "backup" or "observer"
    #: a backup's BackupStatus; a primary's PrimaryStatus (``detail`` says to whom, or what to do).
    #: Both are str enums: the value is the word shown ("watching", "handed over", ...)
    status: Union[BackupStatus, PrimaryStatus]
    lease: str
    holder: Optional[str]
    token: Optional[int]
    job: Optional[str]
    detail: str = ""

    @property
    def ended(self) -> bool:
        """The last word: a backup that is done, or a primary whose loop ended."""
        if isinstance(self.status, PrimaryStatus):
            return self.status.ended
        return self.status == BackupStatus.DONE


@runtime_checkable
class HandoverViewer(Protocol):
    """A view of the handover (widgets.session.HandoverStatus): a Primary redraws it with its
    HandoverView; every other view of a primary is given the session's record."""

    def show_handover(self, view: HandoverView) -> None: ...


def __getattr__(name: str) -> Any:
    if name == "HandoverState":
        warnings.warn("sessionkit.handover.HandoverState is now HandoverView", DeprecationWarning, stacklevel=2)
        return HandoverView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
                                        "real seconds without a finished item, or None: 10x the recent "
                                        "mean item time, at least 5 min")
        self.stall_after = stall_after
        self.stalled = False
        self.store = open_store(store)
        # checked before anything is written (a session record, the lease)
        if poll is not None:
            poll = check_period("poll", poll, clock=session.clock if session else clock or SYSTEM_CLOCK,
                                remote=getattr(self.store, "remote", False),
                                what="how often handover requests are read, or None: the lease's retry period")
        if acquire_timeout is not None:
            check_seconds("acquire_timeout", acquire_timeout, "how long to wait for the lease, or None: "
                          "for ever", zero_ok=True)
        if session is not None and session.role != "primary":
            raise ValueError(f"a Primary runs in a primary session, got a {session.role} session: "
                             f"an observer never takes a lease; a backup becomes primary through "
                             f"Backup.step(), which promotes its session")
        self.session = session or Session(self.store, "primary", runtime=runtime, label=label, clock=clock,
                                          ping_url=ping_url, warning_at=warning_at, handover_at=handover_at)
        self.clock = self.session.clock
        self.lease_name = lease_name
        self.lease = lease or Lease(self.store, lease_name, holder=self.session.id, ttl=ttl,
                                    clock=self.clock, events=self.session.events)
        self.poll = poll if poll is not None else self.lease.retry_period
        if not self.lease.held:
            self.lease.acquire(timeout=acquire_timeout)
        self.lease.start_renewing()
        self.job = Job(self.store, job_id, lease=self.lease, clock=self.clock, events=self.session.events,
                       **job_kwargs)
        self.job.runtime_left = lambda: self.session.remaining
        self._update_lead()
        self.session.watchers.append(self.check_stall)
        self.session.job, self.session.lease_held = job_id, LeaseHeld(lease_name, self.lease.token)
        self._request: Optional[Request] = None
        self._last_poll = -1e18
        self.handed_over = False
        self._handed_to = ""  # who answered ready, in words ("backup (1a2b3c4d)")
        #: what this primary is doing; changed only through ``_see`` (primary_status.transition)
        self.status = PrimaryStatus.PRIMARY
        self._detail = ""  # how the loop ended, in words, once it did
        self._external = False  # a framework's loop runs the job (begin_external)
        #: Views (Countdown, SessionBanner, HandoverStatus, ...) refreshed from the loop's
        #: thread when the phase or handover state changes; never from a background thread.
        self.views: list[Any] = []
        self._shown: Optional[tuple[str, str, bool]] = None
        self._drawn_at = self.clock.monotonic()  # when the views were last redrawn, on the clock
        self._publish_guard(GuardStatus.PRIMARY)
        self.session.beat()
        stopping.install(self)  # SIGTERM and interpreter exit hand over at once (stopping.py)

    def _publish_guard(self, status: GuardStatus) -> None:
        record = GuardRecord(self.job.id, self.session.id, self.session.label, self.lease.token, status,
                             self.clock.now().isoformat())
        self.store.put(handover_key(self.lease_name, "state"), record.encode())

    @property
    def handover_view(self) -> HandoverView:
        """What views show about this primary's handover (reads nothing)."""
        if self.status.ended:
            detail = self._detail
        elif self.status is PrimaryStatus.HANDING_OVER:
            detail = (f"to {self._handed_to}" if self._handed_to else
                      "no backup has answered yet; still working")
        else:
            detail = ""
        return HandoverView("primary", self.status, self.lease_name, self.session.id, self.lease.token,
                            self.job.id, detail)

    @property
    def state(self) -> HandoverView:
        """Deprecated: ``handover_view`` ("state" is a job's own resumable data only)."""
        warnings.warn("Primary.state is now Primary.handover_view", DeprecationWarning, stacklevel=2)
        return self.handover_view

    def _see(self, event: LoopEvent, interrupted: bool = False) -> PrimaryAct:
        """Something happened to the loop: the next status from primary_status.transition;
        returns what to do (the caller releases: only it knows why, in words)."""
        seen = LoopSeen(event, job_status=self.job.status, requested=self._request is not None,
                        handed_over=self.handed_over, stop_requested=bool(stopping.requested()),
                        holds_lease=self.lease.token is not None, interrupted=interrupted)
        decision = transition(self.status, seen)
        self.status = decision.status
        return decision.act

    def track(self, iterable: Iterable[T], key: Optional[Callable[[T], str]] = None,
              display: Any = True) -> Iterator[T]:
        """``job.track`` that also hands over at the handover phase (see module docstring).
        When the loop ends, every view shows how (``state``)."""
        return self._drive(lambda: self.job.track(iterable, key=key, display=display))

    def map(self, fn: Callable[[T], Any], items: Iterable[T], **options: Any) -> Iterator[tuple[T, Any]]:
        """``job.map`` that also hands over at the handover phase: it stops submitting, hands
        back the items in flight, checkpoints and hands over; the backup's ``map`` submits
        only what is not done."""
        return self._drive(lambda: self.job.map(fn, items, **options))

    def _drive(self, loop: Callable[[], Iterator[Any]]) -> Iterator[Any]:
        self.job.stop_when = self._should_hand_over
        self._see(LoopEvent.BEGAN)
        try:
            yield from loop()
        except LeaseLost as exc:
            self._see(LoopEvent.LEASE_LOST)
            self._finish(self._lost_to(exc))
            raise
        except GeneratorExit:  # closed (an interrupt in the loop's body, a break): the job paused
            self._see(LoopEvent.CLOSED)
            self._finish("run the cell again to resume")
            raise
        except BaseException as exc:
            # the job learns its outcome later (outcome.py): say what this exception means now
            self._see(LoopEvent.RAISED, interrupted=isinstance(exc, KeyboardInterrupt))
            self._finish("run the cell again to resume")
            raise
        finally:
            self.job.stop_when = None
        self._conclude()

    # -- loops sessionkit does not drive (training frameworks) -----------------

    def begin_external(self) -> None:
        """A loop of its own (a training framework's) runs this primary's job: it calls
        ``should_hand_over()`` at each step, saves when told, then ``end_external()``.
        Until then a SIGTERM only sets ``stopping.requested()`` for that loop to see:
        releasing the lease before the loop has saved would lose its last steps."""
        self._external = True
        self._see(LoopEvent.BEGAN)

    def should_hand_over(self) -> Optional[str]:
        """Why the loop must save and stop now ("handover" when a backup answered the
        request of the handover phase, "stopped (SIGTERM)"), else None. Cheap: reads the
        store at most every ``poll`` seconds."""
        return self._should_hand_over()

    def end_external(self) -> None:
        """The external loop ended (after its last checkpoint): hand over or release the
        lease as its job's status says, and show how it ended."""
        self._external = False
        self._conclude()

    def _conclude(self) -> None:
        """The loop ended: release the lease if the job is done or handed over, say how."""
        act = self._see(LoopEvent.RETURNED)
        status = self.status
        if act is PrimaryAct.RELEASE:
            self._release("handover" if status is PrimaryStatus.HANDED_OVER else status.value)
        if status is PrimaryStatus.HANDED_OVER:
            self._finish(f"to {self._handed_to or 'the backup'} at {self.job.done}"
                         f"{'/' + str(self.job.total) if self.job.total else ''}; this runtime can be let go")
        elif act is PrimaryAct.RELEASE_AND_PASS_ON:
            self._release(f"stopped ({stopping.requested()})")
            self._finish(f"{stopping.requested()}; the lease is released for a backup")
            stopping.pass_on()
        elif status in (PrimaryStatus.COMPLETED, PrimaryStatus.CANCELLED):
            self._finish(f"{self.job.done} done")
        else:
            self._finish("run the cell again to resume")

    def _lost_to(self, exc: LeaseLost) -> str:
        """Who has the lease now, in words, when the store says (one read, best effort):
        a primary past its renew deadline stops before it knows whether anyone took over."""
        newer, holder = exc.newer, exc.newer_holder
        if newer is None or (exc.token is not None and newer <= exc.token):
            try:
                record = read_lease(self.store, self.lease_name)
            except StoreError as err:
                log.info("lease %r: could not read who holds it now: %s", self.lease_name, err)
                record = None
            if record is None or record.holder is None or (exc.token is not None and record.token <= exc.token):
                return str(exc)
            newer, holder = record.token, record.holder
        who = _describe_sessions(self.store, [holder]) if holder else "another runtime"
        return f"to {who}, token {newer}: it is primary now; this one wrote nothing after that"

    def _finish(self, detail: str) -> None:
        """The loop ended (``status`` says how): every view says so, once (loop thread)."""
        self._detail = detail
        try:
            self.refresh_views(force=True)
        except (ValueError, OSError) as exc:  # the page or stream is gone (interpreter exit)
            log.info("could not show how the loop ended (%s: %s): %s", self.status, detail, exc)

    def check_stall(self) -> bool:
        """Stalled: the job runs but has finished no item for ``stall_after`` real seconds
        (default 10x the recent mean item time, at least 5 min; sessionkit/stall.py decides,
        on real seconds whatever the clock's scale) while this runtime still beats. Called
        on every heartbeat; emits ``job.stalled`` (a notification) once, and ``job.unstalled``
        when items finish again. The session record carries ``stalled`` for other runtimes'
        views and ``sessionkit status``; the loop redraws its views when it changes."""
        job = self.job
        since = job.last_progress_at
        per_real = clock_rate(self.clock)  # clock seconds per real second
        running = job.status == "running" and since is not None
        rate = job.progress.rate if running else None
        seen = StallSeen(running=running,
                         idle_s=(self.clock.monotonic() - since) / per_real if running else 0.0,
                         item_s=1.0 / (rate / per_real) if rate else None, stall_after_s=self.stall_after)
        decision = decide_stall(seen)
        stalled = decision.stalled
        if stalled != self.stalled:
            self.stalled = stalled
            self.session.stalled = stalled
            self.session.events.emit("job.stalled" if stalled else "job.unstalled", job=job.id,
                                     idle_s=round(decision.idle_s, 1), stall_after_s=round(decision.after_s, 1))
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
        if self._external:
            return False  # the framework's loop sees stopping.requested(), saves, then releases
        active = self.job.active_loop
        if active is not None and active.gi_running:
            return False
        if active is not None:
            active.close()  # the item in progress is not done: the backup runs it again
        elif self.job.status == "running":
            self.job.checkpoint()
        ended = self.status.ended
        if self._see(LoopEvent.SIGNALLED) is not PrimaryAct.NOTHING:
            self._release(f"stopped ({reason})")
            if not ended:
                self._finish(f"{reason}; the lease is released for a backup")
        return True

    def _should_hand_over(self) -> Optional[str]:
        if stopping.requested():
            return f"stopped ({stopping.requested()})"
        now = self.clock.monotonic()
        if now - self._last_poll < self.poll:
            return None
        self._last_poll = now
        self._update_lead()
        # renewals and heartbeats are background tasks on every clock (sessionkit/scheduler.py)
        self.refresh_views()
        if self.session.phase not in ("handover", "expired"):
            return None
        if self._request is None:
            self._request = Request(uuid.uuid4().hex, self.session.id, self.session.label, self.lease.token,
                                    self.job.id, self.clock.now().isoformat(), self.session.remaining)
            self.store.put(handover_key(self.lease_name, "request"), self._request.encode())
            self.session.events.emit("handover.requested", request=self._request.id, job=self.job.id,
                                     token=self.lease.token, remaining_s=self.session.remaining)
            self.session.events.flush()
            self._see(LoopEvent.REQUESTED)
            return None
        ready = self._ready_backups()
        if ready:
            self.handed_over = True
            self._handed_to = self.job.handed_to = _describe_sessions(self.store, ready)
            return "handover"
        return None

    def refresh_views(self, force: bool = False) -> None:
        """Re-render the views if the phase or handover status changed (loop thread only)."""
        handover = self.handover_view
        shown = (self.session.phase, handover.status, self.stalled)  # a cleared stall redraws too
        now = self.clock.monotonic()
        keepalive = now - self._drawn_at >= VIEW_KEEPALIVE_S * clock_rate(self.clock)  # the page sees it live
        if keepalive and not force and shown == self._shown:
            self._drawn_at = now  # nothing changed: only the page's views that can go stale
            views = [view for view in self.views if getattr(view, "goes_stale", False)]
        elif force or shown != self._shown:
            self._shown, self._drawn_at, views = shown, now, self.views
        else:
            views = []
        record = self.session.snapshot() if views else None
        for view in views:
            if isinstance(view, HandoverViewer):
                view.show_handover(handover)
            else:
                view.update(record)

    def _ready_backups(self) -> list[str]:
        """Live backups that answered this primary's request."""
        assert self._request is not None
        answers = read_all(self.store, handover_key(self.lease_name, "ready") + "/", Ready.decode).values()
        answered = [a.session for a in answers if a.request == self._request.id]
        if not answered:
            return []
        live = live_session_ids(self.store)
        return [session for session in answered if session in live]

    def _release(self, reason: str) -> None:
        self.lease.stop_renewing()
        if self._request is not None:
            released = dataclasses.replace(self._request, status="released",
                                           released_at=self.clock.now().isoformat())
            self.store.put(handover_key(self.lease_name, "request"), released.encode())
        self._publish_guard(GuardStatus.RELEASED)
        self.lease.release()
        self.session.end(reason)
        stopping.uninstall(self)

    def close(self) -> None:
        """Give up the lease and end the session (e.g. at the end of a notebook)."""
        ended = self.status.ended
        if self._see(LoopEvent.CLOSE) is not PrimaryAct.NOTHING:
            self._release("closed")
            if not ended:
                self._finish("the lease is released")


def handed_to(store: Store, lease_name: str, job: Optional[str]) -> Optional[str]:
    """Whom the last primary of ``lease_name`` handed ``job`` over to, in words, as the
    store says (``backup (1a2b3c4d)``); None when it did not hand this job over: no request,
    a request still open, or one for another job. Views read from the store use it, so a
    handed-over job reads "handed over to ...", never only "paused"."""
    found = read_record(store, Request.decode, lease_name, "request")
    request = found.value if found else None
    if request is None or request.open or (job is not None and request.job not in (None, job)):
        return None
    answers = read_all(store, handover_key(lease_name, "ready") + "/", Ready.decode).values()
    answered = sorted(a.session for a in answers if a.request == request.id)
    return _describe_sessions(store, answered) if answered else None


def _describe_sessions(store: Store, ids: list[str]) -> str:
    """``backup (1a2b3c4d)``, or the first of several ready backups."""
    record = read_session(store, ids[0])
    named = f"{(record.label if record else '') or 'a runtime'} ({ids[0][:8]})"
    return named if len(ids) == 1 else f"{named} or one of {len(ids) - 1} other ready backups"


