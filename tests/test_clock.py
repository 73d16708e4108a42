"""Clocks: the real one, the fake one and the scaled one."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from sessionkit.clock import Clock, FakeClock, ScaledClock, SystemClock


def test_system_clock_is_a_clock_with_aware_utc_time():
    c = SystemClock()
    assert isinstance(c, Clock)
    now = c.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    a = c.monotonic()
    assert c.monotonic() >= a


def test_fake_clock_moves_only_when_told():
    start = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    c = FakeClock(start)
    m0 = c.monotonic()
    assert c.now() == start and c.monotonic() == m0
    c.advance(90)
    assert c.now() == start + timedelta(seconds=90) and c.monotonic() == m0 + 90
    c.sleep(10)
    assert c.monotonic() == m0 + 100


def test_fake_clock_wall_jumps_leave_monotonic_alone():
    c = FakeClock()
    m0 = c.monotonic()
    c.set_wall(datetime(2020, 1, 1, tzinfo=timezone.utc))
    assert c.now().year == 2020 and c.monotonic() == m0


def test_fake_clock_refuses_going_back_and_naive_times():
    with pytest.raises(ValueError, match="cannot go back"):
        FakeClock().advance(-1)
    with pytest.raises(ValueError, match="time zone"):
        FakeClock(datetime(2026, 1, 1))


def test_fake_clock_converts_to_utc():
    plus2 = timezone(timedelta(hours=2))
    c = FakeClock(datetime(2026, 1, 1, 14, tzinfo=plus2))
    assert c.now() == datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    assert c.now().utcoffset() == timedelta(0)


def test_scaled_clock_runs_factor_times_faster():
    base = FakeClock()
    c = ScaledClock(720, base=base)
    m0, w0 = c.monotonic(), c.now()
    base.advance(60)  # one real minute ...
    assert c.monotonic() - m0 == pytest.approx(12 * 3600)  # ... is twelve scaled hours
    assert c.now() - w0 == timedelta(hours=12)


def test_scaled_sleep_waits_the_scaled_down_time():
    base = FakeClock()
    c = ScaledClock(720, base=base)
    m0 = base.monotonic()
    c.sleep(3600)
    assert base.monotonic() - m0 == pytest.approx(5.0)


@pytest.mark.parametrize("factor", [0, -1, float("inf"), float("nan")])
def test_scaled_clock_validates_its_factor(factor):
    with pytest.raises(ValueError, match="factor"):
        ScaledClock(factor)


def test_scaled_clock_factor_type():
    with pytest.raises(TypeError, match="factor"):
        ScaledClock("720")  # type: ignore[arg-type]


def test_scaled_clocks_sharing_an_epoch_agree_on_the_time():
    base = FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    epoch = base.now()
    first = ScaledClock(720, base=base, epoch=epoch)
    base.advance(10)  # a second process starts 10 s later
    second = ScaledClock(720, base=base, epoch=epoch)
    assert first.now() == second.now() == epoch + timedelta(seconds=7200)
    alone = ScaledClock(720, base=base)  # no shared epoch: its own time starts now
    assert alone.now() == base.now()


def test_notebook_clock_keeps_one_epoch_per_store():
    from sessionkit.notebook import clock_for
    from sessionkit.store.memory import MemoryStore

    store = MemoryStore()
    a, b = clock_for(720, store), clock_for(720, store)
    assert a.epoch == b.epoch and store.list() == ["clock/epoch-720"]
    assert isinstance(clock_for(1.0, store), SystemClock)
    with pytest.raises(ValueError, match="TIME_SCALE"):
        clock_for(0, store)
