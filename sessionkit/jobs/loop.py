"""One run of ``Job.track``: the tqdm-shaped generators and their slow path.

The per-item path is three operations (yield, add, compare), as in tqdm's
``__iter__``; clock reads, snapshots for the checkpoint writer, control requests,
fencing and view updates happen on a slower path entered every few items, sized
so it runs about every 50 ms. Nothing on either path waits on the store: the
writer (writer.py) does the store's work and reports back through attributes the
slow path reads.
"""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional, TypeVar

from ..errors import DuplicateKey
from .checkpoint import Snapshot
from .doneset import Ranges
from .mapping import Window, lost

if TYPE_CHECKING:
    from .job import Job

T = TypeVar("T")

TICK_SECONDS = 0.05  # target time between slow-path visits
MAX_TICK_ITEMS = 512  # ... and at most this many items between them
VIEW_SECONDS = 0.1  # views are refreshed at most this often


def _consume(it: Iterator[Any], n: int) -> int:
    """Skip ``n`` items of ``it`` at C speed; return how many there were."""
    if n <= 0:
        return 0
    count = 0
    for count, _ in enumerate(islice(it, n), 1):
        pass
    return count


class Run:
    """The counters of one ``track`` call; the loop's thread owns them."""

    def __init__(self, job: "Job", view: Any) -> None:
        self.job = job
        self.view = view
        self.n = 0  # items done in this run
        self.skipped = 0
        self.failed_now = 0  # items a map recorded as failed in this run
        self.in_flight = 0  # items a map has submitted and not handed back (as of the last visit)
        self.fresh_ranges = Ranges()  # positions done since the last snapshot
        self.fresh_keys: list[str] = []  # keys done since the last snapshot (the key loop appends)
        self.fresh_positions: list[int] = []  # positions a map finished since the last visit, any order
        self.open_from: Optional[int] = None  # start of the positions done since the last snapshot
        self.n_at_snapshot = 0
        self.interrupted = False
        self.last_checkpoint = self.last_view = self.last_control = 0.0

    def begin(self) -> None:
        now = self.job.clock.monotonic()
        self.last_checkpoint = self.last_view = self.last_control = now
        self.job._rate.restart(0, now)
        self.job.last_progress_at = now

    def snapshot(self) -> Snapshot:
        """Hand the items done since the last snapshot to a new Snapshot (loop thread)."""
        self.close_positions()
        snap = Snapshot(self.job._manifest_now(), tuple(tuple(s) for s in self.fresh_ranges.spans),
                        tuple(self.fresh_keys), self.n)
        self.fresh_ranges = Ranges()
        self.fresh_keys.clear()  # in place: the key loop appends to this list
        self.n_at_snapshot = self.n
        return snap

    # -- the generators --------------------------------------------------------

    def positions(self, iterable: Iterable[T]) -> Iterator[T]:
        job = self.job
        it = iter(iterable)
        pos = 0
        finished = False
        stopped = False
        try:
            if not job._start(self):
                return
            check_at = 1
            for start, end in job._done_gaps():  # a list: the writer may add to the done set
                if start > pos:
                    skipped = _consume(it, start - pos)
                    self.skipped += skipped
                    pos += skipped
                    if pos < start:
                        break  # the iterable ended inside done items
                self.open_from = pos
                check_at = max(check_at, pos + 1)
                for item in (it if end is None else islice(it, end - start)):
                    yield item
                    pos += 1
                    if pos >= check_at:
                        check_at = self.tick(pos)
                        if check_at < 0:
                            stopped = True
                            break
                self.close_span(pos)
                if stopped or (end is not None and pos < end):
                    break
            finished = not stopped
        finally:
            self.close_span(pos)
            job._finish(self, finished)

    def keys(self, iterable: Iterable[T], key: Callable[[T], str]) -> Iterator[T]:
        job = self.job
        done = job._done_keys()  # the writer's done set: keys join it once their checkpoint landed
        fresh = self.fresh_keys
        seen: set[str] = set()  # keys run in this run: a second one is an error, not "done"
        n = 0
        skipped = 0
        finished = False
        try:
            if not job._start(self):
                return
            check_at = 1
            for item in iterable:
                k = key(item)
                if k in done or k in seen:
                    if k in seen:
                        raise DuplicateKey(job.id, k, item)
                    skipped += 1
                    continue
                if k.__class__ is not str:
                    raise TypeError(f"job {job.id!r}: key(item) must return a str; for {item!r} it "
                                    f"returned {k!r} ({type(k).__name__}). Nothing was run for it.")
                yield item
                seen.add(k)
                fresh.append(k)
                n += 1
                if n >= check_at:
                    self.skipped = skipped
                    self.n = n
                    check_at = self.slow(n, n)
                    if check_at < 0:
                        break
            else:
                finished = True
        finally:
            self.skipped = skipped
            self.n = n
            job._finish(self, finished)

    def mapped(self, fn: Callable[[T], Any], iterable: Iterable[T], key: Optional[Callable[[T], str]],
               window: "Window[T]", owned: bool, errors: str, retry_failed: bool,
               drain_seconds: float) -> Iterator[tuple[T, Any]]:
        """``job.map``: items not done (nor failed before, unless ``retry_failed``) go to
        ``window``'s executor; ``(item, result)`` come back as they finish. An item is done
        when the caller asks for the next. When the loop must stop (handover, pause, cancel,
        a failed write), no more are submitted; those in flight are waited for up to
        ``drain_seconds`` and handed back, the rest are not done."""
        job = self.job
        fresh, positions = self.fresh_keys, self.fresh_positions
        n, finished, first_error = 0, False, None
        try:
            if not job._start(self):
                return
            failed_before = job.failed_items
            source = _not_done(iterable, key, job._done_keys(), job._done_ranges(),
                               set() if retry_failed else set(failed_before), self)
            check_at, more, stopping = 1, True, False
            tick = TICK_SECONDS
            while True:
                if more and not stopping:
                    more = window.fill(source)
                if not window:
                    finished = not more and not stopping
                    break
                got = window.take(drain_seconds if stopping else tick)
                if got is None:
                    if stopping:
                        break  # what is still in flight is not done: it runs again next time
                    self.n, self.in_flight = n, len(window)
                    stopping = self.slow(n, n) < 0
                    continue
                ident, item, future = got
                exc = future.exception()
                if exc is not None:
                    if lost(exc) or errors == "raise":
                        first_error, stopping = first_error or exc, True
                        continue  # settle what is in flight, then raise
                    job.record_failed(ident, exc)
                    self.failed_now += 1
                    if n + self.failed_now >= check_at:  # failures too reach the slow path
                        self.n, self.in_flight = n, len(window)
                        check_at = self.slow(n, n + self.failed_now)
                        stopping = check_at < 0
                    continue
                yield item, future.result()
                if key is not None:
                    fresh.append(ident)
                else:
                    positions.append(ident)
                if ident in failed_before:
                    job.record_retried(ident)
                n += 1
                if n + self.failed_now >= check_at and not stopping:
                    self.n, self.in_flight = n, len(window)
                    check_at = self.slow(n, n + self.failed_now)
                    stopping = check_at < 0
            if first_error is not None:
                raise first_error
        finally:
            window.cancel()
            self.in_flight = 0
            if owned:
                window.executor.shutdown(wait=False, cancel_futures=True)
            self.n = n
            self.close_positions()
            job._finish(self, finished and first_error is None)

    # -- the slow path ---------------------------------------------------------

    def close_positions(self) -> None:
        """Positions a ``map`` finished (in any order) since the last visit join the fresh set."""
        if self.fresh_positions:
            done = sorted(self.fresh_positions)
            self.fresh_positions.clear()
            self.fresh_ranges.update(Ranges([[p, p + 1] for p in done]))

    def close_span(self, pos: int) -> None:
        """Move positions done since the last visit into the fresh set."""
        if self.open_from is not None and pos > self.open_from:
            self.fresh_ranges.update(Ranges([[self.open_from, pos]]))
            self.n += pos - self.open_from
            self.open_from = pos

    def tick(self, pos: int) -> int:
        self.close_span(pos)
        return self.slow(self.n, pos)

    def slow(self, n: int, counter: int) -> int:
        """Runs about every 50 ms; returns the counter value to come back at (-1: stop)."""
        job = self.job
        writer = job._writer
        if writer.failure is not None:
            raise writer.failure  # fenced (LeaseLost) or the store failed: stop at this tick
        lease = job.lease
        if lease is not None and getattr(lease, "held", True) is False:
            job._token()  # raises LeaseLost: a holder past its renew deadline stops working
        now = job.clock.monotonic()
        instant = job._rate.update(n, now)
        job.last_progress_at = now  # the slow path runs only after an item finished
        items = job.checkpoint_items
        if items and n - self.n_at_snapshot >= items or now - self.last_checkpoint >= job.checkpoint_every:
            self.last_checkpoint = now
            writer.submit(self.snapshot())
        if now - self.last_control >= job.control_poll:
            self.last_control = now
            writer.poll_control()
        if job._obey_control(writer.request):
            return -1
        if job.stop_when is not None:
            reason = job.stop_when()
            if reason:
                job._set_status("paused", reason=reason)
                return -1
        if self.view is not None and now - self.last_view >= VIEW_SECONDS:
            self.last_view = now
            self.view.update(job.progress)
        step = MAX_TICK_ITEMS
        if instant is not None:
            step = max(1, min(MAX_TICK_ITEMS, int(instant * TICK_SECONDS)))
        if items:
            step = max(1, min(step, self.n_at_snapshot + items - n))
        return counter + step


def _not_done(iterable: Iterable[T], key: Optional[Callable[[T], str]], done_keys: "set[str]",
              done_ranges: Ranges, failed: "set[Any]", run: Run) -> Iterator[tuple[Any, T]]:
    """(item id, item) for each item not done and not failed before: its key, or its
    position. Counts what it skips in ``run.skipped``; a key seen twice is an error."""
    seen: set[str] = set()
    for pos, item in enumerate(iterable):
        if key is None:
            ident: Any = pos
            skip = pos in done_ranges
        else:
            ident = key(item)
            if ident.__class__ is not str:
                raise TypeError(f"job {run.job.id!r}: key(item) must return a str; for {item!r} it "
                                f"returned {ident!r} ({type(ident).__name__}). Nothing was run for it.")
            if ident in seen:
                raise DuplicateKey(run.job.id, ident, item)
            seen.add(ident)
            skip = ident in done_keys
        if skip or ident in failed:
            run.skipped += 1
            continue
        yield ident, item
