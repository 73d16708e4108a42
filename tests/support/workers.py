"""Processes the tests start (``python tests/support/workers.py COMMAND ARGS``; ``support.WORKERS``).

Values written here carry their own SHA-256, so a reader can tell a whole value
from a torn one without trusting the store's own checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time

import sessionkit
from sessionkit import Conflict
from sessionkit.store import ABSENT


def increment(store, key: str) -> int:
    """Add one to the JSON counter at ``key`` by compare-and-swap; return the conflicts retried."""
    conflicts = 0
    while True:
        record = store.get(key)
        value, expect = (0, ABSENT) if record is None else (json.loads(record.data)["value"], record.version)
        try:
            store.put(key, json.dumps({"value": value + 1}).encode(), expect=expect)
            return conflicts
        except Conflict:
            conflicts += 1


def make_value(n: int, rng: random.Random) -> bytes:
    body = json.dumps({"n": n, "pad": "x" * rng.randrange(1, 400_000)}).encode()
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def check_value(data: bytes) -> int:
    """The value's counter if it is whole; raise AssertionError if it is torn."""
    digest, _, body = data.partition(b"\n")
    assert hashlib.sha256(body).hexdigest().encode() == digest, "torn or damaged value"
    return json.loads(body)["n"]


def count(url: str, times: str) -> None:
    store = sessionkit.open_store(url)
    conflicts = sum(increment(store, "counter") for _ in range(int(times)))
    print(json.dumps({"conflicts": conflicts}), flush=True)


def rewrite(url: str, until: str) -> None:
    """Write values n+1, n+2, ... up to ``until`` on key 'value', reporting each put."""
    store = sessionkit.open_store(url)
    rng = random.Random()
    record = store.get("value")
    n = check_value(record.data) if record else 0
    while n < int(until):
        n += 1
        store.put("value", make_value(n, rng))
        print(n, flush=True)


def read_loop(url: str, seconds: str) -> None:
    """Read 'value' over and over; print how many reads were whole and the counters seen."""
    store = sessionkit.open_store(url)
    end = time.monotonic() + float(seconds)
    reads, last, backwards = 0, 0, 0
    while time.monotonic() < end:
        record = store.get("value")
        if record is None:
            continue
        n = check_value(record.data)  # any torn read kills this process with a traceback
        backwards += n < last
        last = n
        reads += 1
    print(json.dumps({"reads": reads, "last": last, "backwards": backwards}), flush=True)



def job_worker(url: str, job_id: str, log_path: str, items: str, every: str, item_seconds: str) -> None:
    """Run a job whose body appends each item to a log; print 'started' once tracking."""
    from sessionkit import Job

    job = Job(url, job_id, checkpoint_items=int(every), checkpoint_every=3600)
    pause = float(item_seconds)
    with open(log_path, "a") as log, job:
        print("started", flush=True)
        for item in job.track(range(int(items)), display=False):
            log.write(f"{item}\n")
            log.flush()
            if pause:
                time.sleep(pause)
    print(json.dumps({"status": job.status, "done": job.done}), flush=True)


def keyed_job_worker(url: str, job_id: str, log_path: str, items: str, every: str, item_seconds: str,
                     inline_keys: str) -> None:
    """Like job_worker, with items known by key; done keys leave the manifest for segments
    every ``inline_keys`` keys (segments are written, merged and deleted)."""
    from sessionkit import Job
    from sessionkit.jobs import checkpoint

    checkpoint.INLINE_KEYS = int(inline_keys)

    job = Job(url, job_id, checkpoint_items=int(every), checkpoint_every=3600)
    with open(log_path, "a") as log, job:
        print("started", flush=True)
        for item in job.track(range(int(items)), key=str, display=False):
            log.write(f"{item}\n")
            log.flush()
            time.sleep(float(item_seconds))
    print(json.dumps({"status": job.status, "done": job.done}), flush=True)


