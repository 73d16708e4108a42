"""History DataFrames from recorded scenarios, and bad data in the store."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

from sessionkit import history
from sessionkit.errors import SessionkitWarning
from sessionkit.store.memory import MemoryStore

from support.scenarios import story


@pytest.fixture(scope="module")
def recorded():
    store, actors = story()
    return store, actors, history.load(store)


def test_events_frame_columns_and_dtypes(recorded):
    _, _, df = recorded
    assert list(df.columns[:8]) == history.BASE_COLUMNS
    assert str(df["ts"].dtype).startswith("datetime64") and str(df["ts"].dt.tz) == "UTC"
    assert isinstance(df["kind"].dtype, pd.CategoricalDtype)
    assert df["ts"].is_monotonic_increasing
    assert "data.token" in df.columns and "data.runtime.name" in df.columns  # nested, flattened
    assert {"job.checkpoint", "lease.acquired", "handover.completed", "session.dropped"} <= set(df["kind"])


def test_sessions_table(recorded):
    _, a, df = recorded
    s = history.sessions(df, full_ids=True).set_index("session")
    assert s.loc[a["a"].session.id, "end_reason"] == "handover"
    assert s.loc[a["a"].session.id, "runtime"] == "short"
    assert s.loc[a["b"].session.id, "role"] == "backup" and s.loc[a["b"].session.id, "final_role"] == "primary"
    assert s.loc[a["b"].session.id, "highest_token"] == 2
    assert s.loc[a["c"].session.id, "highest_token"] == 3
    assert s.loc[a["d"].id, "end_reason"] == "dropped"
    assert s.loc[a["b"].session.id, "end_reason"] == "dropped"
    # a dropped session ends at its last sign of life, not when an observer noticed
    takeover = history.handovers(df)["ts"].iloc[1]
    assert s.loc[a["b"].session.id, "end"] < takeover
    assert (s["duration_s"] >= 0).all()


def test_jobs_table(recorded):
    _, a, df = recorded
    j = history.jobs(df, full_ids=True).set_index("job")
    assert j.loc["ingest", "status"] == "completed" and j.loc["ingest", "done"] == 100
    assert j.loc["ingest", "sessions"] == [a["a"].session.id, a["b"].session.id, a["c"].session.id]
    assert j.loc["broken", "status"] == "failed"
    assert j.loc["ingest", "finished"] > j.loc["ingest", "started"]


def test_handovers_table(recorded):
    _, a, df = recorded
    h = history.handovers(df, full_ids=True)
    assert list(h["planned"]) == [True, False]
    assert list(h["from"]) == [a["a"].session.id, a["b"].session.id]
    assert list(h["to"]) == [a["b"].session.id, a["c"].session.id]
    assert h.loc[0, "gap_s"] <= 2 * a["b"].poll + 1e-9  # planned: within two polls
    assert 10 <= h.loc[1, "gap_s"] <= 10 + 2 * a["c"].poll + 1e-9  # unplanned: ttl + 2 polls


def test_tables_show_short_ids_and_integers_as_integers(recorded):
    """Issue 12 (6): tables showed 'total 160.0', 'token 2.0' and 32-character session ids."""
    _, a, df = recorded
    s, j, h = history.sessions(df), history.jobs(df), history.handovers(df)
    assert str(s["highest_token"].dtype) == "Int64" and s["highest_token"].max() == 3
    assert str(j["done"].dtype) == "Int64" and str(j["total"].dtype) == "Int64"
    assert str(h["token"].dtype) == "Int64" and list(h["token"]) == [2, 3]
    assert a["a"].session.id[:8] in set(s["session"]) and s["session"].str.len().max() == 8
    assert list(h["from"]) == [a["a"].session.id[:8], a["b"].session.id[:8]]
    assert all(len(sid) == 8 for ids in j["sessions"] for sid in ids)
    shown = s.to_string()
    assert "2.0" not in s[["highest_token"]].to_string() and a["a"].session.id not in shown


def test_gaps_table(recorded):
    _, _, df = recorded
    g = history.gaps(df)
    assert len(g) == 2
    assert g.loc[0, "duration_s"] <= 2 * recorded[1]["b"].poll + 1e-9  # planned
    assert 10 <= g.loc[1, "duration_s"] <= 10 + 2 * recorded[1]["c"].poll + 1e-9  # unplanned


@pytest.fixture(scope="module")
def skewed():
    """The same story with every machine's wall clock off: B's 3 h behind, C's 2 h ahead,
    D's 40 minutes ahead (as when a VM's clock is not synchronised)."""
    store, actors = story(walls={"b": -3 * 3600.0, "c": 2 * 3600.0, "d": 2400.0})
    return store, actors, history.load(store)


def test_history_judges_durations_and_gaps_on_each_sessions_own_clock(recorded, skewed):
    """Issue 18 (10): with clocks that disagree, history reported hours-long gaps and a
    negative session duration. Durations and gaps come from each session's own clock now:
    the tables match the story told with agreeing clocks, within one poll."""
    _, a, df = recorded
    _, b, sdf = skewed
    poll = a["b"].poll
    s, ss = history.sessions(df), history.sessions(sdf)
    assert (ss["duration_s"] >= 0).all(), ss[["label", "start", "end", "duration_s"]]
    by_label = dict(zip(s["label"], s["duration_s"]))
    for label, duration in zip(ss["label"], ss["duration_s"]):
        assert abs(duration - by_label[label]) <= poll + 1e-6, (label, duration, by_label[label])
    for table in (history.handovers, history.gaps):
        column = "gap_s" if table is history.handovers else "duration_s"
        want, got = list(table(df)[column]), list(table(sdf)[column])
        assert len(got) == len(want)
        for w, g in zip(want, got):
            assert abs(g - w) <= poll + 1e-6, (table.__name__, got, want)


def test_since_until(recorded):
    _, _, df = recorded
    mid = df["ts"].iloc[len(df) // 2]
    assert (history.load(recorded[0], since=mid)["ts"] >= mid).all()
    assert (history.load(recorded[0], until=mid)["ts"] < mid).all()


def test_empty_store_gives_empty_frame_with_the_columns():
    df = history.load(MemoryStore())
    assert list(df.columns) == history.BASE_COLUMNS and len(df) == 0
    assert history.sessions(df).empty and history.jobs(df).empty and history.gaps(df).empty


def test_bad_data_is_skipped_with_a_warning_naming_the_files():
    store, _ = story()
    good = len(history.load(store))
    first = store.list("events/")[0]
    writer = first.split("/")[1]
    store.put("events/foreign.txt", b"hello")  # not a segment
    store.put(f"events/{writer}/99999998.jsonl", b'{"v": 1, "ts": "2026-01-01T00:00:00+00:00", "ki')  # truncated
    future = {"v": 9, "ts": "2026-01-01T00:00:00+00:00", "kind": "job.status", "writer": writer, "seq": 10**9,
              "data": {}}
    store.put(f"events/{writer}/99999999.jsonl", json.dumps(future).encode() + b"\n")
    store.put("events/w2/00000000.jsonl", json.dumps({"v": 1, "ts": "2026-01-01T00:00:00+00:00",
                                                     "kind": "alien.kind", "writer": "w2", "seq": 1,
                                                     "data": {"x": 1}}).encode())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = history.load(store)
    text = " ".join(str(w.message) for w in caught if issubclass(w.category, SessionkitWarning))
    assert "events/foreign.txt" in text and "99999998.jsonl" in text and "newer format" in text
    assert "alien.kind" in text
    assert len(df) == good + 1  # the unknown kind is kept; the rest skipped


def test_python_path_gives_the_same_frame(monkeypatch):
    store, _ = story()
    fast = history.load(store)
    monkeypatch.setattr(history, "_parse_arrow", lambda chunks: None)
    slow = history.load(store)
    assert list(fast["kind"]) == list(slow["kind"]) and list(fast["seq"]) == list(slow["seq"])
    assert set(fast.columns) == set(slow.columns)


def test_compaction_bounds_the_files_and_loses_no_event():
    from sessionkit import events

    store = MemoryStore()
    log = events.EventLog(store, "w", segment_events=10)
    for i in range(300):
        log.emit("job.checkpoint", job="j", done=i)
        if i % 7 == 0:
            log.flush()
    log.flush()
    before = history.load(store)
    assert len(store.list("events/w/")) > 20
    removed = events.compact(store, keep_files=4)
    assert removed > 0 and len(store.list("events/w/")) <= 2
    after = history.load(store)
    assert list(after["seq"]) == list(before["seq"]) == list(range(1, 301))
    log.emit("job.checkpoint", job="j", done=300)  # the writer carries on after compaction
    log.flush()
    assert list(history.load(store)["seq"])[-1] == 301


def test_every_event_kind_the_package_writes_is_known_to_history():
    """history.load warns about kinds it does not know: a kind added to an emit() call and
    not to KNOWN_KINDS (job.stalled once) must fail here, not in a user's notebook."""
    import re
    from pathlib import Path

    import sessionkit
    from sessionkit.events import KNOWN_KINDS

    written = set()
    for path in Path(sessionkit.__file__).parent.rglob("*.py"):
        text = path.read_text()
        written |= set(re.findall(r'emit\(\s*"([a-z_.]+)"', text))
        for pair in re.findall(r'emit\(\s*"([a-z_.]+)" if \w+ else "([a-z_.]+)"', text):
            written |= set(pair)
    assert "job.unstalled" in written and "job.checkpoint" in written
    assert sorted(written - set(KNOWN_KINDS)) == []


