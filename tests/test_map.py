"""``job.map`` (issue 29): items on an executor, results as they finish, resumable."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from sessionkit import Job, LeaseLost, jobs
from sessionkit.errors import SessionkitWarning
from sessionkit.errors import StoreError
from sessionkit.store.local import LocalStore

from support import mapwork
from support.waiting import WAIT_S, wait_until


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "s")


class Gate:
    """Counts the items running at once, and holds chosen ones until released."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.ran: list = []

    def __call__(self, x):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.ran.append(x)
        time.sleep(0.003)
        with self.lock:
            self.running -= 1
        return x * 10


@pytest.mark.parametrize("keyed", [False, True], ids=["positions", "keys"])
def test_map_runs_every_item_once_with_at_most_max_in_flight_and_resumes(store, keyed):
    items = [f"item-{i:03d}" for i in range(120)] if keyed else list(range(120))
    key = str if keyed else None
    gate = Gate()
    job = Job(store, "m", checkpoint_items=10)
    results = {}
    for item, result in job.map(gate, items, key=key, workers=4, max_in_flight=6, display=False):
        results[item] = result
        if len(results) == 50:
            break
    assert gate.most <= 6, "never more than max_in_flight submitted"
    assert Job(store, "m").done == 49, "the item the loop broke at is not done (as with track)"
    again = Job(store, "m")
    for item, result in again.map(gate, items, key=key, workers=4, display=False):
        results[item] = result
    assert again.status == "completed" and again.done == 120 == again.total
    assert results == {x: x * 10 for x in items}
    ran_twice = len(gate.ran) - len(set(gate.ran))
    assert ran_twice <= 6 + 1, f"only what was in flight at the break runs again ({ran_twice})"


def test_results_come_in_completion_order_not_input_order(store):
    def slow_first(x):
        time.sleep(0.2 if x == 0 else 0.001)
        return x

    order = [item for item, _ in Job(store, "o").map(slow_first, range(8), workers=4, display=False)]
    assert sorted(order) == list(range(8)) and order[-1] == 0


def test_errors_record_lists_the_failed_item_and_a_rerun_retries_it_only_when_asked(store):
    def flaky(x):
        if x in (7, 31):
            raise ValueError(f"cannot read item {x}")
        return x

    job = Job(store, "r", checkpoint_items=10)
    done = [x for x, _ in job.map(flaky, range(40), workers=3, errors="record", display=False)]
    assert sorted(done) == [x for x in range(40) if x not in (7, 31)]
    assert job.status == "completed" and (job.done, job.total) == (38, 40)
    assert job.failed_items == {7: "ValueError: cannot read item 7", 31: "ValueError: cannot read item 31"}
    again = Job(store, "r")
    assert list(again.map(flaky, range(40), workers=3, errors="record", display=False)) == []
    third = Job(store, "r")
    assert sorted(x for x, _ in third.map(lambda x: x, range(40), retry_failed=True, display=False)) == [7, 31]
    assert third.failed_items == {} and third.done == 40
    from sessionkit import history

    events = history.load(store)
    failed = events[events["kind"] == "job.item_failed"]
    assert sorted(failed["data.item"]) == ["31", "7"]


def test_errors_raise_stops_submitting_hands_back_what_is_in_flight_and_fails_the_job(store):
    started = []

    def boom(x):
        started.append(x)
        time.sleep(0.01)
        if x == 5:
            raise RuntimeError("item 5 broke")
        return x

    job = Job(store, "e", checkpoint_items=5)
    seen = []
    with pytest.raises(RuntimeError, match="item 5 broke"), job:
        for item, _ in job.map(boom, range(1000), workers=2, max_in_flight=4, display=False):
            seen.append(item)
    assert job.status == "failed" and "item 5 broke" in jobs.list_jobs(store)[0].error
    assert len(started) < 20, "submitting stopped at the first error"
    assert 5 not in seen and Job(store, "e").done == len(seen)


def test_a_process_pool_runs_functions_from_a_module(store):
    with ProcessPoolExecutor(2) as pool:
        job = Job(store, "p")
        got = dict(job.map(mapwork.square, range(30), executor=pool, display=False))
    assert got == {x: x * x for x in range(30)} and job.status == "completed"


def test_map_options_are_checked(store):
    job = Job(store, "bad")
    for kwargs, words in [({"workers": 0}, "workers must be an int >= 1"),
                          ({"max_in_flight": -1}, "max_in_flight must be an int >= 1"),
                          ({"errors": "ignore"}, "errors must be one of"),
                          ({"executor": object()}, "executor must be a concurrent.futures.Executor"),
                          ({"workers": 2, "executor": ThreadPoolExecutor(1)}, "not both"),
                          ({"drain_seconds": 0}, "drain_seconds must be a number of seconds > 0")]:
        with pytest.raises((ValueError, TypeError), match=words):
            job.map(lambda x: x, range(3), **kwargs)
    assert job.status == "pending", "a refused call changes nothing"


def test_progress_shows_the_items_in_flight_and_those_that_failed(store):
    from sessionkit.widgets.text import describe

    seen = []

    def fails_odd(x):
        time.sleep(0.002)
        if x % 2:
            raise ValueError("odd")
        return x

    job = Job(store, "v")
    for _ in job.map(fails_odd, range(60), workers=4, max_in_flight=8, errors="record", display=False):
        seen.append(job.progress)
    assert max(p.in_flight for p in seen) > 0 and all(p.in_flight <= 8 for p in seen)
    final = job.progress
    assert (final.in_flight, final.failed, final.done, final.total) == (0, 30, 30, 60)
    assert "· 30 failed" in describe(final) and "in flight" not in describe(final)