def failing_script(url: str) -> None:
    """A script whose loop body raises, with no `with job:`: sys.excepthook records it."""
    from sessionkit import Job

    job = Job(url, "fails", checkpoint_items=10)
    for item in job.track(range(100), display=False):
        if item == 42:
            raise RuntimeError("disk full at item 42")


def text_view(n: str) -> None:
    """Track n no-op items with the default display (stderr is a pipe in the test)."""
    import tempfile

    from sessionkit import Job

    job = Job(tempfile.mkdtemp(), "quiet")
    for _ in job.track(range(int(n))):
        pass


def suspended_at_exit(url: str) -> None:
    """Leave a loop suspended mid-job and let the interpreter exit."""
    from sessionkit import Job

    job = Job(url, "suspended", checkpoint_every=3600)
    it = job.track(range(100), display=False)
    for _ in range(30):
        next(it)
    globals()["keep"] = it  # still referenced at exit


def lease_job(url: str, holder: str, log_path: str, items: str, item_seconds: str, ttl: str) -> None:
    """Take the 'primary' lease (waiting for it), then run job 'work' fenced by it.
    Prints 'holding <token> <wall time>' once it holds the lease."""
    from sessionkit import Job, Lease, LeaseLost

    lease = Lease(url, "primary", holder=holder, ttl=float(ttl), retry_period=float(ttl) / 8)
    token = lease.acquire()
    lease.start_renewing()
    print(f"holding {token} {time.time()}", flush=True)
    job = Job(url, "work", lease=lease, checkpoint_items=5, checkpoint_every=3600)
    try:
        with open(log_path, "a") as log:
            for item in job.track(range(int(items)), display=False):
                log.write(f"{item} {token}\n")
                log.flush()
                time.sleep(float(item_seconds))
    except LeaseLost as exc:
        print(f"lost {exc}", flush=True)
        return
    lease.release()
    print(json.dumps({"status": job.status, "done": job.done}), flush=True)


def _clock(scale: str, wall_offset: str = "0"):
    """The real clock, scaled, and/or with its wall clock set wrong by wall_offset seconds."""
    from datetime import timedelta

    from sessionkit.clock import ScaledClock, SystemClock

    class WallSkewed(SystemClock):
        def now(self):
            return super().now() + timedelta(seconds=float(wall_offset))

    base = WallSkewed() if float(wall_offset) else SystemClock()
    return ScaledClock(float(scale), base=base) if float(scale) != 1 else base


def _run_items(primary, log_path: str, items: str, item_seconds: str) -> None:
    with open(log_path, "a") as log:
        for item in primary.track(range(int(items)), display=False):
            start = time.time()
            time.sleep(float(item_seconds))
            log.write(f"{item} {primary.lease.token} {start} {time.time()}\n")
            log.flush()


def handover_primary(url: str, log_path: str, items: str, item_seconds: str, ttl: str, scale: str,
                     max_runtime: str, wall_offset: str = "0") -> None:
    """A primary whose runtime lasts max_runtime (clock seconds) on a clock scaled by scale."""
    from sessionkit.runtimes import Runtime
    from sessionkit.handover import Primary

    runtime = Runtime(max_runtime=float(max_runtime)) if float(max_runtime) else "local"
    primary = Primary(url, "work", runtime=runtime, clock=_clock(scale, wall_offset), ttl=float(ttl), label="A",
                      checkpoint_items=5)
    print(f"holding {primary.lease.token} {time.time()}", flush=True)
    _run_items(primary, log_path, items, item_seconds)
    print(json.dumps({"status": primary.job.status, "handed_over": primary.handed_over,
                      "released_at": time.time()}), flush=True)


def handover_backup(url: str, log_path: str, items: str, item_seconds: str, ttl: str, scale: str,
                    wall_offset: str = "0") -> None:
    from sessionkit.handover import Backup

    backup = Backup(url, "B", clock=_clock(scale, wall_offset), ttl=float(ttl), runtime="local")
    print("watching", flush=True)
    primary = backup.watch(timeout=None)
    print(f"holding {primary.lease.token} {time.time()}", flush=True)
    _run_items(primary, log_path, items, item_seconds)
    print(json.dumps({"status": primary.job.status, "done": primary.job.done}), flush=True)


