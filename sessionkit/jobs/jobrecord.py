"""A job's record as one process holds it: loading, reading, status changes, checkpoints.

``JobRecord`` is the part of ``Job`` (job.py) that keeps the manifest this process
holds, changes its status (every change through ``status.decide``), and writes it
(through the checkpoint writer): what a job *is*, with no loop. ``Job`` adds what
runs it (``track``, ``map``, a run's protocol, how an interrupted run ended) and its
blobs.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Generator, Optional, Union

from ..validate import at_least_floor, check_count, check_period, check_seconds
from ..clock import SYSTEM_CLOCK, Clock, clock_rate
from ..errors import Conflict, InvalidTransition, LeaseLost, SessionkitError
from ..events import EventLog
from ..lease import Lease, read_lease
from ..store import ABSENT, Store, open_store
from . import control as controls
from .checkpoint import Checkpointer, EventFlush, Snapshot
from .control import Control
from .doneset import POSITION
from .loop import Run
from .manifest import Loaded, Manifest, check_job_id, load, manifest_key
from .outcome import OUTCOMES
from .progress import Progress, RateMeter
from .status import Happened, JobStatus, Observation, allowed, decide
from .userstate import frozen_state
from .writer import CheckpointWriter

log = logging.getLogger("sessionkit.jobs")

LOCAL_CONTROL_POLL = 1.0  # seconds between reads of pause/cancel requests on a local or memory store
REMOTE_CONTROL_POLL = 10.0  # ... on a remote store (Drive, GCS, S3), where each read is a request

__all__ = ["JobRecord", "LOCAL_CONTROL_POLL", "REMOTE_CONTROL_POLL"]


class JobRecord:
    """A job's manifest as this process holds it, its status and its checkpoints (the
    constructor's parameters are ``Job``'s)."""

    def __init__(self, store: Union[Store, str], job_id: str, *, total: Optional[int] = None,
                 params: Optional[dict[str, Any]] = None, lease: Any = None,
                 checkpoint_every: float = 2.0, checkpoint_items: Optional[int] = None,
                 clock: Optional[Clock] = None, events: Optional[EventLog] = None,
                 keep_blobs: int = 3, control_poll: Optional[float] = None) -> None:
        self.store = open_store(store)
        self.id = check_job_id(job_id)
        self.clock = clock or SYSTEM_CLOCK
        remote = getattr(self.store, "remote", False)
        # no floor: one checkpoint write is out at a time (writer.py), so the store sets the pace
        checkpoint_every = check_seconds("checkpoint_every", checkpoint_every, "seconds between checkpoints")
        if checkpoint_items is not None:
            check_count("checkpoint_items", checkpoint_items, what="items between checkpoints, or None")
        _check_total(total)
        check_count("keep_blobs", keep_blobs, what="generations of each blob kept")
        if control_poll is None:  # every read of a remote store is a request: poll it less often
            control_poll = at_least_floor(REMOTE_CONTROL_POLL if remote else LOCAL_CONTROL_POLL,
                                          clock=self.clock, remote=remote)
        self.control_poll = check_period("control_poll", control_poll, clock=self.clock, remote=remote,
                                         what="how often pause/cancel requests are read")
        self.checkpoint_every = checkpoint_every
        self.checkpoint_items = checkpoint_items
        self.lease = lease
        self.keep_blobs = keep_blobs
        self.events = events or EventLog(self.store, clock=self.clock)
        self.state: dict[str, Any] = {}  # the user's small JSON values, written with each checkpoint
        self._lock = threading.RLock()  # one run at a time; status and stage changes
        self._bytes = 0
        self._running_since: Optional[float] = None
        self._rate = RateMeter()
        self._run: Optional[Run] = None  # the latest run (its counts stay in views after it ends)
        self._open_run: Optional[Run] = None  # the run that began and has not ended
        self._loop: "Optional[weakref.ref[Generator[Any, None, None]]]" = None  # its generator
        self._next_control = 0.0  # requested_stop: when to read the control record next
        self._control_pending: Optional[Callable[[], Optional[Control]]] = None
        self._unlisted_failures = 0  # failed items of this object past max_failed
        #: Set by whoever runs the job on a runtime that ends (a Primary): seconds it has left,
        #: and the seconds a handover needs. ``progress.forecast`` judges them.
        self.runtime_left: Optional[Callable[[], Optional[float]]] = None
        self.handover_lead = 0.0
        self.handed_to: Optional[str] = None  # set by a Primary handing it over: views say so, not "paused"
        self.last_progress_at: Optional[float] = None  # when an item last finished (slow path), on its clock
        #: Called on the slow path (about every 50 ms); a true result stops the loop cleanly,
        #: leaving the job paused with this reason (handover uses it).
        self.stop_when: Optional[Callable[[], Optional[str]]] = None
        self._load_or_create(total, params)
        OUTCOMES.install_exit_hook(self)

    # -- loading ---------------------------------------------------------------

    def _load_or_create(self, total: Optional[int], params: Optional[dict[str, Any]]) -> None:
        loaded = load(self.store, self.id)
        if loaded is None:
            now = self.clock.now().isoformat()
            manifest = Manifest(job=self.id, token=self._token(), total=total, params=dict(params or {}),
                                created=now, updated=now, writer=self.events.writer)
            raw = manifest.encode()
            try:
                version = self.store.put(manifest_key(self.id), raw, expect=ABSENT)
            except Conflict:  # created by someone else just now
                self._load_or_create(total, params)
                return
            self._adopt(Loaded(manifest, raw, version))
            # written with the job's next write (or at exit): a background write now would race
            # the claim for Drive's catalog and make the loop wait longer (measured: 1.13x -> 1.17x)
            self.events.emit("job.created", job=self.id, total=total, params=params or {})
            return
        stored = loaded.manifest.params
        if params is not None and params != stored:
            raise ValueError(
                f"job {self.id!r} was created with params {stored!r}; these params are "
                f"{params!r}. Resume it with the same params, or start a new job id.")
        self._adopt(loaded)
        if total is not None and total != self._manifest.total:
            self._manifest = self._manifest.with_changes(total=total)

    def _adopt(self, loaded: Loaded) -> None:
        """Take a manifest read from the store as this job's view of itself."""
        self._manifest = loaded.manifest  # the loop's view; the checkpointer keeps what was written
        self.state = dict(self._manifest.state)
        self._bytes = self._manifest.bytes
        self._checkpointer = Checkpointer(self.store, self.id, loaded, clock=self.clock, events=self.events,
                                          token=self._token, rate=self._rate)
        self._writer = CheckpointWriter(self._checkpointer, clock=self.clock, control_poll=self.control_poll,
                                        read_control=self._read_control, name=self.id)

    def _read_control(self) -> Optional[Control]:
        return controls.read(self.store, self.id, self._manifest.created)

    # -- reading ---------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The job's manifest as this object holds it (frozen; changes since the last
        checkpoint are written with the next one)."""
        return self._manifest

    @property
    def _m(self) -> Manifest:  # the blob methods' name for it until they move (issue 30)
        return self._manifest

    @_m.setter
    def _m(self, manifest: Manifest) -> None:
        self._manifest = manifest

    @property
    def status(self) -> JobStatus:
        """The status as stored: a loop left early whose outcome is not known yet is "running"
        (``left_early`` tells it apart)."""
        return self._manifest.status.stored

    @property
    def left_early(self) -> bool:
        """The loop was left early (a break, an error in its body, Ctrl-C) and how it ended is
        not recorded yet (outcome.py learns it)."""
        return self._manifest.status is JobStatus.LEFT_EARLY

    @property
    def total(self) -> Optional[int]:
        return self._manifest.total

    def set_total(self, total: Optional[int]) -> None:
        """How many items (training steps, ...) the job has in all, for a loop sessionkit
        does not drive; written with the next checkpoint. None: not known."""
        _check_total(total)
        with self._lock:
            self._manifest = self._manifest.with_changes(total=total)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._manifest.params)

    @property
    def done(self) -> int:
        written = self._checkpointer.written
        run = self._run
        done = written.done + (run.n - written.n_at if run is not None else 0)
        total = self._manifest.total
        # an item this run finished may also be one another writer recorded (adopted, not yet
        # told apart until this run's next checkpoint): never show more done than there are
        return done if total is None or done <= total else max(total, written.done)

    @property
    def checkpoint_seconds(self) -> float:
        """How long the last checkpoint write took, on the job's clock."""
        return self._checkpointer.seconds

    @property
    def progress(self) -> Progress:
        """A snapshot (counts are as of the last slow-path visit, at most ~50 ms old)."""
        m = self._manifest
        done = self.done
        rate = self._rate.rate
        eta = None
        if rate and m.total is not None and m.total >= done:
            eta = (m.total - done) / rate
        error = m.error
        status = m.status.stored
        return Progress(
            job=self.id, status=status, done=done, total=m.total,
            skipped=self._run.skipped if self._run is not None else 0,
            rate=rate, eta=eta, bytes=self._bytes, elapsed=self._elapsed(), stage=m.stage,
            stage_index=(m.stages.index(m.stage) + 1) if m.stage in m.stages else None, stages=len(m.stages),
            error=error.get("message") if isinstance(error, dict) else None,
            runtime_left=self.runtime_left() if self.runtime_left is not None else None,
            handover_lead=self.handover_lead, clock_rate=clock_rate(self.clock),
            in_flight=self._run.in_flight if self._run is not None else 0, failed=len(m.failed),
            handed_to=self.handed_to if status == "paused" else None,
        )

    def _elapsed(self) -> float:
        base = self._manifest.elapsed
        if self._running_since is not None:
            base += self.clock.monotonic() - self._running_since
        return base

    def _token(self) -> Optional[int]:
        """The fencing token to write with; a lease past its renew deadline raises LeaseLost."""
        if self.lease is None:
            return None
        check = getattr(self.lease, "check", None)
        try:
            token = check() if check is not None else getattr(self.lease, "token", None)
        except LeaseLost as exc:
            raise self._who_took_over(exc) from None
        if token is not None and not isinstance(token, int):
            raise TypeError(f"lease.token must be an int, got {type(token).__name__}")
        return token

    def _who_took_over(self, lost: LeaseLost) -> LeaseLost:
        """``lost`` with the newer holder named, when the job's manifest shows one (one read,
        on the way out of a run: the lease itself never waits on the store to say why)."""
        if lost.newer is not None:
            return lost
        try:
            record = read_lease(self.lease.store, self.lease.name) if isinstance(self.lease, Lease) else None
            if record is not None and record.token > (lost.token or 0):
                return lost.but_superseded(record.token, record.holder)
            loaded = load(self.store, self.id)
        except SessionkitError as exc:
            log.info("job %r: could not read who holds it now: %s", self.id, exc)
            return lost
        if loaded is None or (loaded.manifest.token or 0) <= (lost.token or 0):
            return lost
        return lost.but_superseded(loaded.manifest.token, loaded.manifest.writer)

    def __repr__(self) -> str:
        total = "?" if self.total is None else self.total
        return f"<Job {self.id!r} {self.status} {self.done}/{total} in {self.store.url}>"

    # -- status and stages -----------------------------------------------------

    def _change(self, happened: Happened, target: Optional[JobStatus] = None, *, reason: str = "",
                error: Optional[BaseException] = None) -> JobStatus:
        """Every status change: ``status.decide`` says what ``happened`` makes of the status;
        this carries it out (the manifest, elapsed time, a ``job.status`` event)."""
        current = self._manifest.status
        decision = decide(Observation(current, happened, target))
        if decision.refused:
            raise InvalidTransition(f"job {self.id!r}", current.stored.value,
                                    (target or JobStatus.RUNNING).value, allowed(current))
        status = decision.status
        if status is current:
            return status
        now_mono = self.clock.monotonic()
        elapsed = self._manifest.elapsed
        if status is JobStatus.RUNNING:
            if self._running_since is None:
                self._running_since = now_mono
        elif status is not JobStatus.LEFT_EARLY and self._running_since is not None:
            elapsed += now_mono - self._running_since
            self._running_since = None
        failure = self._manifest.error
        if error is not None:
            failure = {"type": type(error).__name__, "message": str(error)[:2000],
                       "at": self.clock.now().isoformat()}
        elif status is JobStatus.RUNNING and current.stored is not JobStatus.RUNNING:
            failure = None
        self._manifest = self._manifest.with_changes(status=status, error=failure, elapsed=elapsed)
        if status.stored is not current.stored:
            self.events.emit("job.status", job=self.id, **{"from": current.stored.value, "to": status.stored.value},
                             reason=reason, error=failure if status is JobStatus.FAILED else None)
        return status

    def set_status(self, status: Union[JobStatus, str], *, reason: str = "") -> None:
        """Move the job to ``status`` (validated) and checkpoint at once."""
        try:
            target = JobStatus(status)
        except ValueError:
            raise ValueError(f"status must be one of {', '.join(s.value for s in JobStatus)}, got {status!r}") \
                from None
        with self._lock:
            self._change(Happened.SET, target, reason=reason)
            self.checkpoint()

    def stop(self, reason: str) -> None:
        """The loop stops for a reason of its runtime (a handover, SIGTERM, a framework's own
        stop): a running job is paused with ``reason`` and checkpointed; otherwise (paused or
        cancelled by a request, completed) its status stands."""
        with self._lock:
            if self._change(Happened.STOP, reason=reason) is JobStatus.PAUSED:
                self.checkpoint()

    def stage(self, name: str) -> None:
        """Mark the start of a named stage (e.g. scan, process, commit); shown in views and history."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stage name must be a non-empty str, got {name!r}")
        with self._lock:
            m = self._manifest
            stages = m.stages if name in m.stages else m.stages + (name,)
            if m.stage != name or stages is not m.stages:
                self._manifest = m.with_changes(stages=stages, stage=name)
            if m.stage != name:
                self.events.emit("job.stage", job=self.id, stage=name, index=stages.index(name) + 1)
            if self._run is not None:
                self._run.refresh_view()

    def add_bytes(self, n: int) -> None:
        """Count ``n`` bytes moved or processed (shown as a total in views)."""
        self._bytes += n

    # -- checkpoints -----------------------------------------------------------

    def checkpoint(self, *, done: Optional[int] = None) -> None:
        """Write progress, state and blob pointers now, on this thread (after any write in
        flight). Call it from the loop's thread, or when no loop runs.

        ``done=n`` records items 0..n-1 as done in the same write, for a loop sessionkit
        does not drive (a training framework's: the integrations call it with the global
        step of each checkpoint they save, so the count and the saved weights agree).
        Refused while ``track`` runs."""
        if done is not None:
            self._record_done(done)
            return
        self._checkpoint(events=EventFlush.NOW)

    def _record_done(self, done: int) -> None:
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise ValueError(f"done must be an int >= 0 (items 0..done-1 are done), got {done!r}")
        if self._open_run is not None:
            raise SessionkitError(f"job {self.id!r}: checkpoint(done=...) is for loops sessionkit does not "
                                  f"drive; this job's track() loop counts its own items")
        if self._manifest.mode not in (None, POSITION):
            raise ValueError(f"job {self.id!r} counts items by key; checkpoint(done=...) counts positions")
        with self._lock:
            self._manifest = self._manifest.with_changes(mode=POSITION)
            if self._manifest.total is not None and done > self._manifest.total:
                self._manifest = self._manifest.with_changes(total=done)
            snap = Snapshot(self.manifest_now(), ((0, done),) if done else (), (), 0)
            self._writer.flush(snap, adopt_state=False, events=EventFlush.NOW)

    def _checkpoint(self, events: EventFlush, settle: bool = False) -> None:
        run = self._run
        if run is not None:
            snap = run.snapshot()
        else:
            snap = Snapshot(self.manifest_now(), (), (), 0)
        written = self._writer.flush(snap, adopt_state=snap.n_at == 0, events=events, settle=settle)
        if snap.n_at == 0 and written.manifest.state is not snap.manifest.state:
            # another writer's state and blobs were taken up (this run has done nothing yet)
            m = written.manifest
            self._manifest = self._manifest.with_changes(state=m.state, blobs=m.blobs, bytes=m.bytes)
            self.state, self._bytes = dict(m.state), m.bytes

    def manifest_now(self) -> Manifest:
        """The manifest with this moment's state, bytes and elapsed time (frozen): what the
        next checkpoint writes."""
        return self._manifest.with_changes(state=frozen_state(self.id, self.state), bytes=self._bytes,
                                           elapsed=self._elapsed())


def _check_total(total: Optional[int]) -> None:
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise ValueError(f"total must be an int >= 0 or None, got {total!r}")
