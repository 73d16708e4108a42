"""job.map: items in parallel against track, and its overhead against a bare executor loop.

- 400 items that each wait 20 ms (I/O-bound), ``workers=8``, against ``Job.track`` over
  the same items in the same run: on a local store, and on the Drive emulator (the real
  googleapiclient stack over HTTPS on 127.0.0.1) with 150 ms added to every answer.
- 100,000 no-op items through ``job.map`` on a thread pool of 8, against a bare
  ``ThreadPoolExecutor`` + ``as_completed`` loop over the same items in the same run.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from sessionkit import Job
from sessionkit.store.local import LocalStore

from .bench_remote import _emulator, _store
from .report import Bar, Section

IO_ITEMS, IO_SECONDS, WORKERS = 400, 0.02, 8
NOOP_ITEMS = 100_000


def _wait(_x):
    time.sleep(IO_SECONDS)


def _noop(x):
    return x


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def parallel_vs_track(section: Section, rows, name: str, store) -> None:
    """Each run opens its job inside the timed part; ``fixed`` is a run over no items (open,
    claim, final checkpoint: what neither loop can shorten), measured in the same run."""
    def track():
        for _ in Job(store, "track").track(range(IO_ITEMS), display=False):
            _wait(None)

    def mapped():
        for _ in Job(store, "map").map(_wait, range(IO_ITEMS), workers=WORKERS, display=False):
            pass

    fixed = _timed(lambda: list(Job(store, "empty").map(_wait, [], workers=WORKERS, display=False)))
    tracked, mapped_s = _timed(track), _timed(mapped)
    speedup = (tracked - fixed) / (mapped_s - fixed)
    rows.append([name, f"{tracked:.2f} s", f"{mapped_s:.2f} s", f"{tracked / mapped_s:.1f}x", f"{fixed:.2f} s",
                 f"{speedup:.1f}x"])
    section.bars.append(Bar(f"speed-up of map (8 workers) over track, less the fixed cost, {name}: "
                            f"6 / speed-up", 6 / speedup, "", 1.0))


def overhead(section: Section, tmp: str) -> None:
    def bare():
        with ThreadPoolExecutor(WORKERS) as pool:
            for future in as_completed([pool.submit(_noop, i) for i in range(NOOP_ITEMS)]):
                future.result()

    def mapped():
        job = Job(LocalStore(f"{tmp}/noop"), f"noop-{time.monotonic_ns()}")
        for _ in job.map(_noop, range(NOOP_ITEMS), workers=WORKERS, display=False):
            pass

    best = {}
    for name, fn in (("bare", bare), ("map", mapped)):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best[name] = min(times)
    section.table("100,000 no-op items, 8 threads", "best of 3").extend(
        [["ThreadPoolExecutor + as_completed", f"{best['bare']:.2f} s"], ["job.map", f"{best['map']:.2f} s"]])
    section.bars.append(Bar("job.map / bare executor loop (100,000 no-op items)", best["map"] / best["bare"],
                            "x", 1.3))


def run() -> Section:
    section = Section("job.map", __doc__.split("\n\n", 1)[1].strip())
    rows = section.table("store", "track (1 at a time)", "map (8 workers)", "speed-up",
                         "fixed (a run of no items)", "speed-up less the fixed cost")
    with tempfile.TemporaryDirectory() as tmp:
        parallel_vs_track(section, rows, "local folder", LocalStore(f"{tmp}/io"))
        (Path(tmp) / "drive").mkdir()
        emulator = _emulator(Path(tmp) / "drive")
        try:
            store = _store()
            store.put("warm", b"1")
            emulator.latency = 0.15
            parallel_vs_track(section, rows, "Drive emulator, 150 ms round trips", store)
        finally:
            emulator.latency = 0
            emulator.stop()
        overhead(section, tmp)
    return section
