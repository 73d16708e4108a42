"""Saves that do not stop training: 256 MB of float32 arrays saved every 10 steps to Drive.

Drive cannot be reached from CI, so the store is the real googleapiclient stack talking to
tests/drive_emulator.py over HTTPS on 127.0.0.1, with 150 ms added to every answer (and two
round trips more on a new connection: its TCP and TLS handshakes) and the link limited to 50
MB/s (``DriveEmulator.bandwidth``, uploads and downloads). The loop runs in a child process
(the emulator holds what it stores in its own memory) and reports: the stall of each save on
the loop (``job.save_blob`` + ``job.checkpoint(done=step)``), the time of the in-memory
snapshot alone (copying the arrays, measured in the same run), the upload throughput, the
store size of three generations of which 90% of the bytes are unchanged against one, and the
peak resident memory growth while saving. Beside them, in the same run: the old synchronous
path (the object pickled to a file and uploaded whole, on the loop's thread) and, when torch
is importable, ``torch.save`` of the same state to local disk.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from .report import Bar, Section

MB = 1024 * 1024
ARRAYS, ARRAY_MB = 64, 4  # 256 MB
STEP_SECONDS, SAVE_EVERY, SAVES = 0.6, 10, 3
CHANGED = 6  # arrays of 64 changed between saves: 90% of the bytes unchanged
LATENCY, BANDWIDTH = 0.15, 50 * MB


def _rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def worker(url: str) -> None:
    import numpy as np

    from sessionkit import Job
    from sessionkit.jobs import blobs, chunks
    from sessionkit.clock import SYSTEM_CLOCK
    from sessionkit.store import open_store

    store = open_store(url)
    store.put("warm", b"1")
    baseline = _rss_kb()
    rng = np.random.default_rng(0)
    state = {f"layer{i}": rng.standard_normal(ARRAY_MB * MB // 4, dtype=np.float32) for i in range(ARRAYS)}
    size = sum(a.nbytes for a in state.values())
    with_state = _rss_kb()
    copies = []
    for _ in range(3):
        t0 = time.perf_counter()
        copied = {k: np.array(v, copy=True) for k, v in state.items()}
        copies.append(time.perf_counter() - t0)
        del copied
    snapshot = statistics.median(copies)
    after_copies = _rss_kb()  # what malloc kept of the copies' freed memory counts from here on
    job = Job(store, f"train-{uuid.uuid4().hex[:6]}", total=SAVES * SAVE_EVERY, keep_blobs=3)
    job.set_status("running")
    peak = [with_state]
    peak_at = [0.0]
    started = time.perf_counter()
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.01):
            now = _rss_kb()
            if now > peak[0]:
                peak[0], peak_at[0] = now, time.perf_counter() - started
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stalls: list[float] = []
    captured: list[float] = []  # of each stall, the part in save_blob (the rest: checkpoint)
    uploads: list[float] = [0.0] * SAVES  # each save's, by its number (they end in any order)
    for step in range(1, SAVES * SAVE_EVERY + 1):
        time.sleep(STEP_SECONDS)  # the step's work (a GPU step)
        if step % SAVE_EVERY == 0:
            if step > SAVE_EVERY:
                for i in rng.choice(ARRAYS, CHANGED, replace=False):
                    state[f"layer{i}"] += 1.0
            t0 = time.perf_counter()
            handle = job.save_blob("model", state)
            captured.append(time.perf_counter() - t0)
            job.checkpoint(done=step)
            stalls.append(time.perf_counter() - t0)
            n = len(stalls) - 1

            def until_whole(h=handle, t=t0, n=n) -> None:
                h.wait()
                uploads[n] = time.perf_counter() - t
            threading.Thread(target=until_whole, daemon=True).start()
    job.wait_saved()
    sampling.set()
    sampler.join()
    time.sleep(0.1)
    # the store's size: every chunk the three kept generations name, once
    from sessionkit.jobs.manifest import load

    m = load(store, job.id).manifest
    sizes: dict[str, int] = {}
    first = 0
    for n, entry in enumerate(reversed(m.blobs["model"])):
        index = chunks.read_index(store, job.id, entry)
        for h, s in index["chunks"]:
            sizes[h] = s
            if n == 0:
                first += s
    stored = sum(sizes.values())
    # the old path: pickled to a temporary file and uploaded whole, on the loop's thread
    t0 = time.perf_counter()
    blobs.save(store, job.id + "-old", state, None, SYSTEM_CLOCK)
    old = time.perf_counter() - t0
    torch_save = None
    try:
        import torch
    except ImportError:
        pass
    else:
        tensors = {k: torch.from_numpy(v) for k, v in state.items()}
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            torch.save(tensors, os.path.join(tmp, "state.pt"))
            torch_save = time.perf_counter() - t0
    print(json.dumps({"size": size, "snapshot": snapshot, "stalls": stalls, "captured": captured, "uploads": uploads,
                      "first_upload": uploads[0] if uploads else None, "stored": stored, "first": first,
                      "peak_growth_kb": peak[0] - baseline, "state_kb": with_state - baseline,
                      "after_copies_kb": after_copies - baseline, "peak_at": peak_at[0],
                      "save_at": [SAVE_EVERY * STEP_SECONDS * (n + 1) for n in range(SAVES)], "old": old,
                      "torch_save": torch_save}))


def run() -> Section:
    from .bench_remote import _emulator, _store

    section = Section("Background saves: 256 MB saved every 10 steps on Drive (150 ms, 50 MB/s)",
                      __doc__.split("\n\n", 1)[1].strip())
    with tempfile.TemporaryDirectory() as tmp:
        emulator = _emulator(Path(tmp))
        store = _store()
        store.put("warm", b"1")
        emulator.latency, emulator.bandwidth = LATENCY, BANDWIDTH
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_training", "--worker", store.url],
                              capture_output=True, text=True, env=env, timeout=1800)
        emulator.latency, emulator.bandwidth = 0.0, None
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    size_mb = r["size"] / MB
    worst = max(r["stalls"])
    throughput = r["size"] / r["first_upload"]
    rows = section.table("measured", "time")
    rows.append([f"in-memory snapshot of {size_mb:.0f} MB (copy of every array)", f"{r['snapshot']:.3f} s"])
    for n, (stall, captured, upload) in enumerate(zip(r["stalls"], r["captured"], r["uploads"]), 1):
        rows.append([f"save {n}: the loop held (save_blob + checkpoint(done=step)); upload until whole",
                     f"{stall:.3f} s ({captured:.3f} s + {stall - captured:.3f} s); {upload:.1f} s"])
    rows.append(["old synchronous path (pickled, uploaded whole on the loop's thread)", f"{r['old']:.1f} s"])
    if r["torch_save"] is not None:
        rows.append(["torch.save of the same state to local disk (synchronous)", f"{r['torch_save']:.2f} s"])
    else:
        rows.append(["torch.save to local disk", "torch is not installed in this venv"])
    rows.append([f"upload throughput of the first save (link {BANDWIDTH / MB:.0f} MB/s)",
                 f"{throughput / MB:.1f} MB/s"])
    rows.append(["store size of three generations (90% unchanged) / one", f"{r['stored'] / r['first']:.2f}x"])
    rows.append(["peak resident memory growth while saving / state size",
                 f"{r['peak_growth_kb'] * 1024 / r['size']:.2f}x"])
    rows.append(["of it: the state; what the baseline copies left resident; the peak's time (saves at "
                 + ", ".join(f"{t:.0f}" for t in r["save_at"]) + " s)",
                 f"{r['state_kb'] * 1024 / r['size']:.2f}x; {(r['after_copies_kb'] - r['state_kb']) * 1024 / r['size']:.2f}x;"
                 f" {r['peak_at']:.1f} s"])
    section.bars.append(Bar("worst save stall / in-memory snapshot", worst / r["snapshot"], "x", 2.0))
    section.bars.append(Bar("link / upload throughput (throughput >= 0.8 of the link)", BANDWIDTH / throughput,
                            "x", 1.25))
    section.bars.append(Bar("store size, three generations / one", r["stored"] / r["first"], "x", 1.3))
    section.bars.append(Bar("peak memory growth while saving / state size", r["peak_growth_kb"] * 1024 / r["size"],
                            "x", 2.5))
    return section


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
    else:
        print(run().markdown())
