"""README's promises in failure paths (issue 27): the redo bound with a full disk and with a
SIGKILL at every store write, counts that never exceed the total when an event write fails,
a superseded Job that never writes over a newer run, and reading that never writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import sessionkit
from sessionkit import Job, jobs
from sessionkit.errors import StoreFull
from sessionkit.store.local import LocalStore

from support.faulty import Faulty, matching
from support.disks import fill

WORKERS = str(Path(__file__).parent / "support" / "workers.py")
INTERVAL = 50  # checkpoint_items in the redo tests


def worker(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, WORKERS, *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=check)


def test_a_full_disk_during_a_keyed_job_redoes_at_most_two_checkpoint_intervals(tmpfs):  # noqa: F811
    """Before: the background write failed and the loop ran on until the writer's error
    reached it; 200 items ran again with checkpoint_items=50. Now the loop never runs more
    than one interval past a write that has not landed."""
    store = LocalStore(tmpfs / "store")
    keys = [f"file-{i:04d}" for i in range(600)]
    ran: list[str] = []
    job = Job(store, "ingest", checkpoint_items=INTERVAL, checkpoint_every=3600)
    filler = None
    with pytest.raises(StoreFull):
        for key in job.track(keys, key=str, display=False):
            ran.append(key)
            if len(ran) == 120:
                filler = fill(tmpfs)
    assert filler is not None
    filler.unlink()
    again = Job(store, "ingest", checkpoint_items=INTERVAL)
    for key in again.track(keys, key=str, display=False):
        ran.append(key)
    assert again.status == "completed" and again.done == 600 == again.total
    assert set(ran) == set(keys), "nothing lost"
    redone = len(ran) - len(keys)
    assert redone <= 2 * INTERVAL + 1, f"{redone} items ran twice"


@pytest.mark.slow
def test_a_sigkill_at_every_store_write_of_a_job_saving_blobs_redoes_at_most_two_intervals(tmp_path):
    """Before: up to 25 steps ran again with a blob saved every 5 steps and checkpoint_items=5."""
    clean = worker("blob_job", tmp_path / "clean", tmp_path / "clean.log", 0, check=True)
    writes = json.loads(clean.stdout.strip().splitlines()[-1])["writes"]
    assert writes > 16  # a claim, 8 blobs, 8 checkpoints and the events
    worst = 0
    for at in range(1, writes + 1):
        folder, log = tmp_path / f"s{at}", tmp_path / f"s{at}.log"
        killed = worker("blob_job", folder, log, at)
        assert killed.returncode == -9, (at, killed.stderr[-2000:])
        job = Job(LocalStore(folder), "train")
        with open(log, "a") as out:
            for step in job.track(range(40), display=False):
                out.write(f"{step}\n")
                if step % 5 == 4:
                    job.save_blob("model", {"step": step, "weights": [step] * 2000})
        steps = [int(line) for line in log.read_text().split()]
        assert set(steps) == set(range(40)) and job.status == "completed" and job.done == 40
        assert job.load_blob("model")["step"] == 39
        worst = max(worst, len(steps) - 40)
        assert len(steps) - 40 <= 2 * 5 + 1, f"killed at write {at}: {len(steps) - 40} steps ran twice"
    print(f"worst redo over {writes} kill points: {worst} steps")


@pytest.mark.parametrize("lands", [False, True], ids=["refused", "landed-answer-lost"])
def test_an_event_write_that_fails_never_counts_an_item_twice(tmp_path, lands):
    """Before: the event segment written with a checkpoint failed once and the writer sent the
    checkpoint's items again: 10 items counted twice, the re-run completed at 110/100."""
    store = Faulty(LocalStore(tmp_path / "s"), matching("events/", nth=1), lands=lands)
    job = Job(store, "j", checkpoint_items=10, checkpoint_every=3600)
    ran = list(job.track([f"k{i}" for i in range(100)], key=str, display=False))
    assert store.failed, "the fault was injected"
    assert len(ran) == 100
    info = jobs.list_jobs(LocalStore(tmp_path / "s"))[0]
    assert (info.status, info.done, info.total) == ("completed", 100, 100)


