"""templates/torch_training.py, a hand-written loop: stopped by a real SIGTERM mid-run it saves
model, optimizer, scheduler and RNGs with its step and exits; run again it goes on at the next
step and ends with exactly the weights of a run that was never stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "torch_training.py"


def run(store: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TEMPLATE), "--store", str(store), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_mid_training_then_a_rerun_equals_an_uninterrupted_run(tmp_path):
    ref = run(tmp_path / "ref-store", tmp_path / "ref.pt")
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-3000:]

    first = run(tmp_path / "store", tmp_path / "first.pt", "--step-seconds", "0.05")
    for line in first.stdout:  # type: ignore[union-attr]
        if line.startswith("saved step 20"):
            break
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGTERM, err[-3000:]  # saved, released, then the signal went on
    stopped = json.loads(out.strip().splitlines()[-1])
    assert stopped["stopped"] == "stopped (SIGTERM)" and 20 <= stopped["step"] < 64
    assert f"saved step {stopped['step']}" in out

    second = run(tmp_path / "store", tmp_path / "second.pt")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    assert out.splitlines()[0] == f"starting at step {stopped['step']} of 64"
    assert json.loads(out.strip().splitlines()[-1])["step"] == 64
    final, expected = torch.load(tmp_path / "second.pt"), torch.load(tmp_path / "ref.pt")
    for name in expected:
        assert torch.equal(final[name], expected[name]), f"{name} differs from the uninterrupted run"
    import sessionkit

    job = sessionkit.Job(tmp_path / "store", "my-training")
    assert job.status == "completed" and job.done == 64


def test_save_blob_refuses_a_whole_module_and_tensors_load_safely(tmp_path):
    import sessionkit

    job = sessionkit.Job(tmp_path / "s", "m")
    model = torch.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"model.state_dict\(\)"):
        job.save_blob("model", model)
    job.save_blob("weights", model.state_dict())
    job.checkpoint()
    loaded = sessionkit.Job(tmp_path / "s", "m").load_blob("weights")
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_load_state_restores_every_rng_and_names_what_is_missing(tmp_path):
    import random

    import numpy as np

    import sessionkit

    job = sessionkit.Job(tmp_path / "s", "r")
    model = torch.nn.Linear(2, 2)
    job.save_state(model=model, extra={"step": 5})
    job.checkpoint()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.random(), np.random.rand(), torch.rand(1)  # move every generator on
    again = sessionkit.Job(tmp_path / "s", "r")
    assert again.load_state(model=torch.nn.Linear(2, 2)) == {"step": 5}
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    with pytest.raises(sessionkit.errors.BlobError, match="has no optimizer"):
        again.load_state(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert sessionkit.Job(tmp_path / "s", "fresh").load_state(model=model) is None
