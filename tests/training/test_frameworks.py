"""Framework integrations, each with the real library (make test-training installs them):
a run stopped at a scaled-clock handover phase in one process and finished by a backup in
another, from the store, equals an uninterrupted run: the same batches in the same order,
no step twice or missing, equal final weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


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


@pytest.mark.parametrize("framework", ["transformers", "lightning"])
def test_a_handover_mid_training_equals_an_uninterrupted_run(framework, tmp_path):
    pytest.importorskip(framework)
    torch = pytest.importorskip("torch")
    ref_out, ho_out = tmp_path / "ref", tmp_path / "handover"
    ref_out.mkdir(), ho_out.mkdir()
    finish(start(framework, "alone", "-", tmp_path / "ref.log", ref_out))

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

    reference, handed = batches(tmp_path / "ref.log"), batches(log)
    by_primary = [ids for ids, pid in handed if pid == f"pid={first['pid']}"]
    by_backup = [ids for ids, pid in handed if pid == f"pid={second['pid']}"]
    assert 0 < len(by_primary) < 36 and by_primary + by_backup == [ids for ids, _ in reference], \
        "the backup goes on at the next batch: none repeated, none skipped, same order"
    final = torch.load(backup_out / "final.pt")
    expected = torch.load(ref_out / "final.pt")
    assert final.keys() == expected.keys()
    for name in expected:
        assert torch.equal(final[name], expected[name]), f"{name} differs from the uninterrupted run"
