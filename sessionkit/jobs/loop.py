"""One run of a job's loop: the tqdm-shaped generators of ``track`` and their slow path.

The per-item path is three operations (yield, add, compare), as in tqdm's
``__iter__``; clock reads, snapshots for the checkpoint writer, control requests,
fencing and view updates happen on a slower path entered every few items, sized
so it runs about every 50 ms. Nothing on either path waits on the store: the
writer (writer.py) does the store's work and reports back through attributes the
slow path reads, and pause/cancel requests are read off the loop's thread and
taken up at the first visit after the read came back.

``Run`` owns the run's counters, its view and its reads of control requests; the job
it runs offers it a small protocol (``RunnableJob``: begin, record progress, apply a
control request, end), so this module uses nothing private of ``Job`` and does not
import it. ``job.map``'s generator (mapping.py) drives a ``Run`` the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Optional, Protocol, TypeVar

from ..clock import Clock
from ..errors import DuplicateKey
from .checkpoint import Snapshot
from .control import Control
from .doneset import Ranges
from .manifest import Manifest
from .progress import Progress
from .writer import CheckpointWriter

T = TypeVar("T")
log = logging.getLogger("sessionkit.jobs")

TICK_SECONDS = 0.05  # target time between slow-path visits
MAX_TICK_ITEMS = 512  # ... and at most this many items between them
VIEW_SECONDS = 0.1  # views are refreshed at most this often


@dataclass(frozen=True)
class Begun:
    """What a job hands a run it lets start."""

    writer: CheckpointWriter
    done_ranges: Ranges  # positions done (the writer's: it adds to them as checkpoints land)
    done_keys: "set[str]"  # keys done (likewise)
    failed: "dict[Any, str]"  # items recorded as failed before this run: id -> error


class RunnableJob(Protocol):
    """What a ``Run`` needs of the job it runs (``Job`` is one)."""

    id: str
    clock: Clock
    checkpoint_every: float
    checkpoint_items: Optional[int]
    control_poll: float

    @property
    def progress(self) -> Progress: ...

    def begin(self, run: "Run") -> Optional[Begun]:
        """Claim the job for ``run``; None when it must not run (paused or cancelled)."""

    def record_progress(self, n: int, now: float) -> Optional[float]:
        """``n`` items done in this run at ``now``: the instantaneous rate; raises why the
        loop must stop at once (fenced, a failed write)."""

    def apply_control(self, request: Optional[Control]) -> bool:
        """Take up a pause or cancel request (or the runtime's own stop): True to stop now."""

    def manifest_now(self) -> Manifest: ...

    def end(self, run: "Run", finished: bool) -> bool:
        """The run ended (``finished``: its items ran out): status and final checkpoint.
        False when there was nothing of it to end (it never began)."""

    def record_failed(self, item_id: Any, exc: BaseException) -> None: ...

    def record_retried(self, item_id: Any) -> None: ...

    def abandoned(self, item_ids: "list[Any]", drain_seconds: float) -> None:
        """Items a stopping map left running past its drain (not done): announce them."""


def _consume(it: Iterator[Any], n: int) -> int:
    """Skip ``n`` items of ``it`` at C speed; return how many there were."""
    if n <= 0:
        return 0
    count = 0
    for count, _ in enumerate(islice(it, n), 1):
        pass
    return count


class Run:
    """The counters of one ``track`` or ``map`` call; the loop's thread owns them."""

    def __init__(self, job: RunnableJob, view: Any) -> None:
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
        self.last_checkpoint = self.last_view = self.last_control = 0.0
        self.writer: Optional[CheckpointWriter] = None
        self._control: Optional[Callable[[], Optional[Control]]] = None  # a control read still out

    @property
    def seen(self) -> int:
        """Items of the source this run has come to: skipped, done or failed."""
        return self.skipped + self.n + self.failed_now

    def start(self) -> Optional[Begun]:
        """Begin: the job claims itself for this run; None when it must not run."""
        begun = self.job.begin(self)
        if begun is None:
            return None
        self.writer = begun.writer
        self.last_checkpoint = self.last_view = self.last_control = self.job.clock.monotonic()
        return begun

    def end(self, finished: bool) -> None:
        """The loop ended: the job's status and final checkpoint, then the view's last update."""
        try:
            shown = self.job.end(self, finished)
        except BaseException:
            self.close_view()
            raise
        if shown:
            self.close_view()

    def refresh_view(self) -> None:
        if self.view is not None:
            self.view.update(self.job.progress)

    def close_view(self) -> None:
        if self.view is not None:
            self.view.update(self.job.progress)
            self.view.close()

    def snapshot(self) -> Snapshot:
        """Hand the items done since the last snapshot to a new Snapshot (loop thread)."""
        self.close_positions()
        snap = Snapshot(self.job.manifest_now(), tuple(tuple(s) for s in self.fresh_ranges.spans),
                        tuple(self.fresh_keys), self.n)
        self.fresh_ranges = Ranges()
        self.fresh_keys.clear()  # in place: the key loop appends to this list
        self.n_at_snapshot = self.n
        return snap

    # -- the generators --------------------------------------------------------

    def positions(self, iterable: Iterable[T]) -> Iterator[T]:
        it = iter(iterable)
        pos = 0
        finished = False
        stopped = False
        try:
            begun = self.start()
            if begun is None:
                return
            check_at: Optional[int] = 1
            for start, end in list(begun.done_ranges.gaps()):  # a list: the writer may add to the done set
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
                        if check_at is None:
                            stopped = True
                            break
                self.close_span(pos)
                if stopped or (end is not None and pos < end):
                    break
            finished = not stopped
        finally:
            self.close_span(pos)
            self.end(finished)

    def keys(self, iterable: Iterable[T], key: Callable[[T], str]) -> Iterator[T]:
        job = self.job
        fresh = self.fresh_keys
        seen: set[str] = set()  # keys run in this run: a second one is an error, not "done"
        n = 0
        skipped = 0
        finished = False
        try:
            begun = self.start()
            if begun is None:
                return
            done = begun.done_keys  # the writer's done set: keys join it once their checkpoint landed
            check_at: Optional[int] = 1
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
                    if check_at is None:
                        break
            else:
                finished = True
        finally:
            self.skipped = skipped
            self.n = n
            self.end(finished)

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

    def tick(self, pos: int) -> Optional[int]:
        self.close_span(pos)
        return self.slow(self.n, pos)

    def slow(self, n: int, counter: int) -> Optional[int]:
        """Runs about every 50 ms: the counter value to come back at, or None when the loop
        must stop now (a pause or cancel request, the runtime's stop). Raises what stops
        it at once (fenced, a failed write)."""
        job, writer = self.job, self.writer
        assert writer is not None, "slow() runs only in a run that began"
        now = job.clock.monotonic()
        instant = job.record_progress(n, now)
        items = job.checkpoint_items
        if items and n - self.n_at_snapshot >= items or now - self.last_checkpoint >= job.checkpoint_every:
            self.last_checkpoint = now
            writer.submit(self.snapshot())
        if job.apply_control(self.control_request(now)):
            return None
        if self.view is not None and now - self.last_view >= VIEW_SECONDS:
            self.last_view = now
            self.view.update(job.progress)
        step = MAX_TICK_ITEMS
        if instant is not None:
            step = max(1, min(MAX_TICK_ITEMS, int(instant * TICK_SECONDS)))
        if items:
            step = max(1, min(step, self.n_at_snapshot + items - n))
        return counter + step

    def control_request(self, now: float) -> Optional[Control]:
        """The latest pause/cancel request as last read. A read starts every ``control_poll``
        seconds off this thread and is taken up once it came back: a slow store never
        holds the loop (nor its checkpoint writer) on a control read."""
        writer = self.writer
        assert writer is not None
        if self._control is None and now - self.last_control >= self.job.control_poll:
            self.last_control = now
            self._control = writer.read_control_soon()  # on a FakeClock: read at once, ready now
        pending = self._control
        if pending is not None and getattr(pending, "ready", lambda: True)():
            self._control = None
            try:
                writer.request = pending()
            except Exception as exc:  # a failed read is retried at the next poll; the job goes on
                log.warning("job %s: could not read pause/cancel requests: %s", self.job.id, exc)
        return writer.request
