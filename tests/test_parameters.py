"""Every duration, count and interval of the public API is checked where it is given (issue 27):
the error names the parameter, its unit and the range; anything that sets a request rate has a
floor in real seconds, so no setting can hammer a store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessionkit import Job, Lease, jobs
from sessionkit.clock import FakeClock, ScaledClock, SystemClock
from sessionkit.handover import Backup, Primary
from sessionkit.handover.cleanup import remove_stale
from sessionkit.sessions import Session, remove_ended
from sessionkit.store.memory import MemoryStore


def lease(**kw):
    return Lease(MemoryStore(), "p", holder="h", clock=kw.pop("clock", SystemClock()), **kw)


def session(**kw):
    return Session(MemoryStore(), "observer", runtime="local", clock=kw.pop("clock", FakeClock()),
                   start=False, **kw)


def job(**kw):
    return Job(MemoryStore(), "j", clock=kw.pop("clock", SystemClock()), **kw)


def primary(**kw):
    return Primary(MemoryStore(), "j", runtime="local", clock=FakeClock(), **kw)


def backup(**kw):
    return Backup(MemoryStore(), "B", runtime="local", clock=kw.pop("clock", FakeClock()), **kw)


X720 = ScaledClock(720)

CASES = [
    # (what, make, error type, words the message must hold)
    ("Lease ttl None", lambda: lease(ttl=None), ValueError, ["ttl", "seconds > 0", "None"]),
    ("Lease ttl text", lambda: lease(ttl="abc"), ValueError, ["ttl", "seconds > 0", "'abc'"]),
    ("Lease ttl nan", lambda: lease(ttl=float("nan")), ValueError, ["ttl", "seconds > 0"]),
    ("Lease ttl bool", lambda: lease(ttl=True), ValueError, ["ttl", "seconds"]),
    ("Lease renew_deadline 0", lambda: lease(renew_deadline=0), ValueError, ["renew_deadline", "seconds > 0"]),
    ("Lease retry_period tiny", lambda: lease(retry_period=1e-9), ValueError,
     ["retry_period", "at least 0.05 real seconds", "hammer"]),
    ("Lease retry_period tiny, scaled clock", lambda: lease(ttl=7200, retry_period=10, clock=X720), ValueError,
     ["retry_period", "0.05 real seconds", "36 s on this scaled clock"]),
    ("Lease retry_period vs deadline", lambda: lease(ttl=10, retry_period=9), ValueError,
     ["renew_deadline", "1.2 x retry_period"]),
    ("Session heartbeat tiny", lambda: session(heartbeat=0.001, clock=SystemClock()), ValueError,
     ["heartbeat", "at least 0.05 real seconds"]),
    ("Session heartbeat text", lambda: session(heartbeat="30"), ValueError, ["heartbeat", "seconds > 0"]),
    ("Session warning_at", lambda: session(warning_at=-1), ValueError, ["warning_at", "seconds > 0"]),
    ("Session handover_at", lambda: session(handover_at=None), ValueError, ["handover_at", "seconds >= 0"]),
    ("Session fresh_for", lambda: session(fresh_for="5m"), ValueError, ["fresh_for", "seconds >= 0"]),
    ("Job checkpoint_every", lambda: job(checkpoint_every=0), ValueError, ["checkpoint_every", "seconds > 0"]),
    ("Job checkpoint_items", lambda: job(checkpoint_items=0), ValueError, ["checkpoint_items", "int >= 1"]),
    ("Job checkpoint_items float", lambda: job(checkpoint_items=2.5), ValueError, ["checkpoint_items", "int"]),
    ("Job keep_blobs", lambda: job(keep_blobs=0), ValueError, ["keep_blobs", "int >= 1"]),
    ("Job control_poll", lambda: job(control_poll=1e-6), ValueError, ["control_poll", "0.05 real seconds"]),
    ("Job total", lambda: job(total=-3), ValueError, ["total", "int >= 0"]),
    ("Primary poll", lambda: primary(poll=0), ValueError, ["poll", "seconds > 0"]),
    ("Primary acquire_timeout", lambda: primary(acquire_timeout=-1), ValueError, ["acquire_timeout", ">= 0"]),
    ("Primary stall_after", lambda: primary(stall_after="soon"), ValueError, ["stall_after", "seconds > 0"]),
    ("Backup poll tiny", lambda: backup(poll=0.001, clock=SystemClock()), ValueError,
     ["poll", "0.05 real seconds"]),
    ("Backup grace", lambda: backup(grace=-2), ValueError, ["grace", "seconds > 0"]),
    ("Backup priority", lambda: backup(priority=True), TypeError, ["priority", "int"]),
    ("jobs.clear older_than int", lambda: jobs.clear(MemoryStore(), older_than=24), TypeError,
     ["older_than", "timedelta", "timedelta(hours=24)"]),
    ("jobs.clear older_than negative", lambda: jobs.clear(MemoryStore(), older_than=timedelta(-1)), ValueError,
     ["older_than", ">= 0"]),
    ("jobs.clear statuses", lambda: jobs.clear(MemoryStore(), statuses=["done"]), ValueError,
     ["statuses", "completed"]),
    ("remove_ended older_than", lambda: remove_ended(MemoryStore(), older_than="30d"), TypeError,
     ["older_than", "timedelta"]),
    ("remove_stale older_than", lambda: remove_stale(MemoryStore(), older_than=30), TypeError,
     ["older_than", "timedelta"]),
]


@pytest.mark.parametrize("make, error, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_value_is_refused_naming_the_parameter_its_unit_and_range(make, error, words):
    with pytest.raises(error) as caught:
        make()
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_a_remote_store_has_a_higher_floor_and_defaults_are_raised_to_it():
    class Remote(MemoryStore):
        remote = True

    with pytest.raises(ValueError, match=r"retry_period must be at least 0.5 real seconds on a remote store"):
        Lease(Remote(), "p", holder="h", retry_period=0.2)
    fast = Lease(Remote(), "p", holder="h", ttl=2)  # ttl/7.5 = 0.27 s: raised to the floor
    assert fast.retry_period == pytest.approx(0.5)
    scaled = Session(MemoryStore(), "observer", runtime="local", clock=X720, start=False)
    assert scaled.heartbeat == pytest.approx(0.05 * 720), "30 clock-seconds at x720 would beat 24 times a second"
    assert Session(MemoryStore(), "observer", runtime="local", start=False).heartbeat == 30
    # a fake clock's time is the test's: no real-time floor applies
    assert Lease(MemoryStore(), "p", holder="h", ttl=1e-3, clock=FakeClock()).retry_period == pytest.approx(1e-3 / 7.5)



def test_a_refused_primary_or_backup_writes_nothing():
    store = MemoryStore()
    for make in (lambda: Primary(store, "j", runtime="local", clock=FakeClock(), poll=0),
                 lambda: Primary(store, "j", runtime="local", clock=FakeClock(), acquire_timeout=-1),
                 lambda: Backup(store, "B", runtime="local", clock=FakeClock(), grace="x"),
                 lambda: Job(store, "j", keep_blobs=0),
                 lambda: Session(store, "backup", runtime="local", clock=FakeClock(), warning_at=0)):
        with pytest.raises(ValueError):
            make()
    assert store.list() == [], "nothing was written for a refused construction"
