"""The notebooks' Colab branch, as a new user meets it: the primary on account A creates a
Drive store and prints what to give the backup; A shares the folder with account B; the
backup on B opens the folder's link; a planned handover and a killed-kernel takeover both
finish the job; the history notebook shows both runtimes.

Each notebook runs headless (papermill) in a real kernel that has a stand-in
``google.colab`` imported at start-up, as Colab's kernels have the real one
(tests/colab_standin: CI cannot reach Colab), signed in to the Drive emulator as A or B.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

import sessionkit
from sessionkit import history
from sessionkit.sessions import list_sessions

from conftest import drive_emulator
from support.colab import ColabAccount, finish, outputs, wait_for_store

papermill = pytest.importorskip("papermill")
pytest.importorskip("googleapiclient")
pytestmark = pytest.mark.slow


@pytest.fixture
def accounts(tmp_path):
    emulator = drive_emulator()
    tag = uuid.uuid4().hex[:6]
    return emulator, ColabAccount(emulator, tmp_path, f"colab-a-{tag}@example.com"), \
        ColabAccount(emulator, tmp_path, f"colab-b-{tag}@example.com")


def test_planned_handover_from_account_a_to_account_b(accounts, tmp_path):
    emulator, a, b = accounts
    job = f"nb-planned-{uuid.uuid4().hex[:6]}"
    # colab-free at 4000x: the handover phase (15 min left of 12 h) comes after about 11 s
    primary = a.run("primary", tmp_path / "primary.ipynb", JOB=job, TIME_SCALE=4000.0, LEASE_TTL=5.0,
                    ITEMS=800, ITEM_SECONDS=0.02, RELEASE_RUNTIME=True)
    folder = wait_for_store(emulator, job, a.email, primary)
    emulator.share(folder, b.email)  # what the user does with Drive's Share button
    link = f"https://drive.google.com/drive/folders/{folder}"
    backup = b.run("backup", tmp_path / "backup.ipynb", STORE=link, JOB=job, RUNTIME="local", TIME_SCALE=4000.0,
                   LEASE_TTL=5.0, ITEMS=800, ITEM_SECONDS=0.02, RELEASE_RUNTIME=True)
    finish(primary, "the primary notebook")
    finish(backup, "the backup notebook")

    printed = outputs(tmp_path / "primary.ipynb")
    assert f"for the backup: <code>STORE = 'gdrive://id/{folder}'</code>" in printed
    assert f"https://drive.google.com/drive/folders/{folder}" in printed
    assert "share this folder with that account as Editor" in printed
    assert "(handed over to the backup)" in printed
    assert "runtime kept" in printed and not a.unassigned.exists()  # its job was handed over, not done
    assert f"job {job}: completed, 800 done" in outputs(tmp_path / "backup.ipynb")
    assert b.unassigned.exists(), "the runtime that completed the job was released"

    store = b.store(folder)
    events = history.load(store)
    handovers = history.handovers(events)
    assert len(handovers) == 1 and bool(handovers["planned"].iloc[0])
    finish(b.run("history", tmp_path / "history.ipynb", STORE=store.url, OUT_DIR=tmp_path / "plots"),
           "the history notebook")
    assert sorted(os.listdir(tmp_path / "plots")) == ["progress.png", "throughput.png", "timeline.png"]


def test_killed_primary_kernel_is_taken_over_across_accounts(accounts, tmp_path):
    emulator, a, b = accounts
    job = f"nb-killed-{uuid.uuid4().hex[:6]}"
    primary = a.run("primary", tmp_path / "primary.ipynb", JOB=job, RUNTIME="local", LEASE_TTL=3.0,
                    ITEMS=400, ITEM_SECONDS=0.03)
    folder = wait_for_store(emulator, job, a.email, primary)
    emulator.share(folder, b.email)
    backup = b.run("backup", tmp_path / "backup.ipynb", STORE=f"gdrive://id/{folder}", JOB=job,
                   RUNTIME="local", LEASE_TTL=3.0, ITEMS=400, ITEM_SECONDS=0.03)
    watcher = a.store(folder)
    kernel_pid = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and kernel_pid is None:
        jobs = sessionkit.jobs.list(watcher)
        primaries = [s for s in list_sessions(watcher) if s.role == "primary" and s.job]
        if jobs and jobs[0].done >= 20 and primaries:
            kernel_pid = primaries[0].pid
        time.sleep(0.3)
    assert kernel_pid, "the primary notebook did not start its job"
    os.kill(kernel_pid, signal.SIGKILL)  # the primary's runtime dies mid-job
    primary.communicate(timeout=120)
    finish(backup, "the backup notebook")
    assert f"job {job}: completed, 400 done" in outputs(tmp_path / "backup.ipynb")
    events = history.load(b.store(folder))
    assert len(history.sessions(events)) == 2
    takeover = history.handovers(events)
    assert len(takeover) == 1 and not bool(takeover["planned"].iloc[0])