class _ScaledFake:
    """A notebook's ScaledClock (TIME_SCALE) whose real time is a FakeClock's, so a test lives
    through a scaled run instantly: ``advance`` moves the real clock by clock seconds / scale."""

    def __init__(self, scale: float) -> None:
        from sessionkit.clock import FakeClock, ScaledClock

        self.real = FakeClock()
        self.scaled = ScaledClock(scale, base=self.real, epoch=self.real.now())

    def __getattr__(self, name):
        return getattr(self.scaled, name)

    def advance(self, seconds: float) -> None:
        self.real.advance(seconds / self.scaled.factor)


@pytest.fixture(scope="module")
def scaled_and_plain():
    """The same story twice: on a plain FakeClock, and on a x720 clock whose epoch the store
    keeps as the notebooks' helpers keep it (``clock/epoch-720``)."""
    plain_store, _ = story()
    store = MemoryStore()
    clock = _ScaledFake(720)
    store.put("clock/epoch-720", json.dumps({"epoch": clock.epoch.isoformat(), "scale": 720.0}).encode())
    story(store, clock=clock)
    return history.load(plain_store), history.load(store), history.load(store, real_time=False)


def test_a_scaled_clocks_history_is_in_real_time_with_a_note(scaled_and_plain):
    """Issue 26 (8): on a x720 clock a 3 s real gap showed as 2,367 s and 2 items/s as
    0.0028, with no note. Every duration is the clock's divided by 720; rates times 720."""
    plain, real, on_clock = scaled_and_plain
    assert history.units_note(plain) == ""
    assert "real time" in history.units_note(real) and "x720" in history.units_note(real)
    assert "divide durations by 720" in history.units_note(on_clock)
    for table, column in ((history.sessions, "duration_s"), (history.handovers, "gap_s"),
                          (history.gaps, "duration_s")):
        values = lambda df: sorted(table(df)[column].astype(float))  # sessions that start together swap
        clock_s = values(on_clock)
        # the same story: equal up to the stamps' microseconds, each worth 720 of the clock's
        assert clock_s == pytest.approx(values(plain), abs=0.05), table
        assert values(real) == pytest.approx([s / 720 for s in clock_s], abs=1e-6), table
    span = lambda df: (df["ts"].iloc[-1] - df["ts"].iloc[0]).total_seconds()
    assert span(real) == pytest.approx(span(plain) / 720, abs=2e-5)  # stamps are to the microsecond
    rates = real.loc[real["kind"] == "job.checkpoint", "data.rate"].dropna()
    clock_rates = on_clock.loc[on_clock["kind"] == "job.checkpoint", "data.rate"].dropna()
    assert rates.to_numpy() == pytest.approx(clock_rates.to_numpy() * 720)


