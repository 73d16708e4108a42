"""README's first screen, and the headless commands docs/notebooks.md shows, run as written
(from a folder laid out like a checkout)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def console_lines(page: str) -> list[str]:
    text = (ROOT / page).read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_is_one_screen_with_the_two_commands_a_picture_and_the_colab_steps():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 45
    assert "make demo\nmake test\n" in text
    pictures = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", text)
    assert pictures == ["docs/views.png"] and (ROOT / pictures[0]).stat().st_size > 10_000
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import build
    finally:
        sys.path.pop(0)
    assert build.readme_links() in text, "README's Colab links are not what notebooks/build.py writes"
    assert build.colab_url("primary").startswith("https://colab.research.google.com/github/")
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_every_docs_page_links_back_to_files_that_exist():
    for page in (ROOT / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+\.(?:md|png))", page.read_text()):
            assert (page.parent / link).resolve().is_file(), f"{page.name} links to {link}, which does not exist"


@pytest.mark.slow
def test_the_headless_commands_in_docs_run_as_written(tmp_path):
    lines = console_lines("docs/notebooks.md")
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