def test_a_manifest_write_that_landed_but_failed_never_counts_an_item_twice(tmp_path):
    store = Faulty(LocalStore(tmp_path / "s"), matching("jobs/j/manifest", nth=4), lands=True)
    keys = [f"k{i}" for i in range(100)]
    job = Job(store, "j", checkpoint_items=10, checkpoint_every=3600)
    ran = []
    try:  # the loop stops if the failure reaches it before its final flush, which retries
        for key in job.track(keys, key=str, display=False):
            ran.append(key)
    except sessionkit.errors.StoreError as exc:
        assert "injected" in str(exc)
    assert store.failed, "the fault was injected"
    again = Job(LocalStore(tmp_path / "s"), "j")
    ran += list(again.track(keys, key=str, display=False))
    assert set(ran) == set(keys)
    assert (again.status, again.done, again.total) == ("completed", 100, 100)


@pytest.mark.slow
def test_a_superseded_job_never_writes_its_status_over_the_newer_run_at_exit(tmp_path):
    """Before: at interpreter exit the abandoned first Job wrote 'paused' over the re-run's
    'completed'."""
    done = worker("abandoned_then_rerun", tmp_path / "s", check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1])["second"] == "completed"
    info = jobs.list_jobs(LocalStore(tmp_path / "s"))[0]
    assert (info.status, info.done, info.total) == ("completed", 100, 100)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def test_reading_a_read_only_store_never_writes_even_with_a_killed_writers_leftovers(tmpfs):  # noqa: F811
    """Before: `sessionkit status` and `jobs list` on a read-only store holding an old temp
    file exited 2 ("cannot list 'jobs/' ... read-only file system"): listing cleaned up."""
    root = tmpfs / "store"
    store = LocalStore(root)
    job = Job(store, "j", checkpoint_items=5)
    list(job.track(range(12), display=False))
    job.events.flush()  # the final checkpoint's events, written in the background otherwise
    leftover = next(root.rglob("manifest.skv")).with_name("manifest.skv%tmp-999-deadbeef")
    leftover.write_bytes(b"half a record")
    os.utime(leftover, (1, 1))  # older than any cutoff: a writer killed long ago
    before = _tree(root)
    tmpfs.remount(ro=True)
    cli = [sys.executable, "-m", "sessionkit"]
    try:
        for args in (["status", str(root)], ["jobs", "list", str(root)], ["jobs", "show", str(root), "j"],
                     ["history", str(root)]):
            done = subprocess.run(cli + args, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (args, done.stdout[-500:], done.stderr[-1500:])
        assert jobs.list_jobs(LocalStore(root))[0].done == 12
        assert Job(LocalStore(root), "j").done == 12, "opening a job to read it works too"
    finally:
        tmpfs.remount(ro=False)
    assert _tree(root) == before, "a reader changed the store"
    LocalStore(root).put("jobs/j/other", b"x")  # a writer sweeps its folder's old leftovers
    assert not leftover.exists()


def test_a_released_writer_is_told_it_released_and_who_holds_the_lease_now(tmp_path):
    """Before: "lease 'primary' lost (its renew deadline passed): this writer (token None) could
    not renew in time ... no newer holder is known", though it had released token 1 and token
    2 had written since."""
    from sessionkit import Lease, LeaseLost
    from sessionkit.clock import FakeClock

    clock = FakeClock()
    store = LocalStore(tmp_path / "s")
    first = Lease(store, "primary", holder="colab-A", ttl=60, clock=clock)
    first.acquire(timeout=0)
    job = Job(store, "work", lease=first, checkpoint_items=5, clock=clock)
    it = job.track(range(100), display=False)
    for _ in range(7):
        next(it)
    first.release()
    second = Lease(store, "primary", holder="kaggle-B", ttl=60, clock=clock)
    assert second.acquire(timeout=0) == 2
    newer = Job(store, "work", lease=second, clock=clock)
    newer.checkpoint()
    with pytest.raises(LeaseLost) as caught:
        for _ in it:
            pass
    lost = caught.value
    assert (lost.reason, lost.token, lost.newer, lost.newer_holder) == ("released", 1, 2, "kaggle-B")
    message = str(lost)
    assert "token 1" in message and "released the lease itself" in message
    assert "token 2 (held by kaggle-B)" in message
    assert "deadline" not in message and "token None" not in message
    with pytest.raises(LeaseLost, match="released the lease itself"):
        first.check()


def test_lease_lost_says_superseded_or_deadline_with_the_writers_own_token(tmp_path):
    from types import SimpleNamespace

    from sessionkit import Lease, LeaseLost
    from sessionkit.clock import FakeClock

    clock = FakeClock()
    store = LocalStore(tmp_path / "s")
    a = Lease(store, "p", holder="A", ttl=30, clock=clock)
    a.acquire(timeout=0)
    clock.advance(21)  # past A's renew deadline (20 s): A stops acting by itself
    with pytest.raises(LeaseLost) as caught:
        a.check()
    assert caught.value.reason == "deadline" and "this writer (token 1)" in str(caught.value)
    old, new = Job(store, "j", lease=SimpleNamespace(token=1)), Job(store, "j", lease=SimpleNamespace(token=2))
    new.checkpoint()
    with pytest.raises(LeaseLost) as caught:
        old.checkpoint()
    lost = caught.value
    assert (lost.reason, lost.token, lost.newer) == ("superseded", 1, 2)
    assert f"holds token 1, the store has token 2 (held by {new.events.writer})" in str(lost)


@pytest.mark.parametrize("step", [-3600, 3600], ids=["stepped-back", "stepped-forward"])
def test_a_session_whose_wall_clock_is_stepped_while_it_runs_has_its_real_duration(tmp_path, step):
    """Before: a backup whose wall clock was stepped back an hour during its run showed a
    session lasting -3,585 s in history.sessions."""
    from sessionkit import history

    done = worker("stepped_session", tmp_path / "s", step, check=True)
    real = json.loads(done.stdout.strip().splitlines()[-1])["real_s"]
    table = history.sessions(history.load(LocalStore(tmp_path / "s")))
    assert len(table) == 1
    duration = table["duration_s"].iloc[0]
    assert 1.0 <= duration <= real, f"{duration} s for a session that lasted {real:.2f} s"
    assert table["end"].iloc[0] - table["start"].iloc[0] == pd.Timedelta(seconds=duration)


def test_gc_with_no_retention_spares_what_a_live_handover_with_approval_needs(tmp_path):
    """Before: `sessionkit gc --older-than 0s --sessions-older-than 0s` removed a waiting
    backup's approval request, so `sessionkit approve` found none and it never took over."""
    from sessionkit import handover
    from sessionkit.clock import FakeClock
    from sessionkit.cli import main
    from sessionkit.handover import Backup, Primary

    store, clock = LocalStore(tmp_path / "s"), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
    it = primary.track(range(50), display=False)
    for _ in range(5):
        next(it)
    it.close()  # paused at 5 of 50
    backup = Backup(store, "B", approval="required", clock=clock, ttl=10, runtime="local")
    primary.close()
    assert backup.step() is None and backup.status == "approval pending"
    clock.advance(3600)
    assert main(["gc", str(tmp_path / "s"), "--older-than", "0s", "--sessions-older-than", "0s"]) == 0
    pending = handover.pending_approvals(store)
    assert [p.session for p in pending] == [backup.session.id], "the request of a live backup stays"
    assert main(["approve", str(tmp_path / "s"), pending[0].id]) == 0
    took = backup.step()
    assert took is not None and took.lease.token == 2