def test_throughput_on_a_scaled_clock_is_items_per_real_second_as_the_widget_shows(scaled_and_plain):
    from sessionkit import plots

    plain, real, _ = scaled_and_plain
    heights = lambda fig: [p.get_height() for p in fig.axes[0].patches]
    expected = [h * 720 for h in heights(plots.throughput(plain))]  # 0.2 items a clock second: 144 a real one
    assert heights(plots.throughput(real)) == pytest.approx(expected, rel=1e-3)
    assert "real time; runtimes on a x720 clock" in plots.throughput(real).axes[0].get_ylabel()
    assert "real time" in plots.timeline(real).axes[0].get_xlabel()
    assert plots.timeline(plain).axes[0].get_xlabel() == "time (UTC)"


def test_readable_tables_have_seconds_precision_rounded_durations_and_people_first_columns(recorded):
    """Issue 26 (8): timestamps carried microseconds and wrapped, durations five decimals,
    the sessions table scrolled sideways with the id first."""
    df = recorded[2]
    table = history.sessions(df)
    assert list(table.columns[:6]) == ["label", "role", "runtime", "start", "end", "duration_s"]
    assert table.columns[-1] == "session"
    shown = history.readable(table)
    assert list(shown.columns[:6]) == ["label", "role", "runtime", "start (UTC)", "end (UTC)", "duration (s)"]
    for stamp in shown["start (UTC)"]:
        assert pd.Timestamp(stamp).microsecond == 0 and len(stamp) == 19, stamp
    for seconds, exact in zip(shown["duration (s)"], table["duration_s"]):
        assert seconds == (round(exact, 1) if exact < 60 else int(round(exact))), (seconds, exact)
    width = max(len(line) for line in shown.to_string().splitlines())
    assert width <= 140, f"{width} characters wide"
    assert history.readable(history.handovers(df)).columns[:5].tolist() == ["at (UTC)", "from", "to", "how", "gap (s)"]
    assert "duration (s)" in history.readable(history.gaps(df)).columns
    assert "finished (UTC)" in history.readable(history.jobs(df)).columns
