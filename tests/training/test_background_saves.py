"""Background saves with torch (issue 30): a SIGKILL during an upload leaves the previous whole
generation loadable, and the run resumed from it ends with exactly the weights of an
uninterrupted run (the same batches: the data order is a function of the step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
WORKER = Path(__file__).resolve().parent / "_saves_worker.py"


def run(store: Path, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), str(store), str(out), str(kill_at)], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("kill_at", [2, 4, 7])
def test_a_sigkill_during_an_upload_then_a_resume_equals_an_uninterrupted_run(tmp_path, kill_at):
    ref = run(tmp_path / "ref", tmp_path / "ref.pt", 0)
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = run(tmp_path / "s", tmp_path / "never.pt", kill_at)
    assert killed.returncode == -9, killed.stderr[-3000:]
    import sessionkit

    job = sessionkit.Job(tmp_path / "s", "train")
    assert job.done % 8 == 0  # a whole generation, the one of its own step (or none yet)
    again = run(tmp_path / "s", tmp_path / "again.pt", 0)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[0] == f"start {job.done}"
    final, expected = torch.load(tmp_path / "again.pt"), torch.load(tmp_path / "ref.pt")
    for name in expected:
        assert torch.equal(final[name], expected[name]), f"{name} differs from the uninterrupted run"