def drive_count(url: str, times: str) -> None:
    """CAS increments on a gdrive:// store (the environment points it at the emulator)."""
    store = sessionkit.open_store(url)
    conflicts = sum(increment(store, "counter") for _ in range(int(times)))
    print(json.dumps({"conflicts": conflicts, "requests": store.stats["requests"]}), flush=True)


def _resident_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def blob_round_trip(url: str, source: str, target: str, whole: str = "") -> None:
    """Save a large file as a blob of job 'big' and load it back; print the resident memory
    (KB) before and its peak during both (sampled every 5 ms), and the store's counters.
    ``whole``: go through the Store base class's fallback, which reads the file whole (to
    show that the measurement sees it)."""
    import threading

    from sessionkit import Job
    from sessionkit.store.base import Store

    store = sessionkit.open_store(url)
    if whole:
        type(store).put_file = Store.put_file
        type(store).get_file = Store.get_file
    job = Job(store, "big")
    job.checkpoint()
    baseline = _resident_kb()
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _resident_kb())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    digest = job.save_file("data", source)
    job.checkpoint()
    Job(store, "big").load_file("data", target)
    done.set()
    sampler.join()
    print(json.dumps({"baseline_kb": baseline, "peak_kb": peak[0], "hash": digest, "stats": store.stats}))


def _at(start_at: str) -> None:
    """Wait until a wall-clock moment both racers were given, so their requests overlap."""
    time.sleep(max(0.0, float(start_at) - time.time()))


def drive_create_race(url: str, name: str, start_at: str) -> None:
    """One racer for a create-only put: prints whether it won and how many searches it made."""
    store = sessionkit.open_store(url)
    _at(start_at)
    try:
        version = store.put("lock", name.encode(), expect=ABSENT)
        won = True
    except Conflict:
        version, won = None, False
    print(json.dumps({"won": won, "version": version, "lists": store.stats["by_method"].get("list", 0)}),
          flush=True)


def drive_lease_race(url: str, holder: str, start_at: str) -> None:
    """One racer for a lease: prints the token it got (or null) and whether it still holds."""
    store = sessionkit.open_store(url)
    lease = sessionkit.Lease(store, "primary", holder=holder, ttl=600)
    _at(start_at)
    token = lease.try_acquire()
    renewed = lease.renew() if token is not None else False
    print(json.dumps({"token": token, "renewed": renewed}), flush=True)




def blob_job(path: str, log_path: str, kill_at: str) -> None:
    """A training-like job on a local store: 40 steps, a blob saved every 5, checkpoint_items=5;
    SIGKILLed at store write number kill_at (0: never). Prints the writes made."""
    from support.faulty import KillAt
    from sessionkit import Job
    from sessionkit.store.local import LocalStore

    store = KillAt(LocalStore(path), int(kill_at))
    job = Job(store, "train", checkpoint_items=5, checkpoint_every=3600)
    with open(log_path, "a") as log:
        for step in job.track(range(40), display=False):
            log.write(f"{step}\n")
            log.flush()
            if step % 5 == 4:
                job.save_blob("model", {"step": step, "weights": [step] * 2000})
    print(json.dumps({"writes": store.count, "status": job.status}), flush=True)


def abandoned_then_rerun(path: str) -> None:
    """A loop that raised (no `with job:`), then the cell run again to completion in the same
    process; the interpreter then exits with the first Job object still alive."""
    from sessionkit import Job

    first = Job(path, "j", checkpoint_items=10)
    try:
        for item in first.track(range(100), key=str, display=False):
            if item == 37:
                raise RuntimeError("the body failed")
    except RuntimeError:
        pass
    second = Job(path, "j", checkpoint_items=10)
    for _ in second.track(range(100), key=str, display=False):
        pass
    print(json.dumps({"first": first.status, "second": second.status, "done": second.done}), flush=True)
    globals()["keep"] = first  # still referenced at exit, as a notebook's namespace keeps it


