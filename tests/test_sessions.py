"""Sessions, runtimes and dropped-session detection, on fake clocks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import sessionkit
from sessionkit import Session
from sessionkit.clock import FakeClock, ScaledClock
from sessionkit.runtimes import Runtime
from sessionkit import runtimes, sessions
from sessionkit.store.memory import MemoryStore

HOUR = 3600


def make(store, clock, **kw):
    kw.setdefault("runtime", "colab-free")
    kw.setdefault("start", False)
    return Session(store, "primary", clock=clock, **kw)


def test_presets():
    assert runtimes.PRESETS["colab-free"].max_runtime == 12 * HOUR
    assert runtimes.PRESETS["colab-free"].idle_timeout == 90 * 60
    assert "observed" in runtimes.PRESETS["colab-free"].note
    assert runtimes.PRESETS["colab-pro-plus"].max_runtime == 24 * HOUR
    assert runtimes.PRESETS["kaggle"].max_runtime == 12 * HOUR
    assert runtimes.PRESETS["local"].max_runtime is None
    with pytest.raises(ValueError, match="presets"):
        runtimes.get_runtime("colab-ultra")
    with pytest.raises(ValueError, match="max_runtime"):
        Runtime(max_runtime=-1)


def test_detect_plain_python_uses_the_process_start(monkeypatch):
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    env = runtimes.detect()
    assert env.kind == "python" and env.preset == "local" and env.started_from == "process"
    assert timedelta(0) <= sessionkit.clock.SystemClock().now() - env.started < timedelta(hours=1)


def test_detect_kaggle_before_the_colab_hint(monkeypatch):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")  # Kaggle sets it too
    env = runtimes.detect()
    assert env.kind == "kaggle" and env.started_from == "vm-uptime"


def test_phases_follow_the_countdown():
    clock = FakeClock()
    s = make(MemoryStore(), clock)
    seen = []
    for hours in (0, 0.1, 1, 10.9, 11.0, 11.5, 11.75, 11.9, 12.0):
        clock.advance(hours * HOUR - s.elapsed)
        seen.append((hours, s.phase))
    assert seen == [(0, "fresh"), (0.1, "active"), (1, "active"), (10.9, "active"), (11.0, "warning"),
                    (11.5, "warning"), (11.75, "handover"), (11.9, "handover"), (12.0, "expired")]
    assert s.remaining == 0


def test_thresholds_are_configurable_and_validated():
    clock = FakeClock()
    s = make(MemoryStore(), clock, warning_at=2 * HOUR, handover_at=HOUR)
    clock.advance(10.5 * HOUR)
    assert s.phase == "warning"
    with pytest.raises(ValueError, match="warning_at"):
        make(MemoryStore(), clock, warning_at=60, handover_at=600)
    with pytest.raises(ValueError, match="role"):
        Session(MemoryStore(), "leader", clock=clock, start=False)


def test_a_session_started_earlier_has_less_time():
    clock = FakeClock()
    s = make(MemoryStore(), clock, started=clock.now() - timedelta(hours=11.5))
    assert s.remaining == pytest.approx(0.5 * HOUR) and s.phase == "warning"


def test_no_limit_runtime_stays_active():
    clock = FakeClock()
    s = make(MemoryStore(), clock, runtime="local")
    clock.advance(1000 * HOUR)
    assert s.remaining is None and s.phase == "active"


def test_idle_estimate():
    clock = FakeClock()
    s = make(MemoryStore(), clock)
    clock.advance(3600)
    assert s.idle_remaining == pytest.approx(1800)
    s.touch()
    assert s.idle_remaining == pytest.approx(5400)


def test_record_heartbeats_and_end():
    store, clock = MemoryStore(), FakeClock()
    s = make(store, clock, label="colab A")
    s.start()
    rec = sessions.read_session(store, s.id)
    assert rec.role == "primary" and rec.label == "colab A" and rec.status == "active"
    assert len(s.id) == 32  # uuid4 hex: unguessable
    clock.advance(11.2 * HOUR)
    assert s.beat() == "warning"
    s.end("done")
    rec = sessions.read_session(store, s.id)
    assert rec.status == "ended" and rec.end_reason == "done"
    events = [json.loads(line) for k in store.list(f"events/{s.id}/") for line in store.get(k).data.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds == ["session.started", "session.phase", "session.phase", "session.ended"]
    # the background heartbeats saw it leave "fresh" and enter "warning", each at its time
    assert [(e["data"]["from"], e["data"]["to"]) for e in events if e["kind"] == "session.phase"] == [
        ("fresh", "active"), ("active", "warning")]
    assert events[1]["data"]["remaining_s"] == pytest.approx(12 * HOUR - 300)  # fresh for 5 min
    assert HOUR - 30 <= events[2]["data"]["remaining_s"] <= HOUR  # the first beat within the last hour
    assert all(e["session"] == s.id and e["role"] == "primary" for e in events)


def test_heartbeat_thread_runs_on_a_scaled_clock():
    store = MemoryStore()
    clock = ScaledClock(600)
    s = Session(store, "backup", runtime="kaggle", clock=clock, heartbeat=30)  # every 0.05 s real
    import time

    deadline = time.monotonic() + 5
    while sessions.read_session(store, s.id).heartbeats < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    s.end()
    assert sessions.read_session(store, s.id).heartbeats >= 3


def test_check_dropped_uses_the_observers_clock():
    store = MemoryStore()
    primary_clock, observer_clock = FakeClock(), FakeClock()
    observer_clock.set_wall(primary_clock.now() + timedelta(hours=5))  # wildly skewed wall clock
    s = make(store, primary_clock)
    s.start()
    watcher_events = sessionkit.events.EventLog(store, "observer", clock=observer_clock)
    w = sessions.DropWatcher(store, clock=observer_clock, events=watcher_events)
    assert w.check(timeout=90) == []  # first look
    observer_clock.advance(60)
    s.beat()  # alive: its record changed
    assert w.check(timeout=90) == []
    observer_clock.advance(80)
    assert w.check(timeout=90) == []  # 80 s since it saw the change
    observer_clock.advance(10)
    assert w.check(timeout=90) == [s.id]
    rec = sessions.read_session(store, s.id)
    assert rec.status == "dropped"
    assert [x.status for x in sessions.list_sessions(store)] == ["dropped"]  # still listed
    kinds = [json.loads(l)["kind"] for k in store.list("events/observer/") for l in store.get(k).data.splitlines()]
    assert kinds == ["session.dropped"]
    s.end()  # an ended session is never marked dropped again
    observer_clock.advance(1000)
    assert w.check(timeout=90) == []


def test_check_dropped_function_keeps_state_between_calls():
    store = MemoryStore()
    clock = FakeClock()
    s = make(store, clock)
    s.beat()  # one beat, no background heartbeats (not started): then it is silent
    assert sessions.check_dropped(store, 30, clock=clock) == []
    clock.advance(31)
    assert sessions.check_dropped(store, 30, clock=clock) == [s.id]
