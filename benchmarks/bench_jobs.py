"""Job.track: per-item overhead, checkpoint cost as the done-set grows, and resume time.

Overheads are measured against a plain loop and against tqdm in the same run
(tqdm writing to a throw-away stream, as a hidden terminal would).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import textwrap
import time

from sessionkit import Job
from sessionkit.store.local import LocalStore

from .report import Bar, Section

N = 1_000_000


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def overhead(section: Section, tmp: str) -> None:
    from tqdm import tqdm

    def plain():
        for _ in range(N):
            pass

    def with_tqdm():
        for _ in tqdm(range(N), file=io.StringIO(), mininterval=0.1):
            pass

    counter = iter(range(10**9))

    def with_track(**kw):
        def go():
            job = Job(LocalStore(f"{tmp}/overhead"), f"j{next(counter)}", **kw)
            for _ in job.track(range(N), display=False):
                pass
        return go

    t_plain = _best(plain)
    t_tqdm = _best(with_tqdm)
    t_track = _best(with_track(checkpoint_every=2.0))
    t_track_busy = _best(with_track(checkpoint_every=2.0, checkpoint_items=10_000))
    per = lambda t: (t - t_plain) / N * 1e9  # noqa: E731
    section.table("loop", "time", "overhead per item").extend([
        ["plain loop", f"{t_plain * 1e3:.0f} ms", "-"],
        ["tqdm", f"{t_tqdm * 1e3:.0f} ms", f"{per(t_tqdm):.0f} ns"],
        ["Job.track, checkpoint every 2 s", f"{t_track * 1e3:.0f} ms", f"{per(t_track):.0f} ns"],
        ["Job.track, also every 10,000 items (100 checkpoints)", f"{t_track_busy * 1e3:.0f} ms",
         f"{per(t_track_busy):.0f} ns"],
    ])
    section.bars.append(Bar("Job.track overhead / tqdm overhead per item", per(t_track) / per(t_tqdm),
                            "x", 1.0))


def checkpoint_bytes(section: Section, tmp: str) -> None:
    rows = []
    amortised = {}
    for mode in ("position", "key"):
        for done in (10_000, 1_000_000):
            store = LocalStore(f"{tmp}/bytes-{mode}-{done}")
            job = Job(store, "b", checkpoint_items=1000, checkpoint_every=1e9)
            kw = {"key": str} if mode == "key" else {}
            for _ in job.track(range(done), display=False, **kw):
                pass
            checkpoints = done // 1000
            per_checkpoint = job._checkpointer.segments.bytes_written / checkpoints
            items = job._checkpointer.segments.items_written / checkpoints
            manifest = len(store.get("jobs/b/manifest").data)
            # positions live in the manifest (format 2): its size is what a checkpoint writes
            amortised[(mode, done)] = items if mode == "key" else manifest
            rows.append([mode, f"{done:,}", f"{per_checkpoint / 1024:.1f} KB", f"{items:,.0f}",
                         f"{manifest} B", str(len(job._checkpointer.segments.segments))])
    section.table("items known by", "done items", "segment bytes per checkpoint",
                  "items written per checkpoint", "manifest", "segments").extend(rows)
    # Tiered merging writes each item about log2(n / 1000) times, so from 10k to 1M done the
    # items written per checkpoint of 1,000 new ones may grow ~3x (log2 1000 / log2 10);
    # a done-set rewritten whole at every checkpoint would grow 100x.
    ratio = amortised[("key", 1_000_000)] / amortised[("key", 10_000)]
    section.bars.append(Bar("items written per checkpoint at 1M / at 10k done (key)", ratio, "x", 3.5))
    # Done positions are ranges in the manifest: a few bytes whatever the count.
    ratio = amortised[("position", 1_000_000)] / amortised[("position", 10_000)]
    section.bars.append(Bar("manifest bytes at 1M / at 10k done (position)", ratio, "x", 1.5))


RESUME = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    from sessionkit import Job
    job = Job(sys.argv[1], "r")
    kw = {"key": str} if sys.argv[2] == "key" else {}
    for item in job.track(range(1_000_001), display=False, **kw):
        first = time.perf_counter() - t0
        break
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    print(json.dumps({"first": first, "item": item, "rss_mb": int(hwm) / 1024}))
""")
# Peak memory from /proc (VmHWM is per process image; ru_maxrss would carry the parent's over exec)
BASELINE = ("import json, sessionkit; hwm = [l for l in open('/proc/self/status') "
            "if l.startswith('VmHWM')][0].split()[1]; print(json.dumps({'rss_mb': int(hwm) / 1024}))")


def resume(section: Section, tmp: str) -> None:
    base = json.loads(subprocess.run([sys.executable, "-c", BASELINE], capture_output=True,
                                     text=True, check=True).stdout)
    rows = []
    for mode in ("position", "key"):
        url = f"{tmp}/resume-{mode}"
        job = Job(url, "r", checkpoint_every=1e9)
        kw = {"key": str} if mode == "key" else {}
        for _ in job.track(range(N), display=False, **kw):
            pass
        out = json.loads(subprocess.run([sys.executable, "-c", RESUME, url, mode], capture_output=True,
                                        text=True, check=True).stdout)
        assert out["item"] == N, out
        rows.append([mode, f"{out['first'] * 1e3:.0f} ms", f"{out['rss_mb']:.0f} MB",
                     f"{out['rss_mb'] - base['rss_mb']:.0f} MB"])
        # Keyed jobs must hash a million strings twice (loading the done-set, then checking
        # each item's key), about 0.7 s on a 2-core machine: their bar is 1.5 s, positions' 1 s.
        limit = 1.0 if mode == "position" else 1.5
        section.bars.append(Bar(f"resume with 1M done ({mode}): first new item", out["first"], "s", limit))
    section.table("items known by", "time to first new item (process start included)",
                  "peak RSS", "over `import sessionkit`").extend(rows)


def run() -> Section:
    section = Section(
        "Job.track",
        f"Per-item overhead over {N:,} no-op items on a local folder store (best of 3), "
        "against a plain loop and tqdm in the same run; bytes written per checkpoint as the "
        "done-set grows; resuming a job with 1,000,000 done items in a new process.",
    )
    with tempfile.TemporaryDirectory() as tmp:
        overhead(section, tmp)
        checkpoint_bytes(section, tmp)
        resume(section, tmp)
    return section
