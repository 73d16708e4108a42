"""``sessionkit demo`` (what ``make demo`` runs): the whole story in about a minute and a half.

On a new local folder store, runtime A (a Colab free runtime: 12 hours, here on a
clock 720 times fast) runs a job while runtime B (a local Jupyter) watches. When A
reaches its handover phase it hands the job over to B (planned). Then a third
runtime C starts watching and B is killed with SIGKILL: C takes over when B's lease
expires (unplanned) and finishes the job. Each is a real process. The demo prints
the phases and handovers as they happen, writes the history plots as PNG, checks
that every item was done, and ends with a summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional, TextIO

__all__ = ["run"]

JOB = "demo-job"
TRACKED = ("session.started", "session.phase", "handover.requested", "handover.ready", "handover.completed",
           "lease.acquired", "session.dropped", "job.status")


def _worker(role: str, store: str, label: str, runtime: str, items: int, item_seconds: float, scale: float,
            ttl: float, log_path: str) -> None:
    """One runtime of the story (run as ``python -m sessionkit.demo worker ...``)."""
    from . import notebook

    if role == "primary":
        primary = notebook.start_primary(store, JOB, runtime=runtime, time_scale=scale, lease_ttl=ttl,
                                         label=label, show=False, checkpoint_every=60.0)
    else:
        primary = notebook.start_backup(store, runtime=runtime, time_scale=scale, lease_ttl=ttl, label=label,
                                        show=False)
        if primary is None:
            return
    with open(log_path, "a") as log:
        for item in primary.track(range(items), display=False):
            time.sleep(item_seconds)
            log.write(f"{item} {label}\n")
            log.flush()


def _spawn(*args: Any, out: str) -> subprocess.Popen:
    with open(out, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "sessionkit.demo", "worker", *map(str, args)],
                                stdout=fh, stderr=subprocess.STDOUT)


def _describe(event: dict[str, Any], labels: dict[str, str]) -> Optional[str]:
    data = event.get("data") or {}
    who = event.get("label") or labels.get(event.get("session") or "", "?")
    kind = event["kind"]
    if kind == "session.started":
        return f"{who} starts as {event.get('role')} ({(data.get('runtime') or {}).get('name')})"
    if kind == "session.phase":
        return f"{who}: phase {data.get('from')} -> {data.get('to')}"
    if kind == "handover.requested":
        return f"{who} asks for a handover (token {data.get('token')})"
    if kind == "handover.ready":
        return f"{who} answers: ready to take over"
    if kind == "handover.completed":
        how = "planned handover" if data.get("planned") else "takeover after the lease expired"
        return f"{who} is primary now, token {data.get('token')} ({how})"
    if kind == "session.dropped":
        return f"{data.get('label')} is marked dropped: no heartbeat for {data.get('silent_s', 0):.0f} s"
    if kind == "job.status" and data.get("to") in ("completed", "failed"):
        return f"job {data.get('job')} {data.get('to')} on {who}"
    return None


class _Watcher:
    """Reads the store as a person watching would, and prints what changed."""

    def __init__(self, store: Any, out: TextIO, started: float) -> None:
        self.store, self.out, self.started = store, out, started
        self.seen: set[tuple[str, int]] = set()
        self.labels: dict[str, str] = {}

    def say(self, text: str) -> None:
        print(f"  {time.monotonic() - self.started:6.1f}s  {text}", file=self.out, flush=True)

    def events(self) -> list[dict[str, Any]]:
        new = []
        for key in self.store.list("events/"):
            record = self.store.get(key)
            for line in record.data.splitlines() if record else ():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                ident = (event.get("writer"), event.get("seq"))
                if ident not in self.seen:
                    self.seen.add(ident)
                    new.append(event)
        return sorted(new, key=lambda e: e["ts"])

    def poll(self) -> list[dict[str, Any]]:
        events = self.events()
        for event in events:
            if event.get("label") and event.get("session"):
                self.labels[event["session"]] = event["label"]
            if event["kind"] in TRACKED:
                text = _describe(event, self.labels)
                if text:
                    self.say(text)
        return events

    def status_line(self) -> None:
        from .status import status_data
        from .jobs.progress import format_seconds

        data = status_data(self.store)
        parts = []
        for s in data["sessions"]:
            if s["status"] == "active" and s["role"] == "primary":
                left = "no limit" if s["remaining_s"] is None else format_seconds(s["remaining_s"]) + " left"
                parts.append(f"primary {s['label']} ({s['phase']}, {left})")
        for j in data["jobs"]:
            parts.append(f"job {j['done']}/{j['total']} {j['status']}")
        self.say("status: " + "; ".join(parts))


def run(store_dir: Optional[str] = None, *, items: int = 800, item_seconds: float = 0.1, scale: float = 720.0,
        ttl: Optional[float] = None, out: Optional[TextIO] = None) -> bool:
    """Run the story; return True when the job completed with every item done. ``ttl`` is in
    real seconds (as the notebooks' LEASE_TTL), one by default whatever the scale, so a busy
    machine's pauses do not end a lease by themselves."""
    import pandas as pd

    from . import history, plots
    from .jobs.progress import format_seconds
    from .store import open_store

    out = out or sys.stdout
    if items < 1 or item_seconds < 0 or scale <= 0:
        raise ValueError(f"items must be >= 1, item_seconds >= 0 and scale > 0 "
                         f"(got {items}, {item_seconds}, {scale})")
    ttl = ttl if ttl is not None else 1.0
    store_dir = store_dir or tempfile.mkdtemp(prefix="sessionkit-demo-")
    store = open_store(store_dir)
    if store.list():
        raise ValueError(f"{store_dir} already holds a store: give the demo an empty folder")
    items_log = os.path.join(store_dir, "items.log")
    proc_log = os.path.join(store_dir, "processes.log")
    print(f"sessionkit demo: a 12-hour Colab runtime in about {12 * 3600 / scale:.0f} s (clock {scale:g}x)\n"
          f"store: {store_dir}\n", file=out)
    watcher = _Watcher(store, out, time.monotonic())
    common = (items, item_seconds, scale, ttl, items_log)
    a = _spawn("primary", store_dir, "colab A", "colab-free", *common, out=proc_log)
    b = _spawn("backup", store_dir, "local B", "local", *common, out=proc_log)
    procs = {"colab A": a, "local B": b}
    c = None
    killed_at = None
    last_status = 0.0
    ok = False
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            events = watcher.poll()
            for event in events:
                data = event.get("data") or {}
                if event["kind"] == "handover.completed" and data.get("planned") and c is None:
                    c = _spawn("backup", store_dir, "vm C", "local", *common, out=proc_log)
                    procs["vm C"] = c
                    watcher.say("vm C starts watching too")
                    killed_at = time.monotonic() + 3.0
            if killed_at is not None and time.monotonic() >= killed_at and b.poll() is None:
                os.kill(b.pid, signal.SIGKILL)
                watcher.say("local B is killed (SIGKILL): its runtime is gone, lease and all")
                killed_at = None
            if time.monotonic() - last_status >= 5:
                last_status = time.monotonic()
                watcher.status_line()
            if c is not None and c.poll() is not None and b.poll() is not None:
                watcher.poll()
                break
            if a.poll() not in (None, 0) or (c is not None and c.poll() not in (None, 0)):
                watcher.say(f"a runtime failed; see {proc_log}")
                break
            time.sleep(0.25)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()

    df = history.load(store)
    plot_dir = os.path.join(store_dir, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    for name in ("timeline", "progress", "throughput"):
        getattr(plots, name)(df).savefig(os.path.join(plot_dir, f"{name}.png"), dpi=110)
    done_items = [int(line.split()[0]) for line in open(items_log)] if os.path.exists(items_log) else []
    missing = set(range(items)) - set(done_items)
    redone = len(done_items) - len(set(done_items))
    jobs = history.jobs(df)
    status = jobs.set_index("job").loc[JOB, "status"] if JOB in set(jobs["job"]) else "missing"
    ok = status == "completed" and not missing

    sessions = history.sessions(df)
    print("\nsessions:", file=out)
    print("  (times are on the demo's clock, 720x fast: 12 h pass in a minute)", file=out)
    for s in sessions.itertuples():
        token = "-" if pd.isna(s.highest_token) else int(s.highest_token)
        print(f"  {str(s.label):10} {str(s.role):8} -> {str(s.final_role):8} ran {format_seconds(s.duration_s):>8}"
              f"  ended: {str(s.end_reason):9}  highest token: {token}", file=out)
    labels = dict(zip(sessions["session"], sessions["label"]))
    print("handovers:", file=out)
    for _, h in history.handovers(df).iterrows():
        gap = "?" if h["gap_s"] is None else format_seconds(h["gap_s"])
        print(f"  {labels.get(h['from'], '?'):10} -> {labels.get(h['to'], '?'):10} "
              f"{'planned' if h['planned'] else 'unplanned'}, gap {gap}", file=out)
    print("gaps with no primary:", file=out)
    for g in history.gaps(df).itertuples():
        print(f"  {format_seconds(g.duration_s)} ({g.duration_s / scale:.2f} s of real time)", file=out)
    print(f"items: {len(set(done_items))}/{items} done, {len(missing)} missing, {redone} redone after the "
          f"crash (at most one checkpoint interval plus the write in flight)\njob: {status}\n"
          f"plots: {plot_dir}/timeline.png, progress.png, throughput.png", file=out)
    print("\nAll checks hold." if ok else f"\nA CHECK FAILED (see {proc_log}).", file=out)
    return ok


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        role, store, label, runtime = sys.argv[2:6]
        items, item_seconds, scale, ttl, log_path = sys.argv[6:11]
        _worker(role, store, label, runtime, int(items), float(item_seconds), float(scale), float(ttl), log_path)
    else:
        sys.exit(0 if run() else 1)
