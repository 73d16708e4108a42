"""The threads that send chunks (sessionkit/jobs/sending.py): kept from one chunk to the next,
at most ``max_threads``, errors handed to whoever waits, and a forked child that saves (a
``ProcessPoolExecutor`` worker of ``job.map``) gets threads of its own."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from sessionkit import Job
from sessionkit.jobs.sending import POOL, SendPool


def test_work_runs_on_at_most_max_threads_which_are_kept_and_errors_reach_the_waiter():
    pool = SendPool(max_threads=3)
    gate = threading.Event()
    ran = threading.local()  # what each thread has run: more than one task on a kept thread

    def ident(n: int) -> tuple[int, int]:
        assert gate.wait(30)
        ran.count = getattr(ran, "count", 0) + 1
        return n, ran.count
    sendings = [pool.submit(ident, n) for n in range(30)]
    gate.set()
    answers = [s.result() for s in sendings]
    assert [n for n, _ in answers] == list(range(30))
    assert max(count for _, count in answers) >= 10, "30 tasks on at most 3 threads"
    assert sum(1 for _, count in answers if count == 1) <= 3, "each thread starts once"
    later = [pool.submit(ident, n).result()[1] for n in range(10)]
    assert min(later) > 1, "the threads are kept for later work"

    def fails() -> None:
        raise OSError("the link dropped (injected)")
    with pytest.raises(OSError, match="injected"):
        pool.submit(fails).result()
    assert pool.submit(ident, 99).result()[0] == 99  # a failure does not cost a thread


def test_a_bad_thread_count_is_refused_naming_it():
    with pytest.raises(ValueError, match="max_threads"):
        SendPool(max_threads=0)


def _save_in_child(root: str, out) -> None:
    job = Job(root, "child")
    job.save_blob("m", {"w": np.arange(2_000_000, dtype=np.float32)}).wait(60)
    job.checkpoint()
    out.put(float(Job(root, "child").load_blob("m")["w"][-1]))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
def test_a_forked_child_saves_on_threads_of_its_own(tmp_path):
    Job(tmp_path / "parent", "p").save_blob("m", {"w": np.ones(2_000_000, dtype=np.float32)}).wait(60)
    assert POOL.submit(lambda: 1).result() == 1  # the parent's threads are up
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_save_in_child, args=(str(tmp_path / "s"), out))
    child.start()
    child.join(120)
    assert child.exitcode == 0, "the child's save never ended (it waited for the parent's threads)"
    assert out.get(timeout=10) == 1_999_999.0
