"""Jobs across real processes: SIGKILL at random moments, control from another process."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import sessionkit
from sessionkit import jobs
from sessionkit.jobs.doneset import Ranges, Segment, SegmentList

from support.processes import wait_for

WORKERS = str(Path(__file__).parent / "support" / "workers.py")
pytestmark = pytest.mark.slow


def start(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def done_positions(url: str, job_id: str) -> set[int]:
    store = sessionkit.open_store(url)
    m = json.loads(store.get(f"jobs/{job_id}/manifest").data)
    segments = SegmentList(store, f"jobs/{job_id}/done/", m["mode"] or "position",
                           [Segment(n, c) for n, c in m["segments"]])
    ranges, _ = segments.load()
    ranges.update(Ranges(m.get("ranges") or []))  # format 2 keeps positions in the manifest
    return {i for a, b in ranges.spans for i in range(a, b)}


@pytest.mark.parametrize("where", ["local", "gdrive-50ms"])
def test_sigkilled_job_loses_nothing_and_redoes_at_most_one_interval_and_one_write(tmp_path, where):
    """Checkpoints are written by the job's writer thread while the loop goes on; a kill can
    land anywhere. What runs again is at most one interval (``every`` items) plus the items
    finished while the one write in flight was out (less than another interval here: a
    write takes under one interval), plus the item in flight at the kill."""
    log = tmp_path / "items.log"
    items, every = 5000, 100
    item_seconds = 0.0002
    if where == "local":
        url = str(tmp_path / "store")
    else:
        pytest.importorskip("googleapiclient")
        from conftest import drive_emulator
        from sessionkit.store.gdrive import GDriveStore

        emulator = drive_emulator()
        emulator.latency = 0.05  # every request answers 50 ms late; 100 items take 200 ms
        item_seconds = 0.002
        url = GDriveStore(f"sessionkit-tests/kill-{tmp_path.name}").url
    rng = random.Random(7)
    kills, runs = 0, 0
    redone_per_run = []
    while True:
        before = Counter(int(x) for x in log.read_text().split()) if log.exists() else Counter()
        proc = start("job_worker", url, "crash", log, items, every, item_seconds)
        runs += 1
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()
        # kill after a random amount of progress (not of time: the machine's speed must
        # not decide how many kills a run gets)
        target = sum(before.values()) + rng.randint(5, 250)
        while proc.poll() is None and kills < 40 and \
                len(log.read_text().split()) < target:
            time.sleep(0.002)
        if proc.poll() is None and kills < 40:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, err = proc.communicate(timeout=120)
        after = Counter(int(x) for x in log.read_text().split())
        redone_per_run.append(sum(1 for i, c in after.items() if c > 1 and before[i] >= 1
                                  and after[i] > before[i]))
        logged = set(after)
        assert done_positions(url, "crash") <= logged, "an item was marked done but never processed"
        if proc.returncode == 0:
            assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": items}, err
            break
        assert proc.returncode == -signal.SIGKILL, err
        assert runs < 200
    final = Counter(int(x) for x in log.read_text().split())
    assert set(final) == set(range(items)), "every item was processed"
    assert kills >= 20
    # one checkpoint interval, one write in flight, +1 for the item in flight at the kill
    assert max(redone_per_run) <= 2 * every + 1, redone_per_run
    assert sum(redone_per_run) > 0, "kills landed between checkpoints"


def test_pause_and_cancel_from_another_process(tmp_path):
    url, log = str(tmp_path / "store"), tmp_path / "items.log"
    proc = start("job_worker", url, "ctl", log, 2000, 50, 0.005)
    assert proc.stdout.readline().strip() == "started"
    wait_for(lambda: len(log.read_text().split()) >= 20, "the job is mid-way", proc=proc)
    jobs.request(url, "ctl", "pause")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["status"] == "paused" and 0 < result["done"] < 2000
    processed = len(log.read_text().split())
    assert processed == result["done"], "the checkpoint holds exactly what was processed"

    # tracked again while the pause request stands: it stays paused and runs nothing
    proc = start("job_worker", url, "ctl", log, 2000, 50, 0.005)
    out, err = proc.communicate(timeout=30)
    assert json.loads(out.splitlines()[-1])["status"] == "paused"
    assert len(log.read_text().split()) == processed

    jobs.request(url, "ctl", "resume")
    proc = start("job_worker", url, "ctl", log, 2000, 50, 0.005)
    assert proc.stdout.readline().strip() == "started"
    wait_for(lambda: len(log.read_text().split()) >= processed + 20, "the job is mid-way again", proc=proc)
    jobs.request(url, "ctl", "cancel")
    out, err = proc.communicate(timeout=30)
    result = json.loads(out.splitlines()[-1])
    assert result["status"] == "cancelled" and processed < result["done"] < 2000
    assert len(log.read_text().split()) == result["done"]
    with pytest.raises(jobs.JobCancelled, match="ctl"):
        sessionkit.Job(url, "ctl").track(range(10))


def test_an_uncaught_error_in_a_script_marks_the_job_failed(tmp_path):
    url = str(tmp_path / "store")
    proc = start("failing_script", url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "disk full at item 42" in err
    job = sessionkit.Job(url, "fails")
    assert job.status == "failed" and job.done == 42
    assert "disk full" in job.progress.error


def test_text_view_on_a_pipe_prints_a_bounded_number_of_lines():
    proc = start("text_view", 1_000_000)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = err.splitlines()
    assert 2 <= len(lines) <= 15, lines
    assert "1000000/1000000" in lines[-1] and "completed" in lines[-1]


def test_a_loop_suspended_at_interpreter_exit_is_checkpointed_cleanly(tmp_path):
    url = str(tmp_path / "store")
    proc = start("suspended_at_exit", url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == "", err
    job = sessionkit.Job(url, "suspended")
    # items 0..28 finished (the loop asked for item 29); item 29 was in flight
    assert job.status == "paused" and job.done == 29


def test_done_positions_sees_what_a_checkpoint_wrote(tmp_path):
    url = str(tmp_path / "store")
    job = sessionkit.Job(url, "seen", checkpoint_items=10)
    for x in job.track(range(100), display=False):
        if x == 35:
            break
    assert done_positions(url, "seen") == set(range(35))


def test_a_job_opened_and_never_tracked_has_its_created_event_written_at_exit(tmp_path):
    url = str(tmp_path / "store")
    subprocess.run([sys.executable, "-c", f"import sessionkit; sessionkit.Job({url!r}, 'idle')"], check=True)
    from sessionkit import history

    kinds = list(history.load(url)["kind"])
    assert kinds == ["job.created"]
