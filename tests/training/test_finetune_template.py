"""templates/transformers_finetune.py (a tiny BERT built from a config, nothing downloaded):
stopped by a real SIGTERM mid-run it saves a Trainer checkpoint to the store and exits; run
again it resumes from that checkpoint and ends with exactly the weights of a run that was
never stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "transformers_finetune.py"


def run(tmp: Path, store: str, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(TEMPLATE), "--tiny", "--store", str(tmp / store), "--output-dir",
                             str(tmp / f"{name}-out"), "--out", str(tmp / f"{name}.pt"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_sigterm_mid_finetune_then_a_rerun_equals_an_uninterrupted_run(tmp_path):
    ref = run(tmp_path, "ref-store", "ref")
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-3000:]
    assert json.loads(out.strip().splitlines()[-1]) == {"step": 36, "stopped": None, "status": "completed"}

    first = run(tmp_path, "store", "first", "--step-seconds", "0.1")
    for line in first.stdout:  # type: ignore[union-attr]
        if line.strip() == "step 13":  # past the Trainer's own save at 10: the stop's save is another
            break
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGTERM, err[-3000:]  # saved, released, then the signal went on
    stopped_at = max([13] + [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")])
    assert 13 <= stopped_at < 36

    second = run(tmp_path, "store", "second")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    assert f"resuming from step {stopped_at}" in out, "the checkpoint saved on SIGTERM, not the Trainer's older one"
    assert json.loads(out.strip().splitlines()[-1]) == {"step": 36, "stopped": None, "status": "completed"}
    steps = [int(line.split()[1]) for line in out.splitlines() if line.startswith("step ")]
    assert steps == list(range(stopped_at + 1, 37)), "the re-run trains each remaining step once"

    final, expected = torch.load(tmp_path / "second.pt"), torch.load(tmp_path / "ref.pt")
    assert final.keys() == expected.keys()
    for name in expected:
        assert torch.equal(final[name], expected[name]), f"{name} differs from the uninterrupted run"
