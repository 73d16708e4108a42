"""Recorded scenarios for history and plots: real sessions, leases and jobs on a fake clock."""

from __future__ import annotations

from sessionkit import FakeClock, Job, Runtime, Session
from sessionkit.handover import Backup, Primary
from sessionkit.sessions import DropWatcher
from sessionkit.store.memory import MemoryStore


def story(store=None, clock=None):
    """A runs the job and hands over (planned) to B; B dies; C takes over (unplanned) and
    finishes; D is dropped; a second job fails. Returns (store, the actors)."""
    store = store or MemoryStore()
    clock = clock or FakeClock()
    a = Primary(store, "ingest", runtime=Runtime(max_runtime=1000, name="short"), clock=clock, ttl=10,
                label="colab A", checkpoint_items=5)
    b = Backup(store, "kaggle B", clock=clock, ttl=10, runtime="kaggle")
    for _ in a.track(range(100), display=False):
        clock.advance(5)
        b.step()
    b_primary = b.step()
    it = b_primary.track(range(100), display=False)
    for _ in range(15):
        next(it)
        clock.advance(2)
    b_primary.lease.stop_renewing()  # B dies here: no release, no more events (its loop `it`
    # is kept referenced below, so it is never closed: a killed process writes nothing)
    c = Backup(store, "local C", clock=clock, ttl=10, runtime="local")
    while (c_primary := c.step()) is None:
        clock.advance(c.poll)
    for _ in c_primary.track(range(100), display=False):
        clock.advance(1)
    d = Session(store, "observer", clock=clock, runtime="local", label="laptop D")
    watcher = DropWatcher(store, clock=clock, events=c.session.events, exclude=(c.session.id,))
    watcher.check(30)
    clock.advance(40)
    watcher.check(30)
    failing = Job(store, "broken", clock=clock, events=c.session.events)
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
