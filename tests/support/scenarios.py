"""Recorded scenarios for history and plots: real sessions, leases and jobs on a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sessionkit import Job, Session
from sessionkit.clock import FakeClock
from sessionkit.runtimes import Runtime
from sessionkit.handover import Backup, Primary
from sessionkit.sessions import DropWatcher
from sessionkit.store.memory import MemoryStore


class OffsetClock:
    """One runtime's view of a shared fake time: its own monotonic origin and wall offset
    (machines whose clocks disagree)."""

    def __init__(self, base: FakeClock, mono_offset: float = 0.0, wall_offset: float = 0.0) -> None:
        self.base, self.mono_offset, self.wall_offset = base, mono_offset, wall_offset

    def monotonic(self) -> float:
        return self.base.monotonic() + self.mono_offset

    def now(self) -> datetime:
        return self.base.now() + timedelta(seconds=self.wall_offset)

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def wait(self, event, seconds: float) -> bool:
        return self.base.wait(event, seconds)

    def real_seconds(self, seconds: float):
        return self.base.real_seconds(seconds)

    def scheduler(self):
        return self.base.scheduler()  # background work falls due as the shared time advances


def story(store=None, clock=None, walls=None):
    """A runs the job and hands over (planned) to B; B dies; C takes over (unplanned) and
    finishes; D is dropped; a second job fails. Returns (store, the actors).
    ``walls``: seconds each of "a", "b", "c", "d" has its wall clock off by (each also has
    its own monotonic origin)."""
    store = store or MemoryStore()
    clock = clock or FakeClock()
    own = {name: clock for name in "abcd"}
    if walls is not None:
        own = {name: OffsetClock(clock, 1000.0 * i, walls.get(name, 0.0)) for i, name in enumerate("abcd")}
    a = Primary(store, "ingest", runtime=Runtime(max_runtime=1000, name="short"), clock=own["a"], ttl=10,
                label="colab A", checkpoint_items=5)
    b = Backup(store, "kaggle B", clock=own["b"], ttl=10, runtime="kaggle")
    for _ in a.track(range(100), display=False):
        clock.advance(5)
        b.step()
    b_primary = b.step()
    it = b_primary.track(range(100), display=False)
    for _ in range(15):
        next(it)
        clock.advance(2)
    b_primary.lease.stop_renewing()  # B dies here: no release, no more events (its loop `it`
    b_primary.session.stop_beating()  # is kept referenced below, so it is never closed: a
    # killed process writes nothing, and its background work ends with it)
    c = Backup(store, "local C", clock=own["c"], ttl=10, runtime="local")
    while (c_primary := c.step()) is None:
        clock.advance(c.poll)
    for _ in c_primary.track(range(100), display=False):
        clock.advance(1)
    d = Session(store, "observer", clock=own["d"], runtime="local", label="laptop D")
    d.stop_beating()  # D's runtime dies at once: it never beats again
    watcher = DropWatcher(store, clock=own["c"], events=c.session.events, exclude=(c.session.id,))
    watcher.check(30)
    clock.advance(40)
    watcher.check(30)
    failing = Job(store, "broken", clock=own["c"], events=c.session.events)
    try:
        with failing:
            for item in failing.track(range(10), display=False):
                clock.advance(1)
                if item == 3:
                    raise ValueError("bad input file")
    except ValueError:
        pass
    c_primary.close()
    return store, {"a": a, "b": b, "b_primary": b_primary, "b_loop": it, "c": c, "d": d, "clock": clock}
