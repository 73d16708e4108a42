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


def test_a_frozen_layer_is_shared_with_the_last_save_and_every_generation_loads_as_saved(tmp_path):
    """A fine-tune whose base is frozen: after the first save, a save copies only the
    trained layer's tensors (``copied_bytes``), and each kept generation loads with exactly
    the weights of its step (``torch.equal``), bfloat16 and a -0.0 included."""
    import sessionkit

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 256).to(torch.bfloat16))
    for p in model[0].parameters():
        p.requires_grad_(False)
    job = sessionkit.Job(tmp_path / "s", "ft", keep_blobs=3)
    expected = {}
    trained = sum(p.numel() * p.element_size() for p in model[1].parameters())
    for step in range(1, 5):
        with torch.no_grad():
            model[1].weight.add_(0.5)
            model[1].bias[0] = -0.0 if step % 2 else 0.0
        expected[step] = {k: v.clone() for k, v in model.state_dict().items()}
        handle = job.save_blob("model", {"step": step, "weights": model.state_dict()})
        assert handle.copied_bytes == (handle.captured_bytes if step == 1 else trained), step
        job.checkpoint(done=step)
    assert job.wait_saved(60)
    from sessionkit.jobs import chunks
    from sessionkit.jobs.manifest import load

    for entry in load(job.store, "ft").manifest.blobs["model"]:
        loaded = chunks.load_object(job.store, "ft", entry)
        assert type(loaded["weights"]) is type(model.state_dict())  # an OrderedDict, its versions kept
        assert loaded["weights"]._metadata == model.state_dict()._metadata
        for name, tensor in expected[loaded["step"]].items():
            assert torch.equal(loaded["weights"][name].view(torch.uint8) if tensor.dtype == torch.bfloat16 else
                               loaded["weights"][name], tensor.view(torch.uint8) if tensor.dtype == torch.bfloat16
                               else tensor), (loaded["step"], name)
