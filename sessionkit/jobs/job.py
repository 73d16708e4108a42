"""``Job``: a user's loop that survives its runtime.

``for item in job.track(items): work(item)`` yields only the items not done yet
and checkpoints progress to the store every ``checkpoint_every`` seconds or
``checkpoint_items`` items, at the end, and when the loop is left early. An item
counts as done when the loop asks for the next one (or ends normally), so an
item whose body raised, or that was running when the process died, runs again.

The per-item path is three operations (yield, add, compare), as in tqdm; clock
reads, checkpoints, control polls and view updates happen on a slower path
entered every few items, sized so it runs about every 50 ms.
"""

from __future__ import annotations

import atexit
import json
import logging
import sys
import threading
import weakref
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import Conflict, LeaseLost, SessionkitError, SessionkitWarning, StoreError
from ..events import EventLog
from ..runtimes import ipython_shell
from ..store import ABSENT, Store, open_store
from . import blobs as blobcodec
from . import control as controls
from .doneset import KEY, POSITION, Ranges, Segment, SegmentList, SegmentMissing
from .manifest import (
    ACTIVE,
    FINISHED,
    MANIFEST_FORMAT,
    TRANSITIONS,
    InvalidTransition,
    Loaded,
    check_job_id,
    encode,
    load,
    manifest_key,
    prev_key,
)
from .progress import Progress, RateMeter

T = TypeVar("T")
log = logging.getLogger("sessionkit.jobs")

TICK_SECONDS = 0.05  # target time between slow-path visits
MAX_TICK_ITEMS = 512  # ... and at most this many items between them
VIEW_SECONDS = 0.1  # views are refreshed at most this often
EVENT_SECONDS = 30.0  # job.checkpoint events are sampled at most this often
PREV_EVERY = 10  # a position job without blobs keeps manifest.prev this many generations apart
LOCAL_CONTROL_POLL = 1.0  # seconds between reads of pause/cancel requests on a local or memory store
REMOTE_CONTROL_POLL = 10.0  # ... on a remote store (Drive, GCS, S3), where each read is a request
_MISSING = object()


class JobCancelled(SessionkitError):
    """The job was cancelled; a cancelled job does not run again."""


class BlobError(SessionkitError):
    """No generation of a saved blob could be loaded."""


def _consume(it: Iterator[Any], n: int) -> int:
    """Skip ``n`` items of ``it`` at C speed; return how many there were."""
    if n <= 0:
        return 0
    count = 0
    for count, _ in enumerate(islice(it, n), 1):
        pass
    return count


