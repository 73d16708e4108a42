"""``job.map`` across real processes (issue 29): a driver SIGKILLed mid-map, a planned
handover mid-map, and a Dask LocalCluster whose worker process is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import sessionkit
from sessionkit import Job

WORKERS = str(Path(__file__).parent / "support" / "workers.py")
pytestmark = pytest.mark.slow


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, limit: float = 120) -> None:
    """Until the log holds ``n`` lines (a condition, not a sleep); fail if the worker ended."""
    deadline = time.monotonic() + limit
    while not (path.exists() and path.read_text().count("\n") >= n):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.01)


def test_a_driver_sigkilled_mid_map_resumes_with_redo_within_the_bound(tmp_path):
    url, log, every, in_flight = str(tmp_path / "s"), tmp_path / "ran.log", 10, 8
    proc = start("map_job", url, log, 300, 0.005, every)
    assert proc.stdout.readline().strip() == "started"
    wait_for_lines(log, 120, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    again = start("map_job", url, log, 300, 0.005, every)
    out, err = again.communicate(timeout=120)
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": 300}, err
    runs = Counter(int(line) for line in log.read_text().split())
    assert set(runs) == set(range(300)), "nothing lost"
    redone = sum(runs.values()) - 300
    bound = in_flight + 2 * every + 1
    assert redone <= bound, f"{redone} items ran again (bound: {bound})"
    print(f"redone after SIGKILL: {redone} (bound {bound})")


def test_a_planned_handover_in_the_middle_of_a_map(tmp_path):
    # a 20-minute runtime at 120x lasts 10 s; its handover phase (15 min left) comes after 2.5 s
    url, log, ttl, scale = str(tmp_path / "s"), tmp_path / "items.log", 60.0, 120.0
    backup = start("handover_map_backup", url, log, 1000, 0.02, ttl, scale)
    assert backup.stdout.readline().split()[0] == "watching"
    primary = start("handover_map_primary", url, log, 1000, 0.02, ttl, scale, 1200)
    assert primary.stdout.readline().split()[0] == "holding"
    out, err = primary.communicate(timeout=90)
    result = json.loads(out.splitlines()[-1])
    assert result == {"status": "paused", "handed_over": True}, err
    out, err = backup.communicate(timeout=90)
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": 1000}, err
    rows = [line.split() for line in log.read_text().splitlines()]
    items = Counter(int(r[0]) for r in rows)
    assert set(items) == set(range(1000)) and max(items.values()) == 1, "every item exactly once"
    last_primary = max(float(r[3]) for r in rows if r[1] == "1")
    first_backup = min(float(r[2]) for r in rows if r[1] == "2")
    assert first_backup > last_primary, "the backup's items start after the primary's in flight ended"


def test_sigterm_mid_map_stops_submitting_drains_checkpoints_and_a_rerun_runs_only_what_is_not_done(tmp_path):
    """SIGTERM to a primary in the middle of a map on 4 threads (16 items in flight): it
    stops submitting, lets the items in flight finish (bounded), checkpoints, releases the
    lease and passes the signal on. A re-run in a new process submits only what is not
    done: every item done, none lost, and none run twice but those in flight at the stop."""
    url, log, items, in_flight = str(tmp_path / "s"), tmp_path / "items.log", 400, 16
    primary = start("sigterm_map_primary", url, log, items, 0.02, 20.0)
    assert primary.stdout.readline().split()[0] == "holding"
    wait_for_lines(log, 40, primary)
    primary.send_signal(signal.SIGTERM)
    primary.communicate(timeout=60)
    assert primary.returncode == -signal.SIGTERM, "the signal is passed on: the process ends"
    first = [line.split() for line in log.read_text().splitlines()]
    stopped = Job(url, "work")
    assert stopped.status == "paused" and 40 <= stopped.done < items, "submitting stopped, progress kept"
    assert len(first) - stopped.done <= in_flight, "what ran and is not done is at most what was in flight"
    rerun = start("sigterm_map_primary", url, log, items, 0.02, 20.0)
    out, err = rerun.communicate(timeout=120)
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": items}, err
    runs = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert set(runs) == set(range(items)), "nothing lost"
    assert sum(runs.values()) - items <= in_flight, "only what was in flight at the stop ran again"
    print(f"SIGTERM mid-map: {len(first)} ran, {stopped.done} done; {sum(runs.values()) - items} ran again")


def test_a_dask_cluster_loses_a_worker_process_mid_map_and_no_item_is_lost(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    try:
        def work(x):  # pickled by value: the worker processes need no test module
            import time as t
            t.sleep(0.02)
            return x * x

        client.wait_for_workers(2, timeout=120)
        pids = client.run(os.getpid)
        assert len(pids) == 2, pids
        job = Job(sessionkit.open_store(str(tmp_path / "s")), "dask", checkpoint_items=10)
        results, killed = {}, False
        for item, result in job.map(work, range(200), executor=client.get_executor(), display=False):
            results[item] = result
            if len(results) == 40 and not killed:
                os.kill(next(iter(pids.values())), signal.SIGKILL)  # a worker process dies
                killed = True
        assert killed and job.status == "completed" and job.done == 200
        assert results == {x: x * x for x in range(200)}, "every item's result, none lost"
    finally:
        client.close()
        cluster.close()
