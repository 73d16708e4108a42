"""Framework integrations, each with the real library (make test-training installs them):
a run stopped at a scaled-clock handover phase in one process and finished by a backup in
another, from the store, equals an uninterrupted run: the same batches in the same order,
no step twice or missing, equal final weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
os.environ.setdefault("KERAS_BACKEND", "torch")  # the one backend tests/training/requirements.txt installs


def start(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "_train.py"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(HERE.parents[1])})


def expect_line(proc: subprocess.Popen, start_of_line: str) -> str:
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith(start_of_line):
            return line
    raise AssertionError(f"no {start_of_line!r} line; stderr: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-4000:]
    return json.loads(out.strip().splitlines()[-1])


def batches(log: Path) -> list[tuple[list[int], str]]:
    rows = []
    for line in log.read_text().splitlines():
        *ids, pid = line.split()
        rows.append((list(map(int, ids)), pid))
    return rows


def sigterm_at_step(proc: subprocess.Popen, log: Path, step: int) -> str:
    """Send a real SIGTERM once the log shows ``step`` begun; the process's stderr once it ended."""
    while not log.exists() or len(log.read_text().splitlines()) < step:
        assert proc.poll() is None, proc.stderr.read()[-3000:]  # type: ignore[union-attr]
        time.sleep(0.05)  # polls the log
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=120)[1]


FRAMEWORKS = ["transformers", "lightning", "keras"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Each framework's uninterrupted run (batches logged, final weights), made once."""
    made: dict[str, Path] = {}

    def run(framework: str) -> Path:
        if framework not in made:
            out = tmp_path_factory.mktemp(f"ref-{framework}")
            finish(start(framework, "alone", "-", out / "ref.log", out))
            made[framework] = out
        return made[framework]
    return run


def assert_same_training(reference_dir: Path, log: Path, first_pid: int, second_pid: int, final: Path) -> int:
    """The two processes' batches are the reference's, in order, each once; the final weights
    are equal. Returns how many steps the first process trained."""
    import torch

    ref, handed = [ids for ids, _ in batches(reference_dir / "ref.log")], batches(log)
    by_first = [ids for ids, pid in handed if pid == f"pid={first_pid}"]
    by_second = [ids for ids, pid in handed if pid == f"pid={second_pid}"]
    assert 0 < len(by_first) < len(ref) and by_first + by_second == ref, \
        "the second process goes on at the next batch: none repeated, none skipped, same order"
    final_weights, expected = torch.load(final), torch.load(reference_dir / "final.pt")
    assert final_weights.keys() == expected.keys()
    for name in expected:
        assert torch.equal(final_weights[name], expected[name]), f"{name} differs from the uninterrupted run"
    return len(by_first)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("stop_at", [12, 17])
def test_a_rerun_after_a_stop_at_any_step_equals_an_uninterrupted_run(framework, stop_at, tmp_path, reference):
    """Stopped by the handover phase at an epoch's last step (12) and mid-epoch (17): each
    framework has its own path for the two (Keras saves the first as the epoch ends)."""
    pytest.importorskip(framework)
    ref = reference(framework)
    url, log = str(tmp_path / "store"), tmp_path / "run.log"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = finish(start(framework, f"stop-at-{stop_at}", url, log, tmp_path / "a"))
    assert first["status"] == "paused" and first["done"] == stop_at, first
    second = finish(start(framework, "rerun", url, log, tmp_path / "b"))
    assert second["status"] == "completed" and second["done"] == 36, second
    assert assert_same_training(ref, log, first["pid"], second["pid"], tmp_path / "b" / "final.pt") == stop_at


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_handover_mid_training_equals_an_uninterrupted_run(framework, tmp_path, reference):
    pytest.importorskip(framework)
    ref = reference(framework)
    ho_out = tmp_path / "handover"
    ho_out.mkdir()

    # An 1100 s runtime at 120x lasts 9.2 s; its handover phase (15 min left) comes 1.7 s after
    # the primary starts, early in training (36 steps of >= 0.12 s, after the framework's own
    # start-up: Lightning's takes over a second, and once a backup answers the primary stops).
    url, log = str(tmp_path / "store"), tmp_path / "handover.log"
    backup_out = ho_out / "backup"
    backup_out.mkdir()
    backup = start(framework, "backup", url, log, backup_out, 120, 0)
    expect_line(backup, "watching")
    primary = start(framework, "primary", url, log, ho_out, 120, 1100)
    first = finish(primary)
    second = finish(backup)
    assert first["handed_over"] and first["status"] == "paused" and first["state"] == "handed over", first
    assert second["status"] == "completed" and second["done"] == 36, second
    assert_same_training(ref, log, first["pid"], second["pid"], backup_out / "final.pt")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_sigterm_mid_training_saves_releases_and_a_rerun_equals_an_uninterrupted_run(framework, tmp_path, reference):
    """A real SIGTERM (Kaggle ending a session, ``docker stop``) at step >= 13: the callback
    saves at the end of the step, the lease is released at once (a backup need not wait out
    the ttl), the signal goes on and ends the process; a re-run resumes from that checkpoint."""
    pytest.importorskip(framework)
    from sessionkit import Job
    from sessionkit.lease import read_lease
    from sessionkit.store import open_store

    ref = reference(framework)
    url, log = str(tmp_path / "store"), tmp_path / "run.log"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = start(framework, "real-clock", url, log, tmp_path / "a")
    expect_line(first, "holding")
    err = sigterm_at_step(first, log, 13)
    # saved, released, then the signal goes on: to the default action (the process ends by it),
    # or with Lightning to its own handler, whose SIGTERMException (a SystemExit) ends fit and the process
    ends_by = 0 if framework == "lightning" else -signal.SIGTERM
    assert first.returncode == ends_by, f"saved, released, then the signal went on: {err[-4000:]}"
    assert "RecursionError" not in err, err[-4000:]
    store = open_store(url)
    lease = read_lease(store, "primary")
    assert lease is not None and lease.holder is None, f"the lease is released at once for a backup: {lease}"
    assert Job(store, "train").status == "paused"

    second = finish(start(framework, "real-clock", url, log, tmp_path / "b"))
    assert second["status"] == "completed" and second["done"] == 36, second
    assert assert_same_training(ref, log, first.pid, second["pid"], tmp_path / "b" / "final.pt") >= 13


def test_lightning_with_a_job_alone_saves_on_its_own_sigterm_and_a_rerun_equals_an_uninterrupted_run(tmp_path,
                                                                                                      reference):
    """Without a Primary sessionkit installs no SIGTERM handler, but Lightning does: the
    callback reads Lightning's flag at the end of the step and saves before fit ends."""
    pytest.importorskip("lightning")
    from sessionkit import Job

    ref = reference("lightning")
    url, log = str(tmp_path / "store"), tmp_path / "run.log"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = start("lightning", "job", url, log, tmp_path / "a")
    expect_line(first, "holding")
    err = sigterm_at_step(first, log, 13)
    assert first.returncode == 0, f"Lightning's SIGTERMException ends the script: {err[-4000:]}"
    job = Job(url, "train")
    assert job.status == "paused" and job.done >= 13, (job.status, job.done)

    second = finish(start("lightning", "rerun", url, log, tmp_path / "b"))
    assert second["status"] == "completed" and second["done"] == 36, second
    assert assert_same_training(ref, log, first.pid, second["pid"], tmp_path / "b" / "final.pt") == job.done