class Job:
    """A resumable job whose progress lives in ``store`` under ``jobs/<job_id>/``.

    ``total`` is the number of items (taken from ``len()`` when the iterable has
    one); ``params`` are fixed at creation (a job resumed with other params is
    refused); ``lease`` is anything with an int ``token``: checkpoints carry it
    and a writer that finds a higher token raises ``LeaseLost`` (fencing).
    """

    def __init__(self, store: Union[Store, str], job_id: str, *, total: Optional[int] = None,
                 params: Optional[dict[str, Any]] = None, lease: Any = None,
                 checkpoint_every: float = 2.0, checkpoint_items: Optional[int] = None,
                 clock: Optional[Clock] = None, events: Optional[EventLog] = None,
                 keep_blobs: int = 3, control_poll: Optional[float] = None) -> None:
        self.store = open_store(store)
        self.id = check_job_id(job_id)
        if not isinstance(checkpoint_every, (int, float)) or not checkpoint_every > 0:
            raise ValueError(f"checkpoint_every must be a number of seconds > 0, got {checkpoint_every!r}")
        if checkpoint_items is not None and (not isinstance(checkpoint_items, int) or checkpoint_items < 1):
            raise ValueError(f"checkpoint_items must be an int >= 1 or None, got {checkpoint_items!r}")
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be an int >= 0 or None, got {total!r}")
        if keep_blobs < 1:
            raise ValueError(f"keep_blobs must be >= 1, got {keep_blobs!r}")
        if control_poll is None:  # every read of a remote store is a request: poll it less often
            control_poll = REMOTE_CONTROL_POLL if getattr(self.store, "remote", False) else LOCAL_CONTROL_POLL
        if isinstance(control_poll, bool) or not isinstance(control_poll, (int, float)) or not control_poll > 0:
            raise ValueError(f"control_poll must be a number of seconds > 0 (how often pause/cancel "
                             f"requests are read), got {control_poll!r}")
        self.checkpoint_every = float(checkpoint_every)
        self.checkpoint_items = checkpoint_items
        self.clock = clock or SYSTEM_CLOCK
        self.lease = lease
        self.keep_blobs = keep_blobs
        self.control_poll = control_poll
        self.events = events or EventLog(self.store, clock=self.clock)
        self.state: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._garbage: tuple[list[Segment], set[str]] = ([], set())  # to delete after the next checkpoint
        self._fresh_ranges = Ranges()
        self._fresh_keys: list[str] = []
        self._open_from: Optional[int] = None  # start of the positions done since the last checkpoint
        self._n = 0  # items done in this run
        self._skipped = 0
        self._bytes = 0
        self._running_since: Optional[float] = None
        self._rate = RateMeter()
        self._view: Any = None
        self._interrupted = False
        self._active: Optional["weakref.ref[Iterator[Any]]"] = None
        #: Set by whoever runs the job on a runtime that ends (a Primary): seconds it has left,
        #: and the seconds a handover needs. ``progress.forecast`` judges them.
        self.runtime_left: Optional[Callable[[], Optional[float]]] = None
        self.handover_lead = 0.0
        self.checkpoint_seconds = 0.0  # how long the last checkpoint took, on the job's clock
        self.last_progress_at: Optional[float] = None  # when an item last finished (slow path), on its clock
        #: Called on the slow path (about every 50 ms); a true result stops the loop cleanly,
        #: leaving the job paused with this reason (handover uses it).
        self.stop_when: Optional[Callable[[], Optional[str]]] = None
        self._last = {"checkpoint": 0.0, "view": 0.0, "control": 0.0, "event": -1e18}
        self._n_at_checkpoint = 0
        self._load_or_create(total, params)
        _live_jobs.add(self)

    # -- loading ---------------------------------------------------------------

    def _load_or_create(self, total: Optional[int], params: Optional[dict[str, Any]]) -> None:
        loaded = load(self.store, self.id)
        if loaded is None:
            now = self.clock.now().isoformat()
            manifest = {
                "format": MANIFEST_FORMAT, "kind": "sessionkit.job", "job": self.id,
                "status": "pending", "generation": 0, "token": self._token(), "total": total,
                "params": params or {}, "mode": None, "segments": [], "done": 0, "state": {},
                "blobs": {}, "stages": [], "stage": None, "bytes": 0, "elapsed": 0.0,
                "created": now, "updated": now, "error": None, "control": None,
                "writer": self.events.writer,
            }
            raw = encode(manifest)
            try:
                version = self.store.put(manifest_key(self.id), raw, expect=ABSENT)
            except Conflict:  # created by someone else just now
                self._load_or_create(total, params)
                return
            self._adopt(Loaded(manifest, raw, version))
            self.events.emit("job.created", job=self.id, total=total, params=params or {})
            self.events.flush()
            return
        stored = loaded.manifest.get("params") or {}
        if params is not None and params != stored:
            raise ValueError(
                f"job {self.id!r} was created with params {stored!r}; these params are "
                f"{params!r}. Resume it with the same params, or start a new job id.")
        self._adopt(loaded)
        if total is not None and total != self._m.get("total"):
            self._m["total"] = total

    def _adopt(self, loaded: Loaded) -> None:
        """Take a manifest read from the store as this job's view of itself."""
        m = loaded.manifest
        self._m = m
        self._raw = loaded.raw
        self._version = loaded.version
        self._written_status = m["status"]  # as stored (set_status changes _m before it is written)
        self.state = dict(m.get("state") or {})
        self._bytes = int(m.get("bytes") or 0)
        segments = [Segment(str(s[0]), int(s[1])) for s in m["segments"]]
        mode = m.get("mode") or POSITION
        self._segments = SegmentList(self.store, f"jobs/{self.id}/done/", mode, segments)
        self._done_ranges, self._done_keys = self._segments.load() if segments else (Ranges(), set())
        self._done_ranges.update(Ranges(m.get("ranges") or []))  # format 2: positions inline

    # -- reading ---------------------------------------------------------------

    @property
    def status(self) -> str:
        return self._m["status"]

    @property
    def total(self) -> Optional[int]:
        return self._m.get("total")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._m.get("params") or {})

    @property
    def done(self) -> int:
        return self._m["done"] + self._n - self._n_at_checkpoint

    @property
    def progress(self) -> Progress:
        """A snapshot (counts are as of the last slow-path visit, at most ~50 ms old)."""
        m = self._m
        done = self.done
        total = m.get("total")
        rate = self._rate.rate
        eta = None
        if rate and total is not None and total >= done:
            eta = (total - done) / rate
        stages = m.get("stages") or []
        stage = m.get("stage")
        error = m.get("error") or None
        return Progress(
            job=self.id, status=m["status"], done=done, total=total, skipped=self._skipped,
            rate=rate, eta=eta, bytes=self._bytes, elapsed=self._elapsed(), stage=stage,
            stage_index=(stages.index(stage) + 1) if stage in stages else None, stages=len(stages),
            error=error.get("message") if isinstance(error, dict) else None,
            runtime_left=self.runtime_left() if self.runtime_left is not None else None,
            handover_lead=self.handover_lead,
        )

    def _elapsed(self) -> float:
        base = float(self._m.get("elapsed") or 0.0)
        if self._running_since is not None:
            base += self.clock.monotonic() - self._running_since
        return base

    def _token(self) -> Optional[int]:
        """The fencing token to write with; a lease past its renew deadline raises LeaseLost."""
        if self.lease is None:
            return None
        check = getattr(self.lease, "check", None)
        token = check() if check is not None else getattr(self.lease, "token", None)
        if token is not None and not isinstance(token, int):
            raise TypeError(f"lease.token must be an int, got {type(token).__name__}")
        return token

    def __repr__(self) -> str:
        total = "?" if self.total is None else self.total
        return f"<Job {self.id!r} {self.status} {self.done}/{total} in {self.store.url}>"

    # -- status and stages -----------------------------------------------------

    def _set_status(self, status: str, *, error: Optional[BaseException] = None, reason: str = "") -> None:
        current = self._m["status"]
        if status == current:
            return
        if status not in TRANSITIONS.get(current, ()):
            raise InvalidTransition(self.id, current, status)
        now_mono = self.clock.monotonic()
        if status == "running":
            self._running_since = now_mono
        elif self._running_since is not None:
            self._m["elapsed"] = float(self._m.get("elapsed") or 0.0) + now_mono - self._running_since
            self._running_since = None
        self._m["status"] = status
        if error is not None:
            self._m["error"] = {"type": type(error).__name__, "message": str(error)[:2000],
                                "at": self.clock.now().isoformat()}
        elif status == "running":
            self._m["error"] = None
        self.events.emit("job.status", job=self.id, **{"from": current, "to": status},
                         reason=reason, error=self._m["error"] if status == "failed" else None)

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
            stages = self._m.setdefault("stages", [])
            if name not in stages:
                stages.append(name)
            if self._m.get("stage") != name:
                self._m["stage"] = name
                self.events.emit("job.stage", job=self.id, stage=name, index=stages.index(name) + 1)
            if self._view is not None:
                self._view.update(self.progress)

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
        with self._lock:
            if self.status == "cancelled":
                raise JobCancelled(f"job {self.id!r} was cancelled; start a new job id, or remove it "
                                   f"with sessionkit.jobs.clear")
            mode = KEY if key is not None else POSITION
            if self._m.get("mode") not in (None, mode):
                raise ValueError(
                    f"job {self.id!r} was run with items known by {self._m['mode']}; call track "
                    f"{'with the same key=' if self._m['mode'] == KEY else 'without key='} as before")
            if key is not None and not callable(key):
                raise TypeError(f"key must be a function of an item, got {type(key).__name__}")
            self._m["mode"] = mode
            self._segments.mode = mode
            if self._m.get("total") is None and hasattr(iterable, "__len__"):
                self._m["total"] = len(iterable)  # type: ignore[arg-type]
            self._view = _make_view(self, display)
        gen = self._track_positions(iterable) if key is None else self._track_keys(iterable, key)
        self._active = weakref.ref(gen)  # closed at interpreter exit if still suspended
        return gen

    def _start(self) -> bool:
        """Begin a run: honour control requests, mark running. False if the job must not run."""
        request = controls.read(self.store, self.id)
        if request is not None and request.action == "cancel" and request.id != self._m.get("control"):
            self._m["control"] = request.id
            self._set_status("cancelled", reason="requested")
            self.checkpoint()
            return False
        if request is not None and request.action == "pause":
            if self.status != "paused":
                self._m["control"] = request.id
                self._set_status("paused", reason="requested")
                self.checkpoint()
            log.warning("job %r is paused by request; run sessionkit.jobs.request(store, %r, 'resume') "
                        "and track it again", self.id, self.id)
            return False
        if request is not None:
            self._m["control"] = request.id
        self._n = self._n_at_checkpoint = 0
        self._skipped = 0
        self._interrupted = False
        self._set_status("running", reason="resumed" if self._m["generation"] else "started")
        self.checkpoint()  # claims the job: our token is in the store from now on
        now = self.clock.monotonic()
        self._last.update(checkpoint=now, view=now, control=now)
        self._rate.restart(0, now)
        self.last_progress_at = now
        return True

    def _track_positions(self, iterable: Iterable[T]) -> Iterator[T]:
        it = iter(iterable)
        pos = 0
        finished = False
        stopped = False
        try:
            if not self._start():
                return
            check_at = 1
            for start, end in list(self._done_ranges.gaps()):
                if start > pos:
                    skipped = _consume(it, start - pos)
                    self._skipped += skipped
                    pos += skipped
                    if pos < start:
                        break  # the iterable ended inside done items
                self._open_from = pos
                check_at = max(check_at, pos + 1)
                for item in (it if end is None else islice(it, end - start)):
                    yield item
                    pos += 1
                    if pos >= check_at:
                        check_at = self._tick(pos)
                        if check_at < 0:
                            stopped = True
                            break
                self._close_run(pos)
                if stopped or (end is not None and pos < end):
                    break
            finished = not stopped
        finally:
            self._close_run(pos)
            self._finish(finished)

    def _track_keys(self, iterable: Iterable[T], key: Callable[[T], str]) -> Iterator[T]:
        done = self._done_keys
        fresh = self._fresh_keys
        n = 0
        skipped = 0
        finished = False
        try:
            if not self._start():
                return
            check_at = 1
            for item in iterable:
                k = key(item)
                if k in done:
                    skipped += 1
                    continue
                yield item
                done.add(k)
                fresh.append(k)
                n += 1
                if n >= check_at:
                    self._skipped = skipped
                    check_at = self._tick_keys(n)
                    if check_at < 0:
                        break
            else:
                finished = True
        finally:
            self._skipped = skipped
            self._n = n
            self._finish(finished)

    def _close_run(self, pos: int) -> None:
        """Move positions done since the last checkpoint into the fresh set."""
        if self._open_from is not None and pos > self._open_from:
            self._fresh_ranges.update(Ranges([[self._open_from, pos]]))
            self._n += pos - self._open_from
            self._open_from = pos

    def _tick(self, pos: int) -> int:
        """The slow path of position tracking; returns the next position to visit it at (or -1)."""
        self._close_run(pos)
        return self._slow(self._n, pos)

    def _tick_keys(self, n: int) -> int:
        self._n = n
        return self._slow(n, n)

    def _slow(self, n: int, counter: int) -> int:
        if self.lease is not None and getattr(self.lease, "held", True) is False:
            self._token()  # raises LeaseLost: a holder past its renew deadline stops working
        now = self.clock.monotonic()
        instant = self._rate.update(n, now)
        self.last_progress_at = now  # the slow path runs only after an item finished
        last = self._last
        if self.checkpoint_items and n - self._n_at_checkpoint >= self.checkpoint_items \
                or now - last["checkpoint"] >= self.checkpoint_every:
            self.checkpoint()
        if now - last["control"] >= self.control_poll:
            last["control"] = now
            if self._obey_control():
                return -1
        if self.stop_when is not None:
            reason = self.stop_when()
            if reason:
                self._set_status("paused", reason=reason)
                return -1
        if self._view is not None and now - last["view"] >= VIEW_SECONDS:
            last["view"] = now
            self._view.update(self.progress)
        step = MAX_TICK_ITEMS
        if instant is not None:
            step = max(1, min(MAX_TICK_ITEMS, int(instant * TICK_SECONDS)))
        if self.checkpoint_items:
            step = max(1, min(step, self._n_at_checkpoint + self.checkpoint_items - n))
        return counter + step

    def _obey_control(self) -> bool:
        """Handle a new pause or cancel request; True when the loop must stop now."""
        request = controls.read(self.store, self.id)
        if request is None or request.id == self._m.get("control") or request.action == "resume":
            return False
        self._m["control"] = request.id
        self._set_status("paused" if request.action == "pause" else "cancelled", reason="requested")
        return True

    def _finish(self, finished: bool) -> None:
        """End of a run: set the status, checkpoint, refresh the view."""
        if sys.is_finalizing():
            return  # too late to write safely; _at_exit closed every loop it could before this
        with self._lock:
            if self.status == "running":
                if finished:
                    self._m["total"] = self.done  # the source is exhausted: this is its size
                    self._set_status("completed")
                else:
                    self._interrupted = True  # break, an exception, or Ctrl-C: see _Outcome
                    _outcome.watch(self)
            try:
                self.checkpoint()
            except LeaseLost as exc:
                if finished:
                    raise  # the loop ran to its end: tell the caller its last items did not land
                # The loop was left early (break, an error, or fencing in the slow path): an
                # exception from a closing generator could only be printed as "ignored".
                log.warning("job %r: %s", self.id, exc)
            finally:
                if self._view is not None:
                    self._view.update(self.progress)
                    self._view.close()

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
                self.checkpoint()
            except LeaseLost:
                return
            finally:
                if self._view is not None:
                    self._view.update(self.progress)

    # -- checkpoints -----------------------------------------------------------

    def checkpoint(self) -> None:
        """Write progress, state and blob pointers now (one compare-and-swap of the manifest)."""
        started = self.clock.monotonic()
        try:
            self._checkpoint()
        finally:
            self.checkpoint_seconds = self.clock.monotonic() - started

    def _checkpoint(self) -> None:
        with self._lock:
            token = self._token()
            self._check_state()
            fresh_ranges, fresh_keys = self._fresh_ranges, self._fresh_keys
            keyed = self._segments.mode == KEY
            count = len(fresh_keys) if keyed else len(fresh_ranges)
            while True:
                # Fencing without a read: the write below is a compare-and-swap on the very
                # manifest this writer last saw, so refusing to write over a higher token seen
                # there fences as a fresh read would; a newer write makes the swap fail.
                if (self._m.get("token") or 0) > (token or 0):
                    self._lost(token, self._m.get("token"))
                if keyed:
                    try:
                        dropped, written = self._segments.append(fresh_ranges, fresh_keys, count)
                    except SegmentMissing:
                        self._adopt_concurrent(token, fresh_work=count > 0)  # our view was stale
                        continue
                    done = len(self._done_keys)  # the loop adds fresh keys to it at once
                    ranges = None
                else:
                    # positions live in the manifest itself: no segment files, no merges
                    dropped, written = list(self._segments.segments), []  # older stores' segments
                    self._segments.segments = []
                    all_ranges = Ranges(self._done_ranges.spans + fresh_ranges.spans)
                    done, ranges = len(all_ranges), [list(span) for span in all_ranges.spans]
                m = dict(self._m)
                m.update(
                    format=MANIFEST_FORMAT, generation=self._m["generation"] + 1, token=token,
                    writer=self.events.writer, segments=[s.to_json() for s in self._segments.segments],
                    ranges=ranges, done=done, state=dict(self.state), bytes=self._bytes,
                    updated=self.clock.now().isoformat(), elapsed=self._elapsed(),
                )
                raw = encode(m)
                try:
                    if self._prev_needed(m):
                        self.store.put(prev_key(self.id), self._raw)
                    version = self.store.put(manifest_key(self.id), raw, expect=self._version)
                    break
                except Conflict:
                    self._segments.delete(written)  # nobody names what this attempt wrote
                    self._adopt_concurrent(token, fresh_work=count > 0)
            # Segments and blobs that generation n-1 named can go once n+1 exists.
            old_segments, old_blobs = self._garbage
            self._segments.delete(old_segments)
            self._delete_blobs(old_blobs - _blob_hashes(m) - _blob_hashes(self._m))
            self._garbage = (dropped, self._pending_blob_garbage())
            self._m, self._raw, self._version = m, raw, version
            self._written_status = m["status"]
            self._done_ranges.update(fresh_ranges)
            self._fresh_ranges = Ranges()
            self._fresh_keys.clear()  # in place: the running loop appends to this list
            self._n_at_checkpoint = self._n
            now = self.clock.monotonic()
            self._last["checkpoint"] = now
            if now - self._last["event"] >= EVENT_SECONDS or self.status in FINISHED:
                self._last["event"] = now
                self.events.emit("job.checkpoint", job=self.id, generation=m["generation"],
                                 done=done, total=m.get("total"), new=count,
                                 rate=self._rate.rate, bytes=self._bytes, stage=m.get("stage"))
            if self.events.pending:
                self.events.flush()

    def _check_state(self) -> None:
        bad = [k for k, v in self.state.items() if not _jsonable(v)]
        if bad or not _jsonable(self.state):
            raise TypeError(
                f"job {self.id!r}: job.state must hold JSON values (numbers, strings, lists, "
                f"dicts with str keys); {', '.join(map(repr, bad)) or 'a key'} is not. Store other "
                f"objects with job.save_blob(name, obj). Nothing was written.")

    def _prev_needed(self, new: dict[str, Any]) -> bool:
        """Whether to keep the generation being replaced as ``manifest.prev``, the fallback
        for a damaged manifest. Always when a generation names blobs or segments (the
        fallback must find the files it names: only the two newest generations' are kept);
        for a position job without blobs (its done ranges are in the manifest) at the first
        checkpoint, every PREV_EVERY generations and when the status changes: a fallback then
        redoes at most PREV_EVERY checkpoint intervals, and a checkpoint is one request."""
        old = self._m
        if old.get("segments") or new["segments"] or old.get("blobs") or new["blobs"]:
            return True
        return (new["generation"] == 1 or new["generation"] % PREV_EVERY == 0
                or new["status"] != self._written_status)

    def _lost(self, token: Optional[int], newer: Optional[int]) -> None:
        self._running_since = None
        self.events.emit("job.fenced", job=self.id, token=token, newer=newer)
        raise LeaseLost(f"job:{self.id}", token, newer, "checkpointing")

    def _adopt_concurrent(self, token: Optional[int], fresh_work: bool) -> None:
        """The manifest changed under us. Stop if a newer token wrote it; otherwise build on
        it: its done items join ours, and (when this run has done nothing yet, e.g. a new
        holder starting) its state and blobs replace the ones loaded earlier."""
        for _attempt in range(20):
            loaded = load(self.store, self.id)
            if loaded is None:
                raise StoreError(f"job {self.id!r} was removed from {self.store.url} while running",
                                 key=manifest_key(self.id))
            theirs = loaded.manifest
            if (theirs.get("token") or 0) > (token or 0):
                self._lost(token, theirs.get("token"))
            segments = [Segment(str(s[0]), int(s[1])) for s in theirs["segments"]]
            listed = SegmentList(self.store, self._segments.prefix, self._segments.mode, segments)
            try:
                ranges, keys = listed.load()
                ranges.update(Ranges(theirs.get("ranges") or []))
                break
            except SegmentMissing:
                current = self.store.get(manifest_key(self.id))
                if current is not None and current.version == loaded.version:
                    raise  # the manifest stands and names a lost segment: real damage
        else:
            raise StoreError(f"job {self.id!r}: other writers keep changing it; is it running "
                             f"in several places without a lease?", key=manifest_key(self.id))
        if fresh_work:
            log.warning("job %r was checkpointed by another writer (%s) while this one ran; "
                        "keeping the work of both", self.id, theirs.get("writer"))
        self._segments = listed
        self._done_ranges.update(ranges)
        self._done_keys.update(keys)
        keep = {"generation": theirs["generation"], "done": theirs["done"]}
        if not fresh_work:
            self.state = dict(theirs.get("state") or {})
            keep.update(blobs=theirs.get("blobs") or {}, bytes=theirs.get("bytes") or 0)
            self._bytes = int(keep["bytes"])
        self._m = dict(self._m, **keep)
        self._raw, self._version = loaded.raw, loaded.version
        self._written_status = theirs["status"]
        self._garbage = ([], set())  # what we meant to delete may be named by theirs

    # -- blobs -----------------------------------------------------------------

    def save_blob(self, name: str, obj: Any, *, format: Optional[str] = None) -> str:
        """Save a large object under ``name``; it becomes current at the next checkpoint,
        together with the done items and ``state``. Returns its content hash."""
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a blob name must be a non-empty str without '/', got {name!r}")
        fmt = blobcodec.choose_format(obj, format)
        data = blobcodec.dump(obj, fmt)
        digest = blobcodec.digest(data)
        with self._lock:
            try:
                self.store.put(f"jobs/{self.id}/blobs/{digest}", data, expect=ABSENT)
            except Conflict:
                log.debug("blob %s of job %r is stored already", digest, self.id)
            entries = self._m.setdefault("blobs", {}).setdefault(name, [])
            if not entries or entries[0]["hash"] != digest:
                entries.insert(0, {"hash": digest, "format": fmt, "size": len(data),
                                   "at": self.clock.now().isoformat()})
                del entries[self.keep_blobs:]
        return digest

    def load_blob(self, name: str, default: Any = _MISSING) -> Any:
        """The newest loadable generation of blob ``name``; an unreadable one is skipped
        with a warning naming its key. ``default`` is returned when none was saved."""
        import warnings

        entries = list((self._m.get("blobs") or {}).get(name) or [])
        if not entries:
            if default is not _MISSING:
                return default
            saved = ", ".join(sorted(self._m.get("blobs") or {})) or "none"
            raise KeyError(f"job {self.id!r} has no blob {name!r} (saved blobs: {saved})")
        problems = []
        for entry in entries:
            key = f"jobs/{self.id}/blobs/{entry['hash']}"
            try:
                record = self.store.get(key)
                if record is None:
                    raise LookupError("it is missing")
                if blobcodec.digest(record.data) != entry["hash"]:
                    raise ValueError("its content does not match its hash")
                value = blobcodec.load(record.data, entry.get("format", "pickle"))
            except Exception as exc:  # any failure to decode user data: try an older generation
                problems.append(f"{key}: {exc}")
                warnings.warn(f"job {self.id!r}: blob {name!r} at {key!r} cannot be loaded ({exc}); "
                              f"trying the previous generation", SessionkitWarning, stacklevel=2)
                continue
            return value
        raise BlobError(f"job {self.id!r}: no generation of blob {name!r} can be loaded: "
                        + "; ".join(problems))

    def _pending_blob_garbage(self) -> set[str]:
        return _blob_hashes_all_generations(self._raw) - _blob_hashes(self._m)

    def _delete_blobs(self, hashes: set[str]) -> None:
        for digest in hashes:
            try:
                self.store.delete(f"jobs/{self.id}/blobs/{digest}")
            except StoreError as exc:
                log.info("could not remove old blob %s of job %r: %s", digest, self.id, exc)

    # -- choosing a job to restore ---------------------------------------------

    @classmethod
    def latest(cls, store: Union[Store, str], *, clock: Optional[Clock] = None, **kwargs: Any) -> Optional["Job"]:
        """The job to restore: active ones (running, paused) first, most recent first; then
        one completed in the last 5 minutes; then the most recent overall. None if no job."""
        from .listing import list_jobs

        store = open_store(store)
        clock = clock or SYSTEM_CLOCK
        infos = list_jobs(store)
        if not infos:
            return None
        by_recent = sorted(infos, key=lambda i: i.updated or datetime.min.isoformat(), reverse=True)
        active = [i for i in by_recent if i.status in ACTIVE]
        recent_cutoff = (clock.now() - timedelta(minutes=5)).isoformat()
        completed = [i for i in by_recent if i.status == "completed" and (i.updated or "") >= recent_cutoff]
        chosen = (active or completed or by_recent)[0]
        return cls(store, chosen.id, clock=clock, **kwargs)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _blob_hashes(manifest: dict[str, Any]) -> set[str]:
    return {e["hash"] for entries in (manifest.get("blobs") or {}).values() for e in entries}


