"""The countdown's script, run by a real browser (headless Chromium) with virtual time."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time

import pytest

from sessionkit import Session
from sessionkit.clock import ScaledClock
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


def test_a_reopened_page_counts_from_the_deadline_not_from_its_first_drawing(monkeypatch):
    """Issue 12 (2): a page reloaded or reopened hours later showed the time left when the
    countdown was first drawn (9:01:04 when about 3:00:00 was left)."""
    import sessionkit.widgets.session as views

    s = Session(MemoryStore(), "primary", runtime="colab-free", start=False)
    s._mono_start -= 3 * 3600  # about 9 h left when drawn (the session counts from this process's start)
    drawn_hours_ago = 3.0
    then = views._wall_ms() - int(drawn_hours_ago * 3600 * 1000)
    monkeypatch.setattr(views, "_wall_ms", lambda: then)
    drawn = time.monotonic()
    left_when_drawn = s.remaining
    page = Countdown(s, notebook=True).html()
    monkeypatch.undo()
    left, phase = rendered_after(page, 100)
    waited = time.monotonic() - drawn  # the browser's start: minutes on a loaded machine
    h, m, sec = map(int, left.split(":"))
    shown = h * 3600 + m * 60 + sec
    expected = left_when_drawn - drawn_hours_ago * 3600
    # what was left when drawn, less the 3 h since and the real time the browser took to
    # start (its virtual time runs a few seconds ahead); never the 9 h first drawn
    assert phase == "active" and expected - waited - 10 <= shown <= expected + 1, (left, expected, waited)


def test_a_page_drawn_now_counts_from_the_browsers_own_clock():
    s = Session(MemoryStore(), "primary", runtime="colab-free", start=False)
    s._mono_start -= 3 * 3600
    expected = s.remaining  # about 9 h: the session counts from this process's start, not from now
    drawn = time.monotonic()
    left, phase = rendered_after(Countdown(s, notebook=True).html(), 100)
    took = time.monotonic() - drawn  # Chromium's start: a second, or a minute on a loaded machine
    hours, minutes, seconds = map(int, left.split(":"))
    shown = hours * 3600 + minutes * 60 + seconds
    # counting from a kernel time 3 h old would show about 6 h; the page's own timers run on
    # Chromium's virtual time, a few seconds ahead: allow 10 s beyond the wait
    assert expected - took - 10 <= shown <= expected + 1, f"{left}: {expected:.0f} s left, {took:.0f} s taken"
    assert phase == "active"


def test_an_ended_session_shows_how_it_ended_and_does_not_tick():
    s = Session(MemoryStore(), "primary", runtime="colab-free", clock=ScaledClock(720), start=False)
    s.end("completed")
    page = Countdown(s, notebook=True).html()
    assert "<script" not in page and "session ended: completed" in page


def test_the_pages_phase_is_the_sessions_with_its_measured_handover_lead():
    """Issue 26 (2): "1:44:51 left, active" beside the banner's "handover"."""
    s = Session(MemoryStore(), "primary", runtime="colab-free", start=False)
    s.handover_lead = 2 * 3600.0  # a handover measured to need 2 h
    s._mono_start -= s.remaining - 6300.0  # 1:45:00 left
    assert s.phase == "handover"
    assert rendered_after(Countdown(s, notebook=True).page(), 100)[1] == s.phase


def test_a_countdown_the_kernel_stopped_redrawing_says_stale_not_expired(monkeypatch):
    """Issue 26 (3): after a reload the countdown ran on to "00:00 left, expired" above
    "session ended: completed". A view not redrawn for STALE_AFTER_S says it is stale."""
    import sessionkit.widgets.session as views

    monkeypatch.setattr(views, "STALE_AFTER_S", 1.0)
    clock = ScaledClock(720)
    s = Session(MemoryStore(), "primary", runtime="colab-free", clock=clock, start=False)
    s._mono_start -= 10.9 * 3600  # 1.1 h left: expired after 5.5 s of the browser's time
    page = Countdown(s, notebook=True).page()
    assert rendered_after(page, 100)[1] == "active"
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/p.html", "w") as fh:
            fh.write(f"<html><body>{page}</body></html>")
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp}/profile", "--virtual-time-budget=8000",
                              "--dump-dom", f"file://{tmp}/p.html"], capture_output=True, text=True,
                             timeout=60).stdout
    assert re.search(r'class="sk-phase"[^>]*>stale<', dom) and "expired" not in dom.split("<script>")[0]
    assert "stale: not updated since" in dom and "run show_again in another notebook" in dom