# -- issue 29's leftovers: stopping, draining, failures ---------------------------


class Token:
    def __init__(self, token: int) -> None:
        self.token = token


def stored(store, job_id):
    from sessionkit.jobs.manifest import load

    return load(store, job_id).manifest


def test_a_stream_of_fast_failures_checkpoints_and_obeys_a_pause_request(store):
    """errors='record' and every item fails at once: nothing is yielded, so only the slow
    path can checkpoint and read requests. Item 300 waits until a checkpoint listing failed
    items has landed; item 600 asks the job to pause; the map must stop there."""

    def fails(x):
        if x == 300:
            wait_until(lambda: stored(store, "fast").failed, "a checkpoint during a stream of failures")
        if x == 600:
            jobs.request(store, "fast", "pause")
        time.sleep(0.001)  # an item's work
        raise ValueError(f"item {x}")

    job = Job(store, "fast", checkpoint_every=0.05, control_poll=0.05)
    assert list(job.map(fails, range(100_000), workers=4, errors="record", display=False)) == []
    assert job.status == "paused"
    failed = stored(store, "fast").failed
    assert 600 <= len(failed) < 100_000 and len(failed) == len(job.failed_items)


def test_a_stream_of_fast_failures_stops_when_another_holder_takes_the_job(store):
    taken = threading.Event()
    generation = []

    def fails(x):
        if x == 300 and not taken.is_set():
            Job(store, "lost", lease=Token(2)).set_status("paused")  # the new holder's write
            generation.append(stored(store, "lost").generation)
            taken.set()
        time.sleep(0.001)
        raise ValueError(f"item {x}")

    job = Job(store, "lost", lease=Token(1), checkpoint_every=0.05)
    with pytest.raises(LeaseLost):
        for _ in job.map(fails, range(100_000), workers=4, errors="record", display=False):
            pass
    manifest = stored(store, "lost")
    assert manifest.token == 2 and manifest.status == "paused"
    assert manifest.generation == generation[0], "the stale holder wrote nothing after the new one"


class Running:
    """Counts the items running now; each takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.lock, self.now = seconds, threading.Lock(), 0

    def __call__(self, x):
        with self.lock:
            self.now += 1
        try:
            time.sleep(self.seconds)  # an item's work
            return x
        finally:
            with self.lock:
                self.now -= 1


def test_a_failed_checkpoint_write_stops_the_map_after_draining_what_is_in_flight(tmp_path):
    """The store refuses the job's manifest writes from some moment on: the map submits
    nothing more, hands back what is in flight, and only then raises the store's error."""
    from support.faulty import Faulty

    armed = threading.Event()
    store = Faulty(LocalStore(tmp_path / "s"), lambda op, key, n: armed.is_set() and key == "jobs/w/manifest")
    work = Running(0.05)
    job = Job(store, "w", checkpoint_items=4, checkpoint_every=3600)
    got = []
    with pytest.raises(StoreError, match="injected failure") as raised:
        for item, _ in job.map(work, range(10_000), workers=4, display=False):
            got.append(item)
            if len(got) == 20:
                armed.set()
    assert work.now == 0, "the error was raised while items were still running"
    assert raised.value is not None and len(got) < 200, "submitting stopped at the failed write"


def test_items_running_past_the_drain_are_abandoned_announced_and_run_again(store):
    """errors='raise': item 1 fails while item 0 is held. The map drains for
    drain_seconds, then returns with item 0 still running: item 0 is not done, a
    job.items_abandoned event names it, and the next run submits it again while the first
    call is still running (at least once per item, twice at a time here; mapping.py)."""
    from sessionkit import events

    release = threading.Event()
    calls = []

    def held(x):
        calls.append(x)
        if x == 0 and calls.count(0) == 1:
            release.wait(WAIT_S)
        if x == 1 and calls.count(1) == 1:
            raise RuntimeError("item 1 broke")
        return x

    seen = []
    events.add_listener(seen.append)
    try:
        job = Job(store, "a")
        with pytest.raises(RuntimeError, match="item 1 broke"), job:
            for _ in job.map(held, range(2), workers=2, drain_seconds=0.2, display=False):
                pass
        abandoned = [e["data"] for e in seen if e["kind"] == "job.items_abandoned"]
        assert abandoned == [{"job": "a", "count": 1, "items": ["0"], "drain_seconds": 0.2}]
        assert job.status == "failed" and Job(store, "a").done == 0
        again = Job(store, "a")
        assert sorted(x for x, _ in again.map(held, range(2), workers=2, display=False)) == [0, 1]
        assert again.status == "completed" and calls.count(0) == 2
        assert not release.is_set(), "the abandoned call was still running when item 0 ran again"
    finally:
        release.set()
        events.remove_listener(seen.append)


def test_failures_past_max_failed_are_announced_and_run_again(store):
    def fails(x):
        raise ValueError(f"item {x}")

    from sessionkit import events

    seen = []
    events.add_listener(seen.append)
    try:
        job = Job(store, "many")
        job.max_failed = 3
        with pytest.warns(SessionkitWarning, match="more than 3 items failed"):
            assert list(job.map(fails, range(10), errors="record", display=False)) == []
    finally:
        events.remove_listener(seen.append)
    assert sorted(job.failed_items) == [0, 1, 2] and job.status == "completed"
    unlisted = [e["data"]["item"] for e in seen if e["kind"] == "job.failed_unlisted"]
    assert sorted(unlisted, key=int) == [str(i) for i in range(3, 10)]
    ran = []
    again = Job(store, "many")
    assert sorted(x for x, _ in again.map(lambda x: ran.append(x) or x, range(10), display=False)) == \
        list(range(3, 10)), "the unlisted failures run again; the listed ones are skipped"
