"""Takeover times between real processes on a local folder store.

Unplanned: a primary holding the lease (ttl 2 s) is SIGKILLed mid-job; we time
until the backup holds the lease. Bar: ttl + 2 retry periods.
Planned: a primary on a scaled clock reaches its handover phase; we time the gap
between its last item and the backup's first. Bar: 2 poll intervals.
After SIGTERM: a primary (ttl 20 s) is sent SIGTERM mid-job; it checkpoints and
releases its lease; we time until the backup holds it. Bar: 2 poll intervals
(before orderly exits it was a whole ttl).
The processes are the test suite's workers (tests/support/workers.py).
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import Bar, Section

WORKERS = str(Path(__file__).resolve().parent.parent / "tests" / "support" / "workers.py")
RUNS = 20


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _line(proc: subprocess.Popen, word: str) -> list[str]:
    line = proc.stdout.readline().split()
    if not line or line[0] != word:
        raise RuntimeError(f"expected {word!r} from a worker, got {line}: {proc.stderr.read()}")
    return line


def takeover(tmp: str, run: int, ttl: float, sig: int = signal.SIGKILL) -> float:
    """Seconds from ``sig`` to the primary mid-job until the backup holds the lease."""
    url, log = f"{tmp}/{sig}-{run}", f"{tmp}/{sig}-{run}.log"
    primary = _start("handover_primary", url, log, 1000, 0.01, ttl, 1, 0)
    _line(primary, "holding")
    backup = _start("handover_backup", url, log, 1000, 0.0, ttl, 1)
    _line(backup, "watching")
    time.sleep(0.3 + (run % 5) * 0.1)
    signalled = time.time()
    primary.send_signal(sig)
    primary.wait()
    took = float(_line(backup, "holding")[2])
    backup.communicate(timeout=120)
    return took - signalled


def planned(tmp: str, run: int, ttl: float, scale: float) -> float:
    url, log = f"{tmp}/p{run}", f"{tmp}/p{run}.log"
    backup = _start("handover_backup", url, log, 150, 0.01, ttl, scale)
    _line(backup, "watching")
    primary = _start("handover_primary", url, log, 150, 0.01, ttl, scale, 1200)
    _line(primary, "holding")
    primary.communicate(timeout=120)
    backup.communicate(timeout=120)
    rows = [line.split() for line in Path(log).read_text().splitlines()]
    last_primary = max(float(b) for i, t, a, b in rows if t == "1")
    first_backup = min(float(a) for i, t, a, b in rows if t == "2")
    return first_backup - last_primary


def run() -> Section:
    ttl, scale = 2.0, 240.0
    retry = ttl / 7.5
    poll_planned = 60.0 / 7.5 / scale  # ttl 60 clock-seconds on the scaled clock, in real seconds
    section = Section("Handover", f"{RUNS} runs each between real processes on a local folder store. "
                      f"Unplanned: ttl {ttl:g} s, retry period {retry:.3f} s, primary SIGKILLed "
                      f"mid-job, time until the backup holds the lease. Planned: a 20-minute runtime "
                      f"on a clock {scale:g}x fast, gap between the primary's last item and the "
                      f"backup's first (poll interval {poll_planned * 1e3:.0f} ms real).")
    sigterm_ttl = 20.0
    with tempfile.TemporaryDirectory() as tmp:
        u = [takeover(tmp, i, ttl) for i in range(RUNS)]
        p = [planned(tmp, i, 60.0, scale) for i in range(RUNS)]
        t = [takeover(tmp, i, sigterm_ttl, signal.SIGTERM) for i in range(RUNS)]
    poll_sigterm = sigterm_ttl / 7.5
    table = section.table("handover", "median", "worst", "bar")
    table.append(["unplanned takeover", f"{statistics.median(u):.2f} s", f"{max(u):.2f} s",
                  f"ttl + 2 retry = {ttl + 2 * retry:.2f} s"])
    table.append(["planned handover gap", f"{statistics.median(p) * 1e3:.0f} ms", f"{max(p) * 1e3:.0f} ms",
                  f"2 polls = {2 * poll_planned * 1e3:.0f} ms"])
    table.append(["takeover after SIGTERM (ttl 20 s)", f"{statistics.median(t):.2f} s", f"{max(t):.2f} s",
                  f"2 polls = {2 * poll_sigterm:.2f} s"])
    section.bars.append(Bar("unplanned takeover, worst of 20", max(u), "s", ttl + 2 * retry))
    section.bars.append(Bar("takeover after SIGTERM, worst of 20", max(t), "s", 2 * poll_sigterm))
    section.bars.append(Bar("planned handover gap, worst of 20", max(p) * 1e3, "ms", 2 * poll_planned * 1e3))
    return section