def _blob_hashes_all_generations(raw: bytes) -> set[str]:
    try:
        return _blob_hashes(json.loads(raw))
    except ValueError:
        return set()


# -- how an interrupted loop ended ---------------------------------------------
#
# A generator cannot tell a `break` from an exception in the loop body: both close
# it. An interrupted job stays "running" until one of these learns the outcome:
# `with job:` (exact), IPython's post_run_cell (the cell's error), sys.excepthook
# (an uncaught error in a script), or interpreter exit (no error seen: paused).


class _Outcome:
    def __init__(self) -> None:
        self.jobs: "weakref.WeakSet[Job]" = weakref.WeakSet()
        self._installed = False
        self._lock = threading.Lock()

    def watch(self, job: Job) -> None:
        with self._lock:
            self.jobs.add(job)
            if self._installed:
                return
            self._installed = True
        ip = ipython_shell()
        if ip is not None:
            ip.events.register("post_run_cell", self._post_run_cell)
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook

    def settle(self, exc: Optional[BaseException]) -> None:
        for job in list(self.jobs):
            self.jobs.discard(job)
            if job._interrupted:
                try:
                    job.record_outcome(exc)
                except SessionkitError as err:
                    log.warning("could not record how job %r ended: %s", job.id, err)

    def _post_run_cell(self, result: Any = None) -> None:
        self.settle(getattr(result, "error_in_exec", None))

    def _excepthook(self, exc_type: Any, exc: BaseException, tb: Any) -> None:
        self.settle(exc)
        self._previous_hook(exc_type, exc, tb)


_outcome = _Outcome()
_live_jobs: "weakref.WeakSet[Job]" = weakref.WeakSet()


@atexit.register
def _at_exit() -> None:
    """Checkpoint jobs still tracking when the interpreter exits; settle interrupted ones."""
    for job in list(_live_jobs):
        try:
            gen = job._active() if job._active is not None else None
            if gen is not None:
                gen.close()  # a loop still suspended: finish it now, while modules still work
            if job._interrupted:
                job.record_outcome(None)
        except (SessionkitError, OSError) as exc:
            log.warning("could not checkpoint job %r at exit: %s", job.id, exc)


#: Makes the view for ``display=True`` from a Progress snapshot. The widgets layer installs
#: its own (a widget in notebooks, text elsewhere) when ``sessionkit`` is imported, so this
#: layer never imports the one above it.
default_view: Optional[Callable[[Progress], Any]] = None


def _make_view(job: Job, display: Any) -> Any:
    if display is False or display is None:
        return None
    if display is True:
        return default_view(job.progress) if default_view is not None else None
    if not hasattr(display, "update"):
        raise TypeError("display must be True, False or a view with update(progress)")
    return display
