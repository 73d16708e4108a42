"""``Job``: a user's loop that survives its runtime.

``for item in job.track(items): work(item)`` yields only the items not done yet
and checkpoints progress to the store every ``checkpoint_every`` seconds or
``checkpoint_items`` items, at the end, and when the loop is left early. An item
counts as done when the loop asks for the next one (or ends normally), so an
item whose body raised, or that was running when the process died, runs again.

This module is the facade; the work is done by its neighbours: ``loop`` (the
generators and their slow path), ``writer`` (checkpoints off the loop's thread),
``checkpoint`` (fencing, compare-and-swap, adopting and cleaning up),
``manifest`` (the typed record), ``blobs``, ``control``, ``outcome`` (how an
interrupted run ended) and ``listing`` (finding jobs).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

from ..validate import at_least_floor, check_count, check_period, check_seconds
from ..clock import SYSTEM_CLOCK, Clock, clock_rate
from ..errors import (BlobError, Conflict, InvalidTransition, JobCancelled, LeaseLost, SessionkitError,
                      Superseded)
from ..events import EventLog
from ..lease import Lease, read_lease
from ..store import ABSENT, Store, open_store
from . import control as controls
from .checkpoint import Checkpointer, Snapshot
from .control import Control
from .doneset import KEY, POSITION, Ranges
from .loop import Run
from .mapping import ERRORS, Window, executor_for, failure_text
from .manifest import (
    MAX_FAILED,
    TRANSITIONS,
    Loaded,
    Manifest,
    check_job_id,
    load,
    manifest_key,
)
from .outcome import OUTCOMES
from .progress import Progress, RateMeter
from .saves import MISSING, Saves, check_blob_name
from .uploader import SaveHandle
from .writer import CheckpointWriter

T = TypeVar("T")
log = logging.getLogger("sessionkit.jobs")

LOCAL_CONTROL_POLL = 1.0  # seconds between reads of pause/cancel requests on a local or memory store
REMOTE_CONTROL_POLL = 10.0  # ... on a remote store (Drive, GCS, S3), where each read is a request
#: What ``display=True`` shows, found by name as fsspec finds a backend: a widget in
#: notebooks, a text line elsewhere. This layer imports nothing above it.
DEFAULT_VIEW = "sessionkit.widgets:auto_view"

__all__ = ["BlobError", "Job", "JobCancelled"]


class Job:
    """A resumable job whose progress lives in ``store`` under ``jobs/<job_id>/``.

    ``total`` is the number of items (taken from ``len()`` when the iterable has
    one); ``params`` are fixed at creation (a job resumed with other params is
    refused); ``lease`` is anything with an int ``token``: checkpoints carry it
    and a writer that finds a higher token raises ``LeaseLost`` (fencing).
    Checkpoints are written by a background thread (see ``writer``); the final one
    of a run is written before ``track`` returns.
    """

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
        self.state: dict[str, Any] = {}
        self._lock = threading.RLock()  # one run at a time; status and stage changes
        self._bytes = 0
        self._running_since: Optional[float] = None
        self._rate = RateMeter()
        self._run: Optional[Run] = None
        self._tracking = False  # a run has started and not finished
        self._interrupted = False
        self._active: Optional["weakref.ref[Iterator[Any]]"] = None
        self._next_control = 0.0  # requested_stop: when to read the control record next
        self._control_pending: Optional[Callable[[], Optional[Control]]] = None
        #: Set by whoever runs the job on a runtime that ends (a Primary): seconds it has left,
        #: and the seconds a handover needs. ``progress.forecast`` judges them.
        self.runtime_left: Optional[Callable[[], Optional[float]]] = None
        self.handover_lead = 0.0
        self.handed_to: Optional[str] = None  # set by a Primary handing it over: views say so, not "paused"
        self.last_progress_at: Optional[float] = None  # when an item last finished (slow path), on its clock
        #: Called on the slow path (about every 50 ms); a true result stops the loop cleanly,
        #: leaving the job paused with this reason (handover uses it).
        self.stop_when: Optional[Callable[[], Optional[str]]] = None
        self._saves = self._new_saves()
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
        if total is not None and total != self._m.total:
            self._m = self._m.but(total=total)

    def _adopt(self, loaded: Loaded) -> None:
        """Take a manifest read from the store as this job's view of itself."""
        self._m = loaded.manifest  # the loop's view; the checkpointer keeps what was written
        self.state = dict(self._m.state)
        self._bytes = self._m.bytes
        self._checkpointer = Checkpointer(self.store, self.id, loaded, clock=self.clock, events=self.events,
                                          token=self._token, rate=self._rate)
        self._writer = CheckpointWriter(self._checkpointer, clock=self.clock, control_poll=self.control_poll,
                                        read_control=self._read_control, name=self.id)
        self._saves.attach(self._checkpointer)

    def _read_control(self) -> Optional[Control]:
        return controls.read(self.store, self.id, self._m.created)

    # -- reading ---------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._m.status

    @property
    def total(self) -> Optional[int]:
        return self._m.total

    def set_total(self, total: Optional[int]) -> None:
        """How many items (training steps, ...) the job has in all, for a loop sessionkit
        does not drive; written with the next checkpoint. None: not known."""
        _check_total(total)
        with self._lock:
            self._m = self._m.but(total=total)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._m.params)

    @property
    def done(self) -> int:
        written = self._checkpointer.written
        run = self._run
        done = written.done + (run.n - written.n_at if run is not None else 0)
        total = self._m.total
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
        m = self._m
        done = self.done
        rate = self._rate.rate
        eta = None
        if rate and m.total is not None and m.total >= done:
            eta = (m.total - done) / rate
        error = m.error
        return Progress(
            job=self.id, status=m.status, done=done, total=m.total,
            skipped=self._run.skipped if self._run is not None else 0,
            rate=rate, eta=eta, bytes=self._bytes, elapsed=self._elapsed(), stage=m.stage,
            stage_index=(m.stages.index(m.stage) + 1) if m.stage in m.stages else None, stages=len(m.stages),
            error=error.get("message") if isinstance(error, dict) else None,
            runtime_left=self.runtime_left() if self.runtime_left is not None else None,
            handover_lead=self.handover_lead, clock_rate=clock_rate(self.clock),
            in_flight=self._run.in_flight if self._run is not None else 0, failed=len(m.failed),
            handed_to=self.handed_to if m.status == "paused" else None,
        )

    def _elapsed(self) -> float:
        base = self._m.elapsed
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

    def _set_status(self, status: str, *, error: Optional[BaseException] = None, reason: str = "") -> None:
        current = self._m.status
        if status == current:
            return
        if status not in TRANSITIONS.get(current, ()):
            raise InvalidTransition(f"job {self.id!r}", current, status, tuple(TRANSITIONS.get(current, ())))
        now_mono = self.clock.monotonic()
        elapsed = self._m.elapsed
        if status == "running":
            self._running_since = now_mono
        elif self._running_since is not None:
            elapsed += now_mono - self._running_since
            self._running_since = None
        failure = self._m.error
        if error is not None:
            failure = {"type": type(error).__name__, "message": str(error)[:2000],
                       "at": self.clock.now().isoformat()}
        elif status == "running":
            failure = None
        self._m = self._m.but(status=status, error=failure, elapsed=elapsed)
        self.events.emit("job.status", job=self.id, **{"from": current, "to": status},
                         reason=reason, error=failure if status == "failed" else None)

    def set_status(self, status: str, *, reason: str = "") -> None:
        """Move the job to ``status`` (validated) and checkpoint at once."""
        with self._lock:
            self._set_status(status, reason=reason)
            self.checkpoint()

    def stage(self, name: str) -> None:
        """Mark the start of a named stage (e.g. scan, process, commit); shown in views and history."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stage name must be a non-empty str, got {name!r}")
        with self._lock:
            m = self._m
            stages = m.stages if name in m.stages else m.stages + (name,)
            if m.stage != name or stages is not m.stages:
                self._m = m.but(stages=stages, stage=name)
            if m.stage != name:
                self.events.emit("job.stage", job=self.id, stage=name, index=stages.index(name) + 1)
            if self._run is not None and self._run.view is not None:
                self._run.view.update(self.progress)

    def add_bytes(self, n: int) -> None:
        """Count ``n`` bytes moved or processed (shown as a total in views)."""
        self._bytes += n

    # -- tracking --------------------------------------------------------------

    def track(self, iterable: Iterable[T], key: Optional[Callable[[T], str]] = None,
              display: Any = True) -> Iterator[T]:
        """Yield the items of ``iterable`` that are not done yet, checkpointing as they finish.

        ``key(item)`` gives each item a stable string id; without it an item is
        known by its position, which is safe only when the order is the same on
        every run. ``display``: True (a widget in notebooks, a text line
        elsewhere), False, or a view object with ``update(progress)``.
        """
        run = self._new_run(iterable, key, display)
        gen = run.positions(iterable) if key is None else run.keys(iterable, key)
        self._active = weakref.ref(gen)  # closed at interpreter exit if still suspended
        return gen

    def _new_run(self, iterable: Iterable[Any], key: Optional[Callable[[Any], str]], display: Any) -> Run:
        """Check a run may start (not cancelled, the same item mode as before) and make it."""
        with self._lock:
            if self.status == "cancelled":
                raise JobCancelled(f"job {self.id!r} was cancelled; start a new job id, or remove it "
                                   f"with sessionkit.jobs.clear")
            mode = KEY if key is not None else POSITION
            if self._m.mode not in (None, mode):
                raise ValueError(
                    f"job {self.id!r} was run with items known by {self._m.mode}; call track "
                    f"{'with the same key=' if self._m.mode == KEY else 'without key='} as before")
            if key is not None and not callable(key):
                raise TypeError(f"key must be a function of an item, got {type(key).__name__}")
            total = self._m.total
            if total is None and hasattr(iterable, "__len__"):
                total = len(iterable)  # type: ignore[arg-type]
            self._m = self._m.but(mode=mode, total=total)
            return Run(self, _make_view(self, display))

    def map(self, fn: Callable[[T], Any], items: Iterable[T], *, key: Optional[Callable[[T], str]] = None,
            workers: Optional[int] = None, executor: Any = None, max_in_flight: Optional[int] = None,
            errors: str = "raise", retry_failed: bool = False, drain_seconds: float = 60.0,
            display: Any = True) -> Iterator[tuple[T, Any]]:
        """Run ``fn(item)`` for the items not done yet, several at a time, and yield
        ``(item, result)`` in the order they finish, checkpointing as ``track`` does.

        ``workers=N``: a thread pool of N (1 if neither is given); ``executor=``: any
        ``concurrent.futures.Executor`` (``ProcessPoolExecutor``; a Dask cluster's
        ``client.get_executor()``), which map does not shut down. At most ``max_in_flight``
        items are submitted and not yet taken back (default 4 per worker; 32 with an
        executor). An item is done when the loop asks for the next one after it.
        ``errors="raise"``: the first item that raises stops submitting; the items in flight
        are handed back (up to ``drain_seconds``), then the error is raised and the job is
        failed. ``errors="record"``: the item is recorded as failed (``job.failed_items``,
        a ``job.item_failed`` event) and skipped by later runs unless ``retry_failed``.
        An executor's own failure (a lost process or Dask worker) leaves its items not done.
        Redo after a crash: the items in flight plus two checkpoint intervals (README)."""
        if errors not in ERRORS:
            raise ValueError(f"errors must be one of {', '.join(map(repr, ERRORS))}, got {errors!r}")
        if not callable(fn):
            raise TypeError(f"fn must be a function of an item, got {type(fn).__name__}")
        drain_seconds = check_seconds("drain_seconds", drain_seconds,
                                      "how long a stopping map waits for the items in flight")
        pool, owned, limit = executor_for(workers, executor, max_in_flight)
        try:
            run = self._new_run(items, key, display)
        except BaseException:
            if owned:
                pool.shutdown(wait=False)
            raise
        gen = run.mapped(fn, items, key, Window(pool, fn, limit), owned, errors, bool(retry_failed), drain_seconds)
        self._active = weakref.ref(gen)
        return gen

    @property
    def failed_items(self) -> dict[Any, str]:
        """Items ``map(errors="record")`` gave up on: key (or position) -> the error."""
        return {(int(k) if self._m.mode == POSITION else k): e for k, e in self._m.failed}

    def record_failed(self, item_id: Any, exc: BaseException) -> None:
        """An item of ``map(errors="record")`` failed: listed (written with the next
        checkpoint) and announced; later runs skip it unless they retry failed items."""
        text = failure_text(exc)
        with self._lock:
            if len(self._m.failed) < MAX_FAILED:
                self._m = self._m.but(failed=self._m.failed + ((str(item_id), text),))
        self.events.emit("job.item_failed", job=self.id, item=str(item_id), error=text)

    def record_retried(self, item_id: Any) -> None:
        """A failed item ran again and succeeded: it is no longer listed as failed."""
        with self._lock:
            self._m = self._m.but(failed=tuple(f for f in self._m.failed if f[0] != str(item_id)))

    def _done_ranges(self) -> Ranges:
        return self._checkpointer.done_ranges

    def _done_gaps(self) -> list[tuple[int, Optional[int]]]:
        return list(self._checkpointer.done_ranges.gaps())

    def _done_keys(self) -> set[str]:
        return self._checkpointer.done_keys

    def _start(self, run: Run) -> bool:
        """Begin a run: claim the job with a write (our token is in the store from then on)
        while the control record is read, then honour a pause or cancel request. False if
        the job must not run. The loop waits for one round trip here, not two."""
        if self._tracking:
            raise SessionkitError(f"job {self.id!r} is already being tracked by a loop that has not "
                                  f"ended; one run of track() at a time per Job (finish or close the "
                                  f"other loop first)")
        self._tracking = True
        read_control = self._writer.read_control_soon()
        self._run = run
        self._interrupted = False
        generation = self._checkpointer.written.manifest.generation
        self._set_status("running", reason="resumed" if generation else "started")
        self._checkpoint(events="later")
        request = read_control()
        if request is not None and request.action in ("cancel", "pause") and (
                request.id != self._m.control or request.action == "pause"):
            self._m = self._m.but(control=request.id)
            self._set_status("cancelled" if request.action == "cancel" else "paused", reason="requested")
            self.checkpoint()
            if request.action == "pause":
                log.warning("job %r is paused by request; run sessionkit.jobs.request(store, %r, 'resume') "
                            "and track it again", self.id, self.id)
            return False
        if request is not None:
            self._m = self._m.but(control=request.id)
        self._writer.start(request)
        run.begin()
        return True

    def _obey_control(self, request: Optional[Control]) -> bool:
        """Handle a new pause or cancel request; True when the loop must stop now."""
        if request is None or request.id == self._m.control or request.action == "resume":
            return False
        self._m = self._m.but(control=request.id)
        self._set_status("paused" if request.action == "pause" else "cancelled", reason="requested")
        return True

    def _finish(self, run: Run, finished: bool) -> None:
        """End of a run: set the status, write the final checkpoint, refresh the view."""
        if run is not self._run:
            return  # a run refused at its start (another was open): nothing of it to write
        self._tracking = False
        if sys.is_finalizing():
            return  # too late to write safely; the exit hook closed every loop it could before this
        with self._lock:
            self._writer.close()  # after the write in flight; the final one is written here
            if self.status == "running":
                if finished:
                    # the source is exhausted: its size is what this run skipped and ran (not
                    # `done`, which may count an item another run also recorded meanwhile)
                    self._m = self._m.but(total=run.skipped + run.n + run.failed_now)
                    self._set_status("completed")
                else:
                    self._interrupted = True  # break, an exception, or Ctrl-C: see outcome.py
                    OUTCOMES.watch(self)
            try:
                self._checkpoint(events="soon")  # the loop does not wait for the event write
            except LeaseLost as exc:
                if finished:
                    raise  # the loop ran to its end: tell the caller its last items did not land
                # The loop was left early (break, an error, or fencing in the slow path): an
                # exception from a closing generator could only be printed as "ignored".
                self._running_since = None
                log.warning("job %r: %s", self.id, exc)
            finally:
                if run.view is not None:
                    run.view.update(self.progress)
                    run.view.close()

    # -- context manager: how a failing body is recorded -----------------------

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if exc is not None:
            self.record_outcome(exc)

    def record_outcome(self, exc: Optional[BaseException]) -> None:
        """Record how an interrupted run ended: an error (failed), Ctrl-C or none (paused)."""
        with self._lock:
            self._interrupted = False
            if self.status != "running":
                return
            if exc is None or isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                self._set_status("paused", reason="interrupted" if exc else "loop left early")
            elif isinstance(exc, LeaseLost):
                self._running_since = None
                return  # the new holder owns the record now; write nothing
            else:
                self._set_status("failed", error=exc, reason="error")
            try:
                self._checkpoint(events="now", settle=True)
            except LeaseLost:
                return
            except Superseded as exc:
                # another run (a re-run of the cell, another runtime) has written since: its
                # status stands; this object takes up what the store holds
                log.info("%s", exc)
                loaded = load(self.store, self.id)
                if loaded is not None:
                    self._run = None
                    self._adopt(loaded)
            finally:
                run = self._run
                if run is not None and run.view is not None:
                    run.view.update(self.progress)

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
        self._checkpoint(events="now")
        self._saves.raise_failure()

    def requested_stop(self) -> Optional[str]:
        """For a loop sessionkit does not drive: "paused" or "cancelled" once a pause or
        cancel request arrived (the status is set; checkpoint, then stop), else None.
        The control record is read in the background every ``control_poll`` seconds, and
        the answer taken at the next call after that: this never waits on the store."""
        now = self.clock.monotonic()
        pending = self._control_pending
        if now < self._next_control or (pending is not None and not getattr(pending, "ready", lambda: True)()):
            return None  # not yet, or the last read is still out (a slow store): never wait on it
        self._next_control = now + self.control_poll
        self._control_pending = self._writer.read_control_soon()
        if pending is not None and self._obey_control(pending()):
            return self.status
        return None

    def _record_done(self, done: int) -> None:
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise ValueError(f"done must be an int >= 0 (items 0..done-1 are done), got {done!r}")
        if self._tracking:
            raise SessionkitError(f"job {self.id!r}: checkpoint(done=...) is for loops sessionkit does not "
                                  f"drive; this job's track() loop counts its own items")
        if self._m.mode not in (None, POSITION):
            raise ValueError(f"job {self.id!r} counts items by key; checkpoint(done=...) counts positions")
        with self._lock:
            self._m = self._m.but(mode=POSITION)
            if self._m.total is not None and done > self._m.total:
                self._m = self._m.but(total=done)
            snap = Snapshot(self._manifest_now(), ((0, done),) if done else (), (), 0)
            if self._saves.defer(snap, lambda s: self._writer.flush(s, adopt_state=False, events="now")):
                return  # written once the saves queued before it are whole (saves.py)
            self._writer.flush(snap, adopt_state=False, events="now")

    def _checkpoint(self, events: str, settle: bool = False) -> None:
        self._saves.wait(raise_failure=False)  # a final checkpoint names only whole blobs, after them
        run = self._run
        if run is not None:
            snap = run.snapshot()
        else:
            snap = Snapshot(self._manifest_now(), (), (), 0)
        written = self._writer.flush(snap, adopt_state=snap.n_at == 0, events=events, settle=settle)
        self._m = self._m.but(blobs=snap.manifest.blobs)  # what landed from the saves is written now
        if snap.n_at == 0 and written.manifest.state is not snap.manifest.state:
            # another writer's state and blobs were taken up (this run has done nothing yet)
            m = written.manifest
            self._m = self._m.but(state=m.state, blobs=m.blobs, bytes=m.bytes)
            self.state, self._bytes = dict(m.state), m.bytes

    def _manifest_now(self) -> Manifest:
        """The loop's view with this moment's state, bytes and elapsed time (frozen)."""
        if self._tracking:
            # a track loop's checkpoint names the blobs saved before its items were counted:
            # it waits for an upload still out (the loop stalls only if one outlasts an interval)
            self._saves.wait(raise_failure=False)
        return self._m.but(state=_frozen_state(self.id, self.state), bytes=self._bytes,
                           elapsed=self._elapsed(), blobs=self._saves.view(self._m.blobs))

    # -- blobs (saves.py does the work; uploads run in the background) ---------

    def save_blob(self, name: str, obj: Any, *, format: Optional[str] = None) -> SaveHandle:
        """Save a large object under ``name``: its arrays and tensors are copied to host
        memory now, the upload runs in the background. It becomes current at the first
        checkpoint after it is whole in the store (``job.checkpoint(done=step)`` right
        after it is written with that step once the upload lands). Returns a handle:
        ``.done``, ``.wait()`` (the content hash)."""
        return self._saves.save_blob(name, obj, format)

    def load_blob(self, name: str, default: Any = MISSING) -> Any:
        """The newest loadable generation of blob ``name``; an unreadable one is skipped
        with a warning naming it. ``default`` is returned when none was saved."""
        return self._saves.load_blob(self._m.blobs, name, default)

    def save_file(self, name: str, path: "str | os.PathLike[str]") -> SaveHandle:
        """Save the file at ``path`` (copied to a staging folder now, uploaded in the
        background, any size) as blob ``name``; current as ``save_blob`` says."""
        return self._saves.save_file(name, path)

    def load_file(self, name: str, path: "str | os.PathLike[str]") -> Optional[Path]:
        """Write the newest intact generation of file blob ``name`` to ``path`` (replaced
        only when it arrived whole and checked); ``None`` when none was saved."""
        return self._saves.load_file(self._m.blobs, name, path)

    def save_dir(self, name: str, folder: "str | os.PathLike[str]") -> SaveHandle:
        """Save every file under ``folder`` (a framework's checkpoint folder) as blob
        ``name``; copied now, uploaded in the background, current as ``save_blob`` says, so
        a reader gets a whole folder or the previous one. Chunks equal to ones stored
        before are not sent again."""
        return self._saves.save_dir(name, folder)

    def load_dir(self, name: str, folder: "str | os.PathLike[str]") -> Optional[Path]:
        """Download the newest intact generation of folder blob ``name`` into ``folder``
        (replacing it once every file arrived and checked); ``None`` when none was saved."""
        return self._saves.load_dir(self._m.blobs, name, folder)

    def save_state(self, name: str = "state", *, extra: Optional[dict[str, Any]] = None,
                   **objects: Any) -> SaveHandle:
        """Save the full state of a hand-written training loop as blob ``name``: the
        ``state_dict()`` of each object (``model=``, ``optimizer=``, ``scheduler=``,
        ``scaler=``, ...), the random number generators (random, numpy, torch CPU and
        CUDA) and ``extra`` (step, epoch, data position: plain values). Tensors are copied
        to host memory now and uploaded in the background; current as ``save_blob`` says;
        loaded back safely by ``load_state``."""
        return self._saves.save_state(name, extra, objects)

    def load_state(self, name: str = "state", **objects: Any) -> Optional[dict[str, Any]]:
        """Load what ``save_state`` saved into the same objects (``model=``, ...), restore
        the random number generators, and return ``extra``; ``None`` (nothing changed)
        when no state was saved yet: a first run."""
        return self._saves.load_state(self._m.blobs, name, objects)

    def wait_saved(self, timeout: Optional[float] = None) -> bool:
        """Wait until every save is whole in the store and the checkpoints asked for behind
        them are written; raises why one failed. False if ``timeout`` seconds passed first."""
        return self._saves.wait(timeout)

    def gc(self) -> int:
        """Find the chunks and blobs no generation names (left by saves a kill cut short)
        and have the job's next writes remove them (docs/saves.md); how many were found."""
        return self._saves.gc()

    @staticmethod
    def _check_blob_name(name: Any) -> None:
        check_blob_name(name)

    def _new_saves(self) -> Saves:
        def hand_to_loop(exc: BaseException) -> bool:
            if not self._tracking:
                return False
            self._writer.failure = exc  # the loop raises it at its next tick, as a writer failure
            return True
        return Saves(self.store, self.id, clock=self.clock, keep=self.keep_blobs, blobs_now=lambda: self._m.blobs,
                     written=lambda: self._checkpointer.written.manifest, token=self._token,
                     on_failure=hand_to_loop)

    # -- choosing a job to restore ---------------------------------------------

    @classmethod
    def latest(cls, store: Union[Store, str], *, clock: Optional[Clock] = None, **kwargs: Any) -> Optional["Job"]:
        """The job to restore: active ones (running, paused) first, most recent first; then
        one completed in the last 5 minutes; then the most recent overall. None if no job."""
        from .listing import latest_id

        store = open_store(store)
        clock = clock or SYSTEM_CLOCK
        job_id = latest_id(store, clock)
        return None if job_id is None else cls(store, job_id, clock=clock, **kwargs)


def _frozen_state(job_id: str, state: Any) -> dict[str, Any]:
    """A copy of ``job.state`` that the writer can encode while the loop goes on; refused
    (nothing written) unless it is JSON that comes back exactly as it is."""
    problem = None
    if not isinstance(state, dict):
        problem = f"job.state must be a dict, not {type(state).__name__}"
    else:
        try:
            copy = json.loads(json.dumps(state))
        except (TypeError, ValueError):
            bad = [repr(k) for k, v in state.items() if not _round_trips(v)] or ["a key"]
            problem = f"job.state must hold JSON values (numbers, strings, lists, dicts with str keys); " \
                      f"{', '.join(bad)} is not"
        else:
            if copy != state:
                bad = [repr(k) for k, v in state.items() if not isinstance(k, str) or not _round_trips(v)]
                problem = (f"job.state would not come back as it is ({', '.join(bad) or 'a key'}): use "
                           f"str keys, and lists rather than tuples")
    if problem is not None:
        raise TypeError(f"job {job_id!r}: {problem}. Store other objects with job.save_blob(name, obj). "
                        f"Nothing was written.")
    return copy


def _round_trips(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False


def _make_view(job: Job, display: Any) -> Any:
    if display is False or display is None:
        return None
    if display is True:
        module, _, name = DEFAULT_VIEW.partition(":")
        return getattr(importlib.import_module(module), name)(job.progress)
    if not hasattr(display, "update"):
        raise TypeError("display must be True, False or a view with update(progress)")
    return display


def _check_total(total: Optional[int]) -> None:
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise ValueError(f"total must be an int >= 0 or None, got {total!r}")
