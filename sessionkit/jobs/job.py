"""``Job``: a user's loop that survives its runtime.

``for item in job.track(items): work(item)`` yields only the items not done yet
and checkpoints progress to the store every ``checkpoint_every`` seconds or
``checkpoint_items`` items, at the end, and when the loop is left early. An item
counts as done when the loop asks for the next one (or ends normally), so an
item whose body raised, or that was running when the process died, runs again.

This module is the facade (its record, status and checkpoints: ``jobrecord``) and
the job's side of a run's protocol (``begin``,
``record_progress``, ``apply_control``, ``end``: loop.RunnableJob); the work is done
by its neighbours: ``loop`` (a run: the generators and their slow path),
``mapping`` (``map``'s window of items in flight), ``status`` (the status machine),
``writer`` (checkpoints off the loop's thread), ``checkpoint`` (fencing,
compare-and-swap, adopting and cleaning up), ``manifest`` (the typed record),
``blobs``, ``control``, ``outcome`` (how an interrupted run ended), ``views``
(what ``display=True`` shows) and ``listing`` (finding jobs).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
import weakref
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, Iterator, Optional, TypeVar, Union

from ..validate import check_seconds
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import BlobError, JobCancelled, LeaseLost, NotFound, SessionkitError, SessionkitWarning, Superseded
from ..store import Store, open_store
from . import blobs
from .checkpoint import EventFlush
from .control import Control
from .doneset import KEY, POSITION
from .jobrecord import LOCAL_CONTROL_POLL, REMOTE_CONTROL_POLL, JobRecord
from .listing import latest_id
from .loop import Begun, Run
from .mapping import ERRORS, Window, executor_for, failure_text, map_items
from .manifest import MAX_FAILED, load
from .outcome import OUTCOMES
from .status import Happened, JobStatus
from .views import make_view

T = TypeVar("T")
log = logging.getLogger("sessionkit.jobs")
_MISSING = object()

__all__ = ["BlobError", "Job", "JobCancelled", "JobStatus", "LOCAL_CONTROL_POLL", "REMOTE_CONTROL_POLL"]


class Job(JobRecord):
    """A resumable job whose progress lives in ``store`` under ``jobs/<job_id>/``.

    ``total`` is the number of items (taken from ``len()`` when the iterable has
    one); ``params`` are fixed at creation (a job resumed with other params is
    refused); ``lease`` is anything with an int ``token``: checkpoints carry it
    and a writer that finds a higher token raises ``LeaseLost`` (fencing).
    Checkpoints are written by a background thread (see ``writer``); the final one
    of a run is written before ``track`` returns.
    """

    #: failed items ``map(errors="record")`` lists in the manifest; those past it are not
    #: listed (a warning and a ``job.failed_unlisted`` event say so) and run again next time
    max_failed = MAX_FAILED

    @property
    def active_loop(self) -> "Optional[Generator[Any, None, None]]":
        """The generator of the ``track``/``map`` run in progress, if it has not ended."""
        return self._loop() if self._loop is not None else None

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
        self._loop = weakref.ref(gen)  # closed at interpreter exit if still suspended
        return gen

    def _new_run(self, iterable: Iterable[Any], key: Optional[Callable[[Any], str]], display: Any) -> Run:
        """Check a run may start (not cancelled, the same item mode as before) and make it."""
        with self._lock:
            if self.status is JobStatus.CANCELLED:
                raise JobCancelled(f"job {self.id!r} was cancelled; start a new job id, or remove it "
                                   f"with sessionkit.jobs.clear")
            mode = KEY if key is not None else POSITION
            if self._manifest.mode not in (None, mode):
                raise ValueError(
                    f"job {self.id!r} was run with items known by {self._manifest.mode}; call track "
                    f"{'with the same key=' if self._manifest.mode == KEY else 'without key='} as before")
            if key is not None and not callable(key):
                raise TypeError(f"key must be a function of an item, got {type(key).__name__}")
            total = self._manifest.total
            if total is None and hasattr(iterable, "__len__"):
                total = len(iterable)  # type: ignore[arg-type]
            self._manifest = self._manifest.with_changes(mode=mode, total=total)
            return Run(self, make_view(display, lambda: self.progress))

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
        are handed back (up to ``drain_seconds`` in all), then the error is raised and the
        job is failed; a failed checkpoint write stops it the same way. ``errors="record"``:
        the item is recorded as failed (``job.failed_items``, a ``job.item_failed`` event)
        and skipped by later runs unless ``retry_failed``. An executor's own failure (a lost
        process or Dask worker) leaves its items not done. Items still running after the
        drain are abandoned: not done, announced, and may still run when the next run
        submits them again (mapping.py). Redo after a crash: the items in flight plus two
        checkpoint intervals (README)."""
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
        gen = map_items(run, fn, items, key, Window(pool, fn, limit), owned, errors, bool(retry_failed),
                        drain_seconds)
        self._loop = weakref.ref(gen)
        return gen

    @property
    def failed_items(self) -> dict[Any, str]:
        """Items ``map(errors="record")`` gave up on: key (or position) -> the error."""
        return {(int(k) if self._manifest.mode == POSITION else k): e for k, e in self._manifest.failed}

    def record_failed(self, item_id: Any, exc: BaseException) -> None:
        """An item of ``map(errors="record")`` failed: listed (written with the next
        checkpoint) and announced; later runs skip it unless they retry failed items. Past
        ``max_failed`` listed items it is not listed (so it runs again next time): a
        warning, once per job object, and a ``job.failed_unlisted`` event say so."""
        text = failure_text(exc)
        with self._lock:
            listed = len(self._manifest.failed) < self.max_failed
            if listed:
                self._manifest = self._manifest.with_changes(failed=self._manifest.failed + ((str(item_id), text),))
            else:
                self._unlisted_failures += 1
        self.events.emit("job.item_failed", job=self.id, item=str(item_id), error=text)
        if not listed:
            self.events.emit("job.failed_unlisted", job=self.id, item=str(item_id), limit=self.max_failed,
                             unlisted=self._unlisted_failures)
            if self._unlisted_failures == 1:
                warnings.warn(f"job {self.id!r}: more than {self.max_failed} items failed; the job lists "
                              f"that many, so item {item_id!r} and later failures are not listed and run "
                              f"again at the next run (see job.item_failed events). Fix what makes them "
                              f"fail, or raise Job.max_failed.", SessionkitWarning, stacklevel=3)

    def record_retried(self, item_id: Any) -> None:
        """A failed item ran again and succeeded: it is no longer listed as failed."""
        with self._lock:
            self._manifest = self._manifest.with_changes(
                failed=tuple(f for f in self._manifest.failed if f[0] != str(item_id)))

    def abandoned(self, item_ids: "list[Any]", drain_seconds: float) -> None:
        """A stopping map left these items running past its drain: they are not done and
        may still be running when the next run submits them again (mapping.py)."""
        shown = [str(i) for i in item_ids[:20]]
        log.warning("job %r: %d item(s) still running after the %g s drain are not done and will run "
                    "again (they may still be running then): %s%s", self.id, len(item_ids), drain_seconds,
                    ", ".join(shown), " ..." if len(item_ids) > 20 else "")
        self.events.emit("job.items_abandoned", job=self.id, count=len(item_ids), items=shown,
                         drain_seconds=drain_seconds)

    # -- a run's protocol (loop.RunnableJob) -----------------------------------

    def begin(self, run: Run) -> Optional[Begun]:
        """Begin ``run``: claim the job with a write (our token is in the store from then on)
        while the control record is read, then honour a pause or cancel request. None if
        the job must not run. The loop waits for one round trip here, not two."""
        if self._open_run is not None:
            raise SessionkitError(f"job {self.id!r} is already being tracked by a loop that has not "
                                  f"ended; one run of track() at a time per Job (finish or close the "
                                  f"other loop first)")
        self._open_run = self._run = run
        read_control = self._writer.read_control_soon()
        generation = self._checkpointer.written.manifest.generation
        self._change(Happened.START, reason="resumed" if generation else "started")
        self._checkpoint(events=EventFlush.LATER)
        request = read_control()
        if request is not None and request.action in ("cancel", "pause") and (
                request.id != self._manifest.control or request.action == "pause"):
            self._manifest = self._manifest.with_changes(control=request.id)
            self._change(Happened.REQUEST, JobStatus.CANCELLED if request.action == "cancel" else JobStatus.PAUSED,
                         reason="requested")
            self.checkpoint()
            if request.action == "pause":
                log.warning("job %r is paused by request; run sessionkit.jobs.request(store, %r, 'resume') "
                            "and track it again", self.id, self.id)
            return None
        if request is not None:
            self._manifest = self._manifest.with_changes(control=request.id)
        self._writer.start(request)
        now = self.clock.monotonic()
        self._rate.restart(0, now)
        self.last_progress_at = now
        ck = self._checkpointer
        return Begun(self._writer, ck.done_ranges, ck.done_keys, self.failed_items)

    def record_progress(self, n: int, now: float) -> Optional[float]:
        """``n`` items done in this run at ``now`` (the slow path): the instantaneous rate.
        Raises why the loop must stop at once: fenced (LeaseLost), a failed write."""
        failure = self._writer.stopping_failure
        if failure is not None:
            raise failure  # fenced (LeaseLost) or the store failed: stop at this tick
        lease = self.lease
        if lease is not None and getattr(lease, "held", True) is False:
            self._token()  # raises LeaseLost: a holder past its renew deadline stops working
        self.last_progress_at = now  # the slow path runs only after an item finished
        return self._rate.update(n, now)

    def apply_control(self, request: Optional[Control]) -> bool:
        """Take up a new pause or cancel request, then ask the runtime's ``stop_when``;
        True when the loop must stop now."""
        if request is not None and request.id != self._manifest.control and request.action != "resume":
            self._manifest = self._manifest.with_changes(control=request.id)
            self._change(Happened.REQUEST, JobStatus.PAUSED if request.action == "pause" else JobStatus.CANCELLED,
                         reason="requested")
            return True
        if self.stop_when is not None:
            reason = self.stop_when()
            if reason:
                self._change(Happened.STOP, reason=reason)
                return True
        return False

    def end(self, run: Run, finished: bool) -> bool:
        """End of ``run``: set the status, write the final checkpoint. False when there was
        nothing of it to end (refused at its start; or the interpreter is finalizing)."""
        if run is not self._open_run:
            return False  # a run refused at its start (another was open): nothing of it to write
        self._open_run = None
        if sys.is_finalizing():
            return False  # too late to write safely; the exit hook closed every loop it could before this
        with self._lock:
            self._writer.close()  # after the write in flight; the final one is written here
            if finished and self.status is JobStatus.RUNNING:
                # the source is exhausted: its size is what this run skipped and ran (not
                # `done`, which may count an item another run also recorded meanwhile)
                self._manifest = self._manifest.with_changes(total=run.seen)
                self._change(Happened.EXHAUSTED)
            elif self._change(Happened.LEFT) is JobStatus.LEFT_EARLY:
                OUTCOMES.watch(self)  # break, an exception, or Ctrl-C: see outcome.py
            try:
                self._checkpoint(events=EventFlush.SOON)  # the loop does not wait for the event write
            except LeaseLost as exc:
                if finished:
                    raise  # the loop ran to its end: tell the caller its last items did not land
                # The loop was left early (break, an error, or fencing in the slow path): an
                # exception from a closing generator could only be printed as "ignored".
                self._running_since = None
                log.warning("job %r: %s", self.id, exc)
        return True

    # -- context manager: how a failing body is recorded -----------------------

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if exc is not None:
            self.record_outcome(exc)

    def record_outcome(self, exc: Optional[BaseException]) -> None:
        """Record how an interrupted run ended: an error (failed), Ctrl-C or none (paused)."""
        with self._lock:
            if self._manifest.status.stored is not JobStatus.RUNNING:
                return
            if isinstance(exc, LeaseLost):
                self._change(Happened.LEASE_LOST)
                self._running_since = None
                return  # the new holder owns the record now; write nothing
            if exc is None:
                self._change(Happened.UNSEEN, reason="loop left early")
            elif isinstance(exc, (KeyboardInterrupt, GeneratorExit)):
                self._change(Happened.INTERRUPTED, reason="interrupted")
            else:
                self._change(Happened.ERROR, error=exc, reason="error")
            try:
                self._checkpoint(events=EventFlush.NOW, settle=True)
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
                if self._run is not None:
                    self._run.refresh_view()

    # -- loops sessionkit does not drive ----------------------------------------

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
        if pending is not None and self.apply_control(pending()):
            return self.status.value
        return None

    # -- blobs -----------------------------------------------------------------

    def save_blob(self, name: str, obj: Any, *, format: Optional[str] = None) -> str:
        """Save a large object under ``name``; it becomes current at the next checkpoint,
        together with the done items and ``state``. Returns its content hash."""
        return self._add_blob(name, lambda: blobs.save(self.store, self.id, obj, format, self.clock))

    def load_blob(self, name: str, default: Any = _MISSING) -> Any:
        """The newest loadable generation of blob ``name``; an unreadable one is skipped
        with a warning naming it. ``default`` is returned when none was saved."""
        entries = self._blob_entries(name, default)
        if not entries:
            return default
        self._check_kind(name, entries[0], "object")
        return blobs.load_newest(self.store, self.id, name, entries)

    def save_file(self, name: str, path: "str | os.PathLike[str]") -> str:
        """Save the file at ``path`` (streamed, any size) as blob ``name``; current at the
        next checkpoint. Returns its content hash."""
        self._check_blob_name(name)
        return self._add_blob(name, lambda: blobs.save_file(self.store, self.id, path, "file", self.clock))

    def load_file(self, name: str, path: "str | os.PathLike[str]") -> Optional[Path]:
        """Write the newest intact generation of file blob ``name`` to ``path`` (replaced
        only when it arrived whole and checked); ``None`` when none was saved."""
        entries = self._blob_entries(name, None)
        if not entries:
            return None
        self._check_kind(name, entries[0], "file")

        def attempt(entry: dict[str, Any]) -> Path:
            blobs.fetch(self.store, self.id, entry["hash"], entry.get("size"), path)
            return Path(path)
        return blobs.newest(self.id, name, entries, attempt)

    def save_dir(self, name: str, folder: "str | os.PathLike[str]") -> str:
        """Save every file under ``folder`` (a framework's checkpoint folder) as blob
        ``name``; current at the next checkpoint, so a reader gets a whole folder or the
        previous one. Files equal to ones saved before are not sent again."""
        return self._add_blob(name, lambda: blobs.save_dir(self.store, self.id, folder, self.clock))

    def load_dir(self, name: str, folder: "str | os.PathLike[str]") -> Optional[Path]:
        """Download the newest intact generation of folder blob ``name`` into ``folder``
        (replacing it once every file arrived and checked); ``None`` when none was saved."""
        entries = self._blob_entries(name, None)
        if not entries:
            return None
        self._check_kind(name, entries[0], "dir")

        def attempt(entry: dict[str, Any]) -> Path:
            return blobs.fetch_dir(self.store, self.id, entry, folder)
        return blobs.newest(self.id, name, entries, attempt)

    def save_state(self, name: str = "state", *, extra: Optional[dict[str, Any]] = None, **objects: Any) -> str:
        """Save the full state of a hand-written training loop as blob ``name``: the
        ``state_dict()`` of each object (``model=``, ``optimizer=``, ``scheduler=``,
        ``scaler=``, ...), the random number generators (random, numpy, torch CPU and
        CUDA) and ``extra`` (step, epoch, data position: plain values). Current at the next
        checkpoint; loaded back safely by ``load_state``."""
        from .training_state import capture

        return self.save_blob(name, capture(objects, extra), format="torch")

    def load_state(self, name: str = "state", **objects: Any) -> Optional[dict[str, Any]]:
        """Load what ``save_state`` saved into the same objects (``model=``, ...), restore
        the random number generators, and return ``extra``; ``None`` (nothing changed)
        when no state was saved yet: a first run."""
        from .training_state import restore

        if not self._m.blobs.get(name):
            return None
        return restore(self.load_blob(name), objects, job=self.id)

    def _add_blob(self, name: str, store_it: Callable[[], dict[str, Any]]) -> str:
        self._check_blob_name(name)
        entry = store_it()
        with self._lock:
            entries = self._m.blobs.get(name, ())
            if not entries or entries[0]["hash"] != entry["hash"]:
                entries = ((entry,) + tuple(entries))[:self.keep_blobs]
                self._m = self._m.but(blobs={**self._m.blobs, name: entries})
        return entry["hash"]

    @staticmethod
    def _check_blob_name(name: Any) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a blob name must be a non-empty str without '/', got {name!r}")

    def _blob_entries(self, name: str, default: Any) -> "tuple[dict[str, Any], ...]":
        entries = self._m.blobs.get(name) or ()
        if not entries and default is _MISSING:
            saved = ", ".join(sorted(self._m.blobs)) or "none"
            raise NotFound(f"job {self.id!r} has no blob {name!r} (saved blobs: {saved})")
        return tuple(entries)

    def _check_kind(self, name: str, entry: dict[str, Any], kind: str) -> None:
        """``kind``: "file", "dir" or "object" (any other format)."""
        fmt = entry.get("format")
        found = fmt if fmt in ("file", "dir") else "object"
        if found != kind:
            what = {"file": "a file", "dir": "a folder", "object": f"an object ({fmt})"}[found]
            how = {"file": f"job.load_file({name!r}, path)", "dir": f"job.load_dir({name!r}, folder)",
                   "object": f"job.load_blob({name!r})"}[found]
            raise BlobError(f"job {self.id!r}: blob {name!r} is {what}; get it with {how}")

    # -- choosing a job to restore ---------------------------------------------

    @classmethod
    def latest(cls, store: Union[Store, str], *, clock: Optional[Clock] = None, **kwargs: Any) -> Optional["Job"]:
        """The job to restore: active ones (running, paused) first, most recent first; then
        one completed in the last 5 minutes; then the most recent overall. None if no job."""
        store = open_store(store)
        clock = clock or SYSTEM_CLOCK
        job_id = latest_id(store, clock)
        return None if job_id is None else cls(store, job_id, clock=clock, **kwargs)
