"""The checkpoint writer thread and the lease's bounded requests, with real threads, on
the real Drive client stack against the emulator (and the memory store for fencing).

No real-time limits: each test waits for a state (an Event, a hung request) and checks
what happened while that state held."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from sessionkit import Job, Lease, LeaseLost
from sessionkit.clock import SystemClock
from sessionkit.errors import StoreTimeout
from sessionkit.jobs import list_jobs
from sessionkit.store.memory import MemoryStore
from support.waiting import WAIT_S, wait_until

pytest.importorskip("googleapiclient")


def drive(**kw):
    from sessionkit.store.gdrive import GDriveStore

    kw.setdefault("backoff", 0.01)
    if "folder_id" not in kw:
        kw["folder"] = f"gdrive-tests/{uuid.uuid4().hex[:8]}"
    return GDriveStore(**kw)


class Token:
    def __init__(self, token: int) -> None:
        self.token = token


def test_a_hung_checkpoint_request_does_not_hold_up_the_loop(emulator):
    """The writer's request hangs (up to 30 s); the loop goes on finishing items while it
    hangs, and the final checkpoint, written after the hang ends, holds every item."""
    store = drive()
    job = Job(store, "hung", checkpoint_items=10, checkpoint_every=3600)
    it = job.track(range(1000), display=False)
    for _ in range(5):
        next(it)
    emulator.inject("hang")  # the next request is the writer's: the loop makes none
    while not emulator.hanging.wait(0.01):
        next(it)  # the 10th item hands a snapshot to the writer, whose request hangs
    for _ in range(300):
        next(it)  # 300 items finish while the writer's request hangs
    assert emulator.hanging.is_set(), "the loop waited for the hung request to end"
    emulator.release_hang()
    for _ in it:
        pass
    assert job.status == "completed"
    again = Job(drive(folder_id=store.folder_id), "hung")
    assert again.done == 1000 and again.status == "completed"


def test_the_writer_learns_of_a_newer_token_and_the_loop_stops_at_its_next_tick():
    store = MemoryStore()
    stale = Job(store, "fenced", lease=Token(1), checkpoint_items=1, checkpoint_every=3600,
                clock=SystemClock())
    it = stale.track(range(100_000), display=False)
    for _ in range(3):
        next(it)
    newer = Job(store, "fenced", lease=Token(2), checkpoint_every=3600, clock=SystemClock())
    newer.set_status("paused")  # the new holder's write: token 2 is in the manifest
    with pytest.raises(LeaseLost):
        while stale._writer.failure is None:
            next(it)  # every item is a tick (checkpoint_items=1): each hands the writer a snapshot
            time.sleep(0.001)  # an item's work
        next(it)  # the tick after the writer learnt of token 2 raises
    assert stale.done < 100_000
    [manifest] = [j for j in list_jobs(store) if j.id == "fenced"]
    assert manifest.token == 2 and manifest.status == "paused"
    before = store.get("jobs/fenced/manifest").version
    with pytest.raises(LeaseLost):
        stale.checkpoint()  # nothing the stale holder does afterwards lands
    assert store.get("jobs/fenced/manifest").version == before


def test_a_lease_waits_for_the_store_at_most_its_request_timeout(emulator):
    """A renewal whose request hangs gives up after request_timeout (< renew_deadline / 2)
    while ``held`` answers at once from memory, and the next renewal succeeds."""
    store = drive()
    lease = Lease(store, "p", holder="a", ttl=12.0)
    assert lease.request_timeout < lease.renew_deadline / 2
    lease.acquire(timeout=10)
    emulator.inject("hang")
    answered = threading.Event()
    outcome = {}

    def renew():
        outcome["renewed"] = lease.renew()
        answered.set()

    thread = threading.Thread(target=renew)
    thread.start()
    emulator.hanging.wait(30)
    assert emulator.hanging.is_set()
    assert lease.held is True  # read while the renewal's request hangs
    answered.wait(30)
    assert emulator.hanging.is_set(), "renew waited for the hung request to end"
    assert outcome["renewed"] is False
    emulator.release_hang()
    thread.join()
    assert lease.renew() is True and lease.token == 1


def test_a_bounded_call_raises_store_timeout_and_the_next_call_uses_a_new_worker():
    from sessionkit.store.bounded import BoundedCaller

    gate = threading.Event()
    caller = BoundedCaller(0.05, "test")
    with pytest.raises(StoreTimeout, match="no answer within"):
        caller.call("waiting", gate.wait, 30)
    assert caller.call("adding", lambda a, b: a + b, 1, 2) == 3
    gate.set()
    with pytest.raises(ZeroDivisionError):
        caller.call("dividing", lambda: 1 / 0)
    caller.close()


def test_a_released_lease_leaves_no_request_thread_behind():
    """Each lease's requests run on a worker thread (Drive keeps a connection per thread):
    released leases must not pile them up (a test run hit 'Too many open files')."""
    store = MemoryStore()
    for i in range(20):
        lease = Lease(store, f"leak{i}", holder="a", ttl=12.0, clock=SystemClock())
        lease.acquire(timeout=5)
        lease.release()
    workers = [t for t in threading.enumerate() if t.name.startswith("sessionkit-lease 'leak")]
    for thread in workers:
        thread.join(timeout=5)  # well below the 30 s after which an idle worker ends by itself
    assert not [t for t in workers if t.is_alive()]


def generation(store, job_id):
    from sessionkit.jobs.manifest import load

    loaded = load(store, job_id)
    return -1 if loaded is None else loaded.manifest.generation


def test_a_failed_background_write_that_a_retry_lands_does_not_stop_the_loop(tmp_path):
    """The writer's first background write is refused; the thread writes it again (every
    control_poll seconds) and it lands while the loop's body is busy. The loop, at its next
    tick, goes on: the failure was cleared when the retry landed."""
    from support.faulty import Faulty
    from sessionkit.store.local import LocalStore

    refused = []

    def fails(op, key, n):
        if key == "jobs/retry/manifest" and not refused and generation(inner, "retry") == 1:
            refused.append(key)  # the first write after the run's claim
            return True
        return False

    inner = LocalStore(tmp_path / "s")
    store = Faulty(inner, fails)
    job = Job(store, "retry", checkpoint_items=5, checkpoint_every=3600, control_poll=0.05,
              clock=SystemClock())
    for x in job.track(range(50), display=False):
        if x == 6:  # the snapshot of items 0-4 went to the writer at the tick before this item
            wait_until(lambda: refused and generation(inner, "retry") >= 2, "the retried write landing")
    assert refused and job.status == "completed" and Job(inner, "retry").done == 50


class SlowControl:
    """A local folder whose reads of one job's control record hang once armed (a remote
    store's slow request, which a local folder never makes) until released."""

    def __init__(self, inner) -> None:
        from support.faulty import Wrapped

        class Store(Wrapped):
            def get(this, key):
                if key.endswith("/control") and armed.is_set() and not hanging.is_set():
                    hanging.set()
                    release.wait(WAIT_S)
                    returned.set()
                return this.inner.get(key)

        armed, hanging, release, returned = (threading.Event() for _ in range(4))
        self.armed, self.hanging, self.release, self.returned = armed, hanging, release, returned
        self.store = Store(inner)


def test_a_slow_control_read_holds_neither_the_loop_nor_its_checkpoints(tmp_path):
    from sessionkit.store.local import LocalStore

    inner = LocalStore(tmp_path / "s")
    slow = SlowControl(inner)
    job = Job(slow.store, "ctl", checkpoint_items=5, checkpoint_every=3600, control_poll=0.05,
              clock=SystemClock())
    it = job.track(range(100_000), display=False)
    next(it)
    slow.armed.set()
    while not slow.hanging.is_set():
        next(it)
        time.sleep(0.001)  # an item's work; a control read falls due every 0.05 s
    try:
        at = generation(inner, "ctl")
        for _ in range(100):  # 20 checkpoints' worth of items while the control read hangs
            next(it)
        wait_until(lambda: generation(inner, "ctl") >= at + 10, "checkpoints landing during a slow control read")
        assert not slow.returned.is_set(), "the loop or its writer waited for the control read"
    finally:
        slow.release.set()
    it.close()
    assert Job(inner, "ctl").done >= 101
