"""Job.track on Google Drive with a realistic round trip: the loop's time and the requests.

Drive cannot be reached from CI, so the store is the real googleapiclient stack talking
to tests/drive_emulator.py over HTTPS on 127.0.0.1, with ``latency`` added to every
answer (150 ms is a typical round trip to Drive, 400 ms a poor one). The same loop
(1,000 items of 20 ms) runs bare and under ``Job.track`` with default settings in the
same run; the job is opened inside the timed part, as a notebook cell does.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sessionkit import Job
from sessionkit.clock import FakeClock, ScaledClock

from .report import Bar, Section

ITEMS, ITEM_SECONDS = 1000, 0.02
LATENCIES = (0.15, 0.40)
BARS = {0.15: 1.10, 0.40: 1.15}


def _emulator(folder: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from drive_emulator import DriveEmulator

    emulator = DriveEmulator(folder).start()
    os.environ["HTTPLIB2_CA_CERTS"] = str(emulator.cert)
    httplib2 = sys.modules.get("httplib2")
    if httplib2 is not None:  # it reads HTTPLIB2_CA_CERTS once, at import: an earlier suite's
        httplib2.CA_CERTS = str(emulator.cert)  # emulator (its folder removed) would be trusted
    os.environ["SESSIONKIT_GDRIVE_ENDPOINT"] = emulator.endpoint
    os.environ["SESSIONKIT_GDRIVE_CREDENTIALS"] = str(emulator.user_credentials_file("bench@example.com"))
    return emulator


def _store():
    from sessionkit.store.gdrive import GDriveStore

    return GDriveStore(f"bench/{uuid.uuid4().hex[:8]}")


def loop_time(section: Section, emulator) -> None:
    rows = section.table("round trip", "bare loop", "Job.track (defaults)", "ratio", "requests",
                         "checkpoints", "requests / checkpoint (whole run, with events and polls)")
    for latency in LATENCIES:
        store = _store()
        store.put("warm", b"1")  # the folder exists and the client is signed in, as after open_store
        emulator.latency = latency
        t0 = time.perf_counter()
        for _ in range(ITEMS):
            time.sleep(ITEM_SECONDS)
        bare = time.perf_counter() - t0
        before = store.stats["requests"]
        t0 = time.perf_counter()
        job = Job(store, "bench")
        it = job.track(range(ITEMS), display=False)
        for i in it:
            if i == 0:
                first = (store.stats["requests"], job._checkpointer.written.manifest.generation)
            time.sleep(ITEM_SECONDS)
            if i == ITEMS - 1:
                last = (store.stats["requests"], job._checkpointer.written.manifest.generation)
        tracked = time.perf_counter() - t0
        job.events.flush()  # written in the background after the final checkpoint
        emulator.latency = 0.0
        requests = store.stats["requests"] - before
        steady = (last[0] - first[0]) / max(1, last[1] - first[1])
        ratio = tracked / bare
        rows.append([f"{latency * 1e3:.0f} ms", f"{bare:.2f} s", f"{tracked:.2f} s", f"{ratio:.3f}x",
                     str(requests), str(job._checkpointer.written.manifest.generation), f"{steady:.2f}"])
        section.bars.append(Bar(f"Job.track / bare loop, {ITEMS} items of 20 ms, {latency * 1e3:.0f} ms "
                                f"round trip", ratio, "x", BARS[latency]))


def per_checkpoint(section: Section, emulator) -> None:
    """Requests per checkpoint in steady state, counted one checkpoint at a time on a fake
    clock (no latency needed: counts do not depend on it)."""
    rows = section.table("job", "requests per checkpoint: median", "mean", "max", "checkpoints")
    for keyed in (False, True):
        store = _store()
        job = Job(store, "k" if keyed else "p", clock=FakeClock(), checkpoint_every=1e9, checkpoint_items=10)
        it = job.track(range(100_000), key=str if keyed else None, display=False)
        for _ in range(11):
            next(it)
        costs = []
        for _ in range(300):  # 3,000 keys: a keyed job's inline keys overflow into a segment
            before = store.stats["requests"]
            for _ in range(10):
                next(it)
            costs.append(store.stats["requests"] - before)
        it.close()
        job.events.flush()
        name = "keyed" if keyed else "position"
        mean = statistics.mean(costs)
        rows.append([name, f"{statistics.median(costs):g}", f"{mean:.2f}", str(max(costs)), str(len(costs))])
        if keyed:  # merges are amortised: the bar is on the mean
            section.bars.append(Bar("Drive requests per checkpoint, keyed job (mean)", mean, "requests", 3))
        else:
            section.bars.append(Bar("Drive requests per checkpoint, position job (median)",
                                    statistics.median(costs), "requests", 1))


def idle_job(section: Section, emulator) -> None:
    """A running job with nothing to write: one item that runs 5 minutes of job time on a
    clock 20x faster than real time (the writer's control polls follow the job's clock)."""
    store = _store()
    clock = ScaledClock(20)
    job = Job(store, "idle", clock=clock)
    it = job.track(range(2), display=False)
    next(it)
    before = store.stats["requests"]
    start = clock.monotonic()
    clock.sleep(300)
    minutes = (clock.monotonic() - start) / 60
    per_minute = (store.stats["requests"] - before) / minutes
    it.close()
    job.events.flush()
    section.table("job", "requests per minute").append(["running, nothing to write", f"{per_minute:.1f}"])
    section.bars.append(Bar("Drive requests per minute, a running job with nothing to write", per_minute,
                            "requests", 6))


def run() -> Section:
    section = Section(
        "Job.track on Drive with latency",
        f"{ITEMS:,} items of {ITEM_SECONDS * 1e3:.0f} ms, bare and under `Job.track` with default "
        "settings, on the Drive emulator (real googleapiclient over HTTPS on 127.0.0.1) with every "
        "answer delayed by the round trip shown. Checkpoints are written by the job's writer thread; "
        "the loop waits only for the job's first read, its start and its final checkpoint.",
    )
    with tempfile.TemporaryDirectory() as tmp:
        emulator = _emulator(Path(tmp))
        try:
            loop_time(section, emulator)
            per_checkpoint(section, emulator)
            idle_job(section, emulator)
        finally:
            emulator.stop()
    return section
