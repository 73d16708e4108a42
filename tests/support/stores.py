"""Checks the store tests run on more than one backend (the Drive emulator, real Drive,
GCS and S3 servers): a lease and its fencing, the requests a heartbeat costs."""

from __future__ import annotations

import pytest

from sessionkit import Job, Lease, LeaseLost, Session
from sessionkit.clock import FakeClock


def lease_and_fencing(store) -> None:
    """Two leases and two leased jobs on one store: the second takes over after the ttl
    and resumes after the first one's checkpoint; the first is fenced."""
    clock = FakeClock()
    a = Lease(store, "primary", holder="a", ttl=10, clock=clock)
    b = Lease(store, "primary", holder="b", ttl=10, clock=clock)
    assert a.acquire() == 1 and b.try_acquire() is None
    job_a = Job(store, "j", lease=a, clock=clock, checkpoint_items=5)
    it = job_a.track(range(20), display=False)
    for _ in range(8):
        next(it)
    clock.advance(10)
    assert b.try_acquire() == 2
    job_b = Job(store, "j", lease=b, clock=clock)
    assert list(job_b.track(range(20), display=False))[0] == 5  # resumes after a's checkpoint
    with pytest.raises(LeaseLost):
        job_a.checkpoint()


def heartbeat_costs(store) -> list[int]:
    """Requests made by each of five steady-state heartbeats of a session on ``store``."""
    session = Session(store, "primary", runtime="local", clock=FakeClock(), start=False)
    session.start()
    session.beat()
    costs = []
    for _ in range(5):
        before = store.stats["requests"]
        session.beat()
        costs.append(store.stats["requests"] - before)
    session.end()
    return costs
