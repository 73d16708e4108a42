"""Leases across real processes on a local folder store, ttl 2 s. How fast a takeover is
(ttl + 2 retry periods at most) is measured in ``make bench`` (benchmarks/bench_handover.py),
not here: these tests say what happens, in order, whatever the machine's load."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sessionkit
from sessionkit.jobs import list_jobs

from support.processes import wait_for

WORKERS = str(Path(__file__).parent / "support" / "workers.py")
TTL = 2.0
pytestmark = pytest.mark.slow


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WORKERS, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def holding(proc: subprocess.Popen) -> tuple[int, float]:
    line = proc.stdout.readline().split()
    assert line and line[0] == "holding", (line, proc.stderr.read() if proc.poll() is not None else "")
    return int(line[1]), float(line[2])


def logged(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_backup_takes_over_a_sigkilled_primary_and_finishes_its_job(tmp_path):
    url, log = str(tmp_path / "store"), tmp_path / "items.log"
    primary = start("lease_job", url, "primary-A", log, 60, 0.05, TTL)
    assert holding(primary)[0] == 1
    backup = start("lease_job", url, "backup-B", log, 60, 0.05, TTL)
    wait_for(lambda: logged(log) >= 10, "the primary is mid-job", proc=primary)  # the backup waits meanwhile
    killed_at = time.time()
    primary.send_signal(signal.SIGKILL)
    primary.wait()
    token, took_at = holding(backup)
    out, err = backup.communicate(timeout=60)
    assert token == 2 and took_at > killed_at, "the backup took over after the kill, not while A held"
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": 60}, err
    lines = [line.split() for line in log.read_text().splitlines()]
    assert {int(i) for i, _ in lines} == set(range(60))
    assert [j.token for j in list_jobs(url) if j.id == "work"] == [2], "the last checkpoint is the backup's"


def test_a_frozen_primary_that_wakes_after_a_takeover_writes_nothing(tmp_path):
    url, log = str(tmp_path / "store"), tmp_path / "items.log"
    primary = start("lease_job", url, "primary-A", log, 40, 0.05, TTL)
    assert holding(primary)[0] == 1
    wait_for(lambda: logged(log) >= 5, "the primary is mid-job", proc=primary)
    primary.send_signal(signal.SIGSTOP)  # frozen mid-job, as a VM can be
    backup = start("lease_job", url, "backup-B", log, 40, 0.02, TTL)
    assert holding(backup)[0] == 2
    out, err = backup.communicate(timeout=60)
    assert json.loads(out.splitlines()[-1])["status"] == "completed", err
    finished = sessionkit.open_store(url).get("jobs/work/manifest")
    primary.send_signal(signal.SIGCONT)  # wakes up believing nothing happened
    out, err = primary.communicate(timeout=30)
    assert "lost" in out, (out, err)
    assert sessionkit.open_store(url).get("jobs/work/manifest") == finished, "a stale write landed"
    tokens = [line.split()[1] for line in log.read_text().splitlines()]
    woke = tokens[tokens.index("2"):].count("1")
    # awake, it finishes the item it was frozen in, then stops at its next slow-path visit
    assert woke <= 1, f"the stale primary processed {woke} items after the takeover"
