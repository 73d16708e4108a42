"""``sessionkit demo``: what the store guarantees, shown with real processes.

Several processes increment one counter in a local folder store by
compare-and-swap; one more process rewrites a large record and is killed with
SIGKILL mid-write. The demo then shows that no increment was lost and that the
killed writer left a whole record behind (the old one or the new one).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import tempfile
import time
from typing import Optional, TextIO

from .errors import Conflict
from .store import ABSENT, Store, open_store

COUNTER_KEY = "demo/counter"
BLOB_KEY = "demo/blob"


def increment(store: Store, key: str = COUNTER_KEY) -> int:
    """Add one to the JSON counter at ``key`` by compare-and-swap; return the conflicts retried."""
    conflicts = 0
    while True:
        record = store.get(key)
        if record is None:
            value, expect = 0, ABSENT
        else:
            value, expect = json.loads(record.data)["value"], record.version
        try:
            store.put(key, json.dumps({"value": value + 1}).encode(), expect=expect)
            return conflicts
        except Conflict:
            conflicts += 1


def _count(url: str, times: int, results: "mp.Queue[tuple[int, int, float]]") -> None:
    store = open_store(url)
    started = time.perf_counter()
    conflicts = sum(increment(store) for _ in range(times))
    results.put((os.getpid(), conflicts, time.perf_counter() - started))


def _rewrite_forever(url: str) -> None:
    store = open_store(url)
    n = 0
    while True:
        n += 1
        store.put(BLOB_KEY, bytes([n % 251]) * 2_000_000)


def run(store_dir: Optional[str] = None, workers: int = 4, increments: int = 250,
        out: Optional[TextIO] = None) -> bool:
    """Run the demo; print what happens to ``out``; return True when every check holds."""
    import sys

    out = out or sys.stdout
    if workers < 1 or increments < 1:
        raise ValueError(f"workers and increments must be at least 1 (got {workers}, {increments})")
    store_dir = store_dir or tempfile.mkdtemp(prefix="sessionkit-demo-")
    store = open_store(store_dir)
    print(f"sessionkit demo - store: {store_dir}", file=out)
    ctx = mp.get_context("spawn")

    print(f"\n1. {workers} processes x {increments} compare-and-swap increments of one counter",
          file=out)
    store.delete(COUNTER_KEY)
    results: "mp.Queue[tuple[int, int, float]]" = ctx.Queue()
    procs = [ctx.Process(target=_count, args=(store_dir, increments, results)) for _ in range(workers)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    rows = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    for pid, conflicts, secs in sorted(rows):
        print(f"   process {pid}: {increments} increments, {conflicts} conflicts retried, "
              f"{secs:.2f} s", file=out)
    record = store.get(COUNTER_KEY)
    final = json.loads(record.data)["value"] if record else 0
    expected = workers * increments
    counter_ok = final == expected
    print(f"   counter = {final} (expected {expected}): "
          f"{'no update lost' if counter_ok else 'UPDATES LOST'}; "
          f"{expected / elapsed:.0f} durable increments/s", file=out)

    print("\n2. a writer rewriting a 2 MB record is killed with SIGKILL mid-write", file=out)
    whole = True
    for attempt in range(3):
        writer = ctx.Process(target=_rewrite_forever, args=(store_dir,))
        writer.start()
        time.sleep(0.5 + random.random() * 0.5)
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        blob = store.get(BLOB_KEY)  # raises CorruptRecord if torn
        same = blob is not None and len(blob.data) == 2_000_000 and len(set(blob.data)) == 1
        whole = whole and same
        print(f"   kill {attempt + 1}: record after the kill is "
              f"{'whole (version ' + blob.version + ')' if same else 'TORN'}", file=out)

    ok = counter_ok and whole
    print(f"\n{'All checks hold.' if ok else 'A CHECK FAILED.'} "
          f"Records live as files under {store_dir}", file=out)
    return ok