def stepped_session(path: str, step_s: str) -> None:
    """A session whose wall clock is stepped by step_s seconds (negative: back) while it
    runs, as NTP steps a fresh VM's clock; its monotonic clock runs on. Prints the seconds
    that really passed."""
    from datetime import timedelta

    from sessionkit.clock import SystemClock
    from sessionkit.sessions import Session

    class Stepped(SystemClock):
        offset = 0.0

        def now(self):
            return super().now() + timedelta(seconds=self.offset)

    clock = Stepped()
    began = time.monotonic()
    session = Session(path, "backup", runtime="local", clock=clock, heartbeat=0.2)
    time.sleep(0.6)
    clock.offset = float(step_s)
    time.sleep(0.6)
    session.end("completed")
    print(json.dumps({"real_s": time.monotonic() - began}), flush=True)


def _map_items(primary, log_path: str, items: str, item_seconds: str) -> None:
    """As _run_items, with the items on a pool of 4 threads (job.map); each logs its own line."""
    token = primary.lease.token
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def work(item):
        start = time.time()
        time.sleep(float(item_seconds))
        os.write(fd, f"{item} {token} {start} {time.time()}\n".encode())  # one write: whole lines
        return item

    for _item, _result in primary.map(work, range(int(items)), workers=4, display=False):
        pass


def handover_map_primary(url: str, log_path: str, items: str, item_seconds: str, ttl: str, scale: str,
                         max_runtime: str) -> None:
    from sessionkit.runtimes import Runtime
    from sessionkit.handover import Primary

    primary = Primary(url, "work", runtime=Runtime(max_runtime=float(max_runtime)), clock=_clock(scale),
                      ttl=float(ttl), label="A", checkpoint_items=5)
    print(f"holding {primary.lease.token} {time.time()}", flush=True)
    _map_items(primary, log_path, items, item_seconds)
    print(json.dumps({"status": primary.job.status, "handed_over": primary.handed_over}), flush=True)


def handover_map_backup(url: str, log_path: str, items: str, item_seconds: str, ttl: str, scale: str) -> None:
    from sessionkit.handover import Backup

    backup = Backup(url, "B", clock=_clock(scale), ttl=float(ttl), runtime="local")
    print("watching", flush=True)
    primary = backup.watch(timeout=None)
    print(f"holding {primary.lease.token} {time.time()}", flush=True)
    _map_items(primary, log_path, items, item_seconds)
    print(json.dumps({"status": primary.job.status, "done": primary.job.done}), flush=True)


def sigterm_map_primary(url: str, log_path: str, items: str, item_seconds: str, ttl: str) -> None:
    """A primary on a runtime with no end (a SIGTERM stops it) mapping items on 4 threads."""
    from sessionkit.handover import Primary

    primary = Primary(url, "work", runtime="local", ttl=float(ttl), label="A", checkpoint_items=5)
    print(f"holding {primary.lease.token} {time.time()}", flush=True)
    _map_items(primary, log_path, items, item_seconds)
    print(json.dumps({"status": primary.job.status, "done": primary.job.done}), flush=True)


def map_job(url: str, log_path: str, items: str, item_seconds: str, every: str) -> None:
    """A positional job.map on 4 threads, max_in_flight 8; each item logs a line when it ran."""
    from sessionkit import Job

    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def work(item):
        time.sleep(float(item_seconds))
        os.write(fd, f"{item}\n".encode())
        return item

    job = Job(url, "mapped", checkpoint_items=int(every), checkpoint_every=3600)
    print("started", flush=True)
    for _ in job.map(work, range(int(items)), workers=4, max_in_flight=8, display=False):
        pass
    print(json.dumps({"status": job.status, "done": job.done}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/: ``support`` imports
    globals()[sys.argv[1]](*sys.argv[2:])
