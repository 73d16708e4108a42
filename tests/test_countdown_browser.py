"""The countdown's script, run by a real browser (headless Chromium) with virtual time."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

import pytest

from sessionkit import ScaledClock, Session
from sessionkit.store.memory import MemoryStore
from sessionkit.widgets.session import Countdown

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed "
                                "(.ci/run installs Debian's chromium package)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def rendered_after(page: str, virtual_ms: int) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/countdown.html"
        with open(path, "w") as fh:
            fh.write(f"<html><body>{page}</body></html>")
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp}/profile",
                              f"--virtual-time-budget={virtual_ms}", "--dump-dom", f"file://{path}"],
                             capture_output=True, text=True, timeout=60).stdout
    left = re.search(r'class="sk-left">([^<]*)<', dom).group(1)
    phase = re.search(r'class="sk-phase"[^>]*>([^<]*)<', dom).group(1)
    return left, phase


def test_the_countdown_ticks_in_the_browser_through_the_phases():
    clock = ScaledClock(720)  # 1 browser second = 12 minutes
    s = Session(MemoryStore(), "primary", runtime="colab-free", clock=clock, start=False)
    s._mono_start -= 10.9 * 3600  # 1.1 h (3960 s) left
    page = Countdown(s, notebook=True).html()
    assert rendered_after(page, 100)[1] == "active"
    left, phase = rendered_after(page, 3000)  # 36 scaled minutes later
    minutes, seconds = map(int, left.split(":"))
    # at 720x a scaled minute is 83 ms of real time: allow the browser's timer jitter
    assert phase == "warning" and abs(minutes * 60 + seconds - 1800) <= 60, left
    assert rendered_after(page, 4500)[1] == "handover"  # 12 min left
    assert rendered_after(page, 8000) == ("00:00", "expired")
