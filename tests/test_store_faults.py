"""Faults of the disk under a local store: full, read-only, gone. Real tmpfs mounts where
this machine allows mounting (CI runs as root in a VM); skipped with the reason elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest

from sessionkit import Job
from sessionkit.clock import FakeClock
from sessionkit.errors import StoreError, StoreFull, StoreMissing, StoreReadOnly
from sessionkit.store.local import LocalStore

from support.disks import fill


def run(job, items, seen):
    for x in job.track(items, display=False):
        seen.append(x)


def test_a_full_disk_is_named_and_the_job_resumes_with_nothing_lost_once_space_is_freed(tmpfs):
    store = LocalStore(tmpfs / "store")
    store.put("kept", b"before")
    clock = FakeClock()
    job = Job(store, "j", checkpoint_items=10, clock=clock)
    seen: list[int] = []
    it = job.track(range(200), display=False)
    for x in it:
        seen.append(x)
        clock.advance(0.01)
        if x == 55:
            break
    it.close()  # checkpoints at 55 (the loop was left)
    filler = fill(tmpfs)
    with pytest.raises(StoreFull) as caught:
        for x in job.track(range(200), display=False):
            seen.append(x)
            clock.advance(0.01)
    message = str(caught.value)
    assert "full" in message and str(tmpfs / "store") in message and "Free space" in message
    assert "took over" not in message  # not the LeaseLost wording: nobody took over
    with pytest.raises(StoreFull):
        store.put("kept", b"x" * 100_000)
    assert store.get("kept").data == b"before", "a failed write changed nothing saved"
    filler.unlink()
    again = Job(store, "j", clock=clock)
    run(again, range(200), seen)
    assert again.status == "completed" and again.done == 200
    assert set(seen) == set(range(200)), "no item lost"


def test_a_read_only_store_is_a_store_error_naming_the_store_and_the_remedy(tmpfs):
    store = LocalStore(tmpfs / "store")
    job = Job(store, "j", clock=FakeClock())
    run(job, range(5), [])
    tmpfs.remount(ro=True)
    try:
        for make in (lambda: Job(store, "new", clock=FakeClock()),
                     lambda: run(Job(store, "j", clock=FakeClock()), range(10), []),
                     lambda: store.put("k", b"v"),
                     lambda: store.delete("jobs/j/manifest")):
            with pytest.raises(StoreReadOnly, match="read-only file system.*Use a store in a folder"):
                make()
        assert Job(store, "j", clock=FakeClock()).done == 5  # reading still works
    finally:
        tmpfs.remount(ro=False)


def test_a_store_path_that_is_a_file_and_a_store_removed_while_in_use(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        LocalStore(tmp_path / "file")
    store = LocalStore(tmp_path / "store")
    store.put("jobs/j/x", b"1")
    shutil.rmtree(tmp_path / "store")
    with pytest.raises(StoreMissing, match="is gone"):
        store.put("jobs/j/y", b"2")
    assert not (tmp_path / "store").exists(), "a removed store is not recreated behind the user's back"


def test_a_lease_that_cannot_renew_on_a_full_disk_says_why_not_that_another_took_over(tmpfs):
    from sessionkit import Lease, LeaseLost

    store = LocalStore(tmpfs / "store")
    clock = FakeClock()
    lease = Lease(store, "p", holder="a", ttl=30, clock=clock)
    lease.acquire(timeout=0)
    fill(tmpfs)
    clock.advance(5)
    assert lease.renew() is False
    clock.advance(20)  # past the renew deadline (20 s)
    with pytest.raises(LeaseLost) as caught:
        lease.check()
    message = str(caught.value)
    assert "is full" in message and "took over" not in message and caught.value.newer is None
