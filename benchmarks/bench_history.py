"""History at scale: a million events into a DataFrame, and a timeline of 1,000 sessions.

Events are written as a long job would leave them: 1,000 segments of 1,000 events
in a local folder store, a mix of checkpoints, renewals, phases and statuses.
The baseline is reading the same bytes from the store without parsing them.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timedelta, timezone

import pandas as pd

from sessionkit import history, plots
from sessionkit.store.local import LocalStore

from .report import Bar, Section

N_EVENTS = 1_000_000
N_SESSIONS = 1_000


def _write_events(store: LocalStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    per_segment = 1000
    for seg in range(N_EVENTS // per_segment):
        writer = f"w{seg % 50:02d}"
        lines = []
        for j in range(per_segment):
            i = seg * per_segment + j
            kind = ("job.checkpoint", "lease.renewed", "session.phase", "job.status")[i % 4]
            data = ({"job": "j", "done": i, "total": N_EVENTS, "rate": 12.5} if kind == "job.checkpoint" else
                    {"lease": "primary", "holder": writer, "token": 3, "renewals": i} if kind == "lease.renewed" else
                    {"from": "active", "to": "warning", "remaining_s": 3600.0} if kind == "session.phase" else
                    {"job": "j", "from": "running", "to": "paused", "reason": "requested", "error": None})
            lines.append(json.dumps({"v": 1, "ts": (t0 + timedelta(milliseconds=i)).isoformat(), "kind": kind,
                                     "writer": writer, "seq": i + 1, "session": writer, "role": "primary",
                                     "label": f"runtime {writer}", "data": data}, separators=(",", ":")))
        store.put(f"events/{writer}/{seg:08d}.jsonl", ("\n".join(lines) + "\n").encode())


def _sessions_frame() -> pd.DataFrame:
    t0 = pd.Timestamp("2026-11-01", tz="UTC")
    rows = []
    for i in range(N_SESSIONS):
        sid = f"s{i:04d}"
        start = t0 + pd.Timedelta(minutes=30 * i)
        base = {"session": sid, "role": "primary" if i % 3 else "backup", "label": f"runtime {i % 20}",
                "writer": sid, "job": None}
        rows.append({**base, "ts": start, "kind": "session.started", "seq": 1, "data.runtime.name": "colab-free"})
        rows.append({**base, "ts": start + pd.Timedelta(hours=11), "kind": "session.ended", "seq": 2,
                     "data.reason": "ended"})
    return pd.DataFrame(rows).sort_values("ts").reset_index(drop=True)


def run() -> Section:
    section = Section("History", f"{N_EVENTS:,} events in 1,000 segment files of a local folder store "
                      f"into a DataFrame; a timeline of {N_SESSIONS:,} sessions drawn to PNG.")
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(f"{tmp}/store")
        _write_events(store)
        t = time.perf_counter()
        for key in store.list("events/"):
            store.get(key)
        read_only = time.perf_counter() - t
        t = time.perf_counter()
        df = history.load(store)
        load = time.perf_counter() - t
        assert len(df) == N_EVENTS
        real_parser = history._parse_arrow
        history._parse_arrow = lambda chunks: None  # the standard-library path, for comparison
        try:
            t = time.perf_counter()
            history.load(store)
            load_python = time.perf_counter() - t
        finally:
            history._parse_arrow = real_parser
        frame = _sessions_frame()
        t = time.perf_counter()
        plots.timeline(frame).savefig(f"{tmp}/timeline.png", dpi=80)
        timeline = time.perf_counter() - t
    try:
        import pyarrow

        parser = f"Arrow's JSON reader (pyarrow {pyarrow.__version__})"
    except ImportError:
        parser = "the standard library (pyarrow not installed)"
    table = section.table("what", "time", "note")
    table.append(["reading the segments (baseline)", f"{read_only:.2f} s", "bytes only"])
    table.append([f"history.load, {N_EVENTS:,} events", f"{load:.2f} s", f"parsed by {parser}"])
    table.append([f"history.load without pyarrow", f"{load_python:.2f} s", "standard-library json, line by line"])
    table.append([f"plots.timeline, {N_SESSIONS:,} sessions", f"{timeline:.2f} s", "including savefig"])
    section.bars.append(Bar("1M events to a DataFrame", load, "s", 3.0))
    section.bars.append(Bar("timeline of 1,000 sessions", timeline, "s", 2.0))
    return section
