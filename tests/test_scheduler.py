"""One concurrency path: background work is a task whose step code is the same whether real
threads run it (real and scaled clocks) or a FakeClock's advance does (logic tests).

Thread tests wait for a state (an Event), never for a time."""

from __future__ import annotations

import json
import logging
import threading

from sessionkit import Lease, Session
from sessionkit.clock import FakeClock, ScaledClock, SystemClock
from sessionkit.scheduler import MAX_RUNS_PER_CALL, StepScheduler, ThreadScheduler, scheduler_for
from sessionkit.store.memory import MemoryStore


def test_each_clock_gives_its_driver():
    fake = FakeClock()
    assert isinstance(fake.scheduler(), StepScheduler) and fake.scheduler() is fake.scheduler()
    assert isinstance(SystemClock().scheduler(), ThreadScheduler)

    class OldClock:  # a clock written before schedulers existed: real threads, as before
        def monotonic(self):
            return 0.0

    assert isinstance(scheduler_for(OldClock()), ThreadScheduler)


def test_a_fake_clocks_advance_runs_what_fell_due_earliest_first():
    clock = FakeClock()
    ran = []

    def every(name, period, times):
        def step():
            ran.append((name, clock.monotonic() - 1000.0))
            return period if len([r for r in ran if r[0] == name]) < times else None
        return step

    a = clock.scheduler().start("a", every("a", 10.0, 3), after=10.0)
    b = clock.scheduler().start("b", every("b", 15.0, 9), after=15.0)
    clock.advance(9.9)
    assert ran == []
    clock.advance(0.1)
    assert ran == [("a", 10.0)]
    clock.advance(35)  # time passes through each due time: every run sees the time it was due at
    assert ran == [("a", 10.0), ("b", 15.0), ("a", 20.0), ("a", 30.0), ("b", 30.0), ("b", 45.0)]
    assert not a.alive and b.alive  # a's step said it was done after its third run (ties: a first)
    b.cancel()
    clock.advance(100)
    assert not b.alive and [r[0] for r in ran].count("b") == 3


def test_a_woken_task_runs_before_wake_returns_and_a_cancelled_one_never_again():
    clock = FakeClock()
    ran = []
    task = clock.scheduler().start("t", lambda: ran.append(1) or 60.0, after=60.0)
    task.wake()
    assert ran == [1]
    clock.advance(59)
    assert ran == [1]  # the next run counts from the woken one
    clock.advance(1)
    assert ran == [1, 1]
    task.cancel()
    clock.advance(600)
    task.wake()
    assert ran == [1, 1] and not task.alive


def test_a_step_that_moves_the_clock_does_not_run_steps_inside_itself():
    clock = FakeClock()
    order = []

    def slow():  # a store that makes time pass, say
        order.append("slow begins")
        clock.advance(30)  # 'other' falls due meanwhile: it runs after this step, not inside it
        order.append("slow ends")
        return None

    clock.scheduler().start("other", lambda: order.append("other") or None, after=10.0)
    clock.scheduler().start("slow", slow, after=5.0)
    clock.advance(5)
    assert order == ["slow begins", "slow ends", "other"]


def test_a_failing_step_ends_its_task_and_says_why(caplog):
    clock = FakeClock()

    def broken():
        raise ValueError("a bug in a task")

    with caplog.at_level(logging.ERROR, logger="sessionkit.scheduler"):
        task = clock.scheduler().start("broken", broken, after=1.0)
        clock.advance(1)
    assert not task.alive
    assert "broken failed and stopped" in caplog.text and "a bug in a task" in caplog.text


def test_a_step_that_always_wants_to_run_at_once_is_stopped(caplog):
    clock = FakeClock()
    count = []
    with caplog.at_level(logging.ERROR, logger="sessionkit.scheduler"):
        task = clock.scheduler().start("busy", lambda: count.append(1) or 0.0, after=0.0)
    assert not task.alive and len(count) == MAX_RUNS_PER_CALL
    assert "busy asked to run again at once" in caplog.text


def test_on_real_threads_the_same_task_steps_when_woken_and_ends_when_cancelled():
    stepped = threading.Event()
    steps = []

    def step():
        steps.append(threading.current_thread().name)
        stepped.set()
        return 3600.0  # an hour: only a wake makes it step again within the test

    task = SystemClock().scheduler().start("worker", step, after=3600.0)
    assert task.alive and steps == []
    task.wake()
    assert stepped.wait(30)
    assert steps == ["sessionkit-worker"]  # on its own thread
    task.cancel()
    task.join(30)
    assert not task.alive and steps == ["sessionkit-worker"]


def test_a_lease_on_a_fake_clock_renews_as_time_passes_and_expires_once_renewal_stops():
    """The renewal loop users run on a thread, run by advancing the clock: nobody calls renew."""
    store, clock = MemoryStore(), FakeClock()
    a = Lease(store, "p", holder="a", ttl=15, clock=clock)
    b = Lease(store, "p", holder="b", ttl=15, clock=clock)
    a.acquire()
    a.start_renewing()
    assert a.renewing
    for _ in range(20):  # 100 s: many times the ttl
        clock.advance(5)
        assert b.try_acquire() is None and a.held
    assert json.loads(store.get("leases/p").data)["renewals"] >= 100 // 2 - 1  # every retry period
    a.stop_renewing()  # what a killed holder leaves: the record lies still
    assert not a.renewing
    clock.advance(15)
    assert not a.held and b.try_acquire() == 2


def test_a_scaled_clock_over_a_fake_one_runs_background_work_at_the_fake_clocks_steps():
    """A x720 clock over a FakeClock (a notebook's TIME_SCALE in a logic test): its lease renews
    as the fake time passes. Its scheduler once started real threads that waited real seconds
    while the test moved time past the renew deadline, and the lease was lost (CI, test_history)."""
    base = FakeClock()
    clock = ScaledClock(720, base=base, epoch=base.now())
    ran = []
    clock.scheduler().start("tick", lambda: ran.append(clock.monotonic()) or 720.0, after=720.0)
    for _ in range(3):
        base.advance(1.0)  # 720 seconds of the scaled clock
    assert [t - ran[0] for t in ran] == [0.0, 720.0, 1440.0]
    store = MemoryStore()
    a = Lease(store, "p", holder="a", ttl=15 * 720, clock=clock)
    a.acquire()
    a.start_renewing()
    for _ in range(40):  # 200 real fake seconds: 40 ttls
        base.advance(5.0)
        assert a.held
    a.stop_renewing()
    base.advance(16.0)
    assert not a.held


def test_a_session_on_a_fake_clock_beats_as_time_passes_until_it_ends():
    store, clock = MemoryStore(), FakeClock()
    session = Session(store, "backup", clock=clock, runtime="local", heartbeat=30)
    assert session.beating
    clock.advance(95)
    assert json.loads(store.get(f"sessions/{session.id}").data)["heartbeats"] == 3
    session.stop_beating()
    clock.advance(300)
    assert json.loads(store.get(f"sessions/{session.id}").data)["heartbeats"] == 3
    assert not session.beating and session.status == "active"
