"""README's headless commands, run as written (from a folder laid out like a checkout)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def readme_console_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_headless_commands_run_as_written(tmp_path):
    lines = readme_console_lines()
    assert len(lines) == 2 and all(line.startswith(".venv/bin/papermill ") for line in lines)
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "papermill").symlink_to(Path(sys.executable).parent / "papermill")
    for line in lines:
        done = subprocess.run(shlex.split(line), cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
    assert "completed, 40 done" in (tmp_path / "primary-out.ipynb").read_text()
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["progress.png", "throughput.png",
                                                                     "timeline.png"]
