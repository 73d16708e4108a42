"""Stall decisions on real seconds (issue 26, item 1): a table for the pure decide_stall,
then the Primary that uses it, on a scaled clock and on the fake clock."""

import io
import time

import pytest

from sessionkit import history
from sessionkit.clock import FakeClock, ScaledClock
from sessionkit.handover import Primary
from sessionkit.stall import MIN_STALL_AFTER, Stall, StallSeen, decide_stall
from sessionkit.store.memory import MemoryStore
from sessionkit.widgets.session import SessionBanner


@pytest.mark.parametrize("seen, expected", [
    (StallSeen(running=False, idle_s=10_000.0), Stall(False, 0.0, 0.0)),
    (StallSeen(running=True, idle_s=299.0), Stall(False, 299.0, MIN_STALL_AFTER)),  # no rate yet: the floor
    (StallSeen(running=True, idle_s=300.0), Stall(True, 300.0, MIN_STALL_AFTER)),
    (StallSeen(running=True, idle_s=299.0, item_s=0.5), Stall(False, 299.0, MIN_STALL_AFTER)),  # 10x 0.5 s < floor
    (StallSeen(running=True, idle_s=400.0, item_s=60.0), Stall(False, 400.0, 600.0)),  # 10 mean items
    (StallSeen(running=True, idle_s=600.0, item_s=60.0), Stall(True, 600.0, 600.0)),
    (StallSeen(running=True, idle_s=30.0, item_s=60.0, stall_after_s=20.0), Stall(True, 30.0, 20.0)),  # given
    (StallSeen(running=True, idle_s=10.0, item_s=0.5, stall_after_s=20.0), Stall(False, 10.0, 20.0)),
])
def test_each_case_of_decide_stall(seen, expected):
    assert decide_stall(seen) == expected


def test_a_steady_job_on_a_720x_clock_is_never_stalled():
    """Issue 26: a 0.5 s item is 6 minutes on a 720x clock; measured on that clock it passed
    the 5-minute floor and the banner said STALLED. On real seconds it is 0.5 s."""
    store = MemoryStore()
    primary = Primary(store, "j", runtime="local", clock=ScaledClock(720), ttl=7200)
    try:
        for item in primary.track(range(3), display=False):
            time.sleep(0.5)  # the item's work: 360 s of the scaled clock
            primary.session.beat()  # the heartbeat checks for a stall
            assert not primary.stalled, f"item {item}: a steady job is not stalled"
    finally:
        primary.close()
    assert "job.stalled" not in set(history.load(store)["kind"])


def test_a_cleared_stall_redraws_the_banner():
    """The banner showed STALLED to the end: the loop redrew only when the phase changed."""
    clock = FakeClock()
    out = io.StringIO()
    primary = Primary(MemoryStore(), "j", runtime="local", clock=clock, ttl=7200, poll=1.0)
    primary.views.append(SessionBanner(primary.session, stream=out, notebook=False))
    try:
        for item in primary.track(range(6), display=False):
            clock.advance(1.0)
            if item == 2:
                clock.advance(MIN_STALL_AFTER)  # this item hangs while the heartbeat beats
                primary.session.beat()
                assert primary.stalled
            if item == 3:
                assert "STALLED" in out.getvalue().splitlines()[-1], "the stall is drawn"
            if item == 4:
                primary.session.beat()  # items finish again
                assert not primary.stalled
            if item == 5:
                assert "STALLED" not in out.getvalue().splitlines()[-1], "the cleared stall is redrawn"
    finally:
        primary.close()
