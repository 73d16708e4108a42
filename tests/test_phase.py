"""One phase rule (issue 26, item 2): the kernel's phase_of and the page's skPhase agree on
every row, and the page is handed the session's own thresholds, its handover lead included."""

import itertools
import json
import re
import shutil
import subprocess

import pytest

from sessionkit import Session
from sessionkit.clock import FakeClock
from sessionkit.phase import PHASE_JS, Thresholds, phase_of
from sessionkit.store.memory import MemoryStore
from sessionkit.widgets.session import Countdown

TH = Thresholds(warning=3600.0, handover_at=900.0, lead=0.0, fresh_for=300.0)
LEAD = Thresholds(warning=3600.0, handover_at=900.0, lead=7200.0, fresh_for=300.0)  # lead past warning


@pytest.mark.parametrize("left, elapsed, th, expected", [
    (0.0, 1000.0, TH, "expired"), (-5.0, 1000.0, TH, "expired"),
    (900.0, 1000.0, TH, "handover"), (901.0, 1000.0, TH, "warning"), (3600.0, 1000.0, TH, "warning"),
    (3601.0, 1000.0, TH, "active"), (3601.0, 299.0, TH, "fresh"), (None, 299.0, TH, "fresh"),
    (None, 300.0, TH, "active"),
    (5000.0, 1000.0, LEAD, "handover"), (7200.0, 1000.0, LEAD, "handover"), (7201.0, 1000.0, LEAD, "active"),
])
def test_each_row_of_phase_of(left, elapsed, th, expected):
    assert phase_of(left, elapsed, th) == expected


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node (V8, the engine of Chromium's pages) is not installed")
def test_the_pages_rule_is_the_kernels_on_every_row():
    """The page's countdown decides with skPhase; run it in V8 on a grid and compare."""
    rows = [(left, elapsed, th) for left, elapsed, th in itertools.product(
        [None, -1.0, 0.0, 1.0, 899.0, 900.0, 901.0, 3599.0, 3600.0, 3601.0, 7200.0, 7201.0, 1e5],
        [0.0, 299.9, 300.0, 1e4], [TH, LEAD, Thresholds(600.0, 0.0, 30.0, 0.0)])]
    script = PHASE_JS + "\nconst rows = " + json.dumps([[l, e, t.as_dict()] for l, e, t in rows]) + ";\n" \
        "console.log(JSON.stringify(rows.map(r => skPhase(r[0], r[1], r[2]))));"
    out = subprocess.run([NODE, "-e", script], capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out) == [phase_of(l, e, t) for l, e, t in rows]


def test_the_page_is_given_the_sessions_thresholds_with_its_handover_lead():
    """Issue 26: "1:44:51 left, active" beside the banner's "handover": the page used the fixed
    handover_at while the session's phase moved by its measured lead."""
    clock = FakeClock()
    session = Session(MemoryStore(), "primary", runtime="colab-free", clock=clock, start=False)
    session.handover_lead = 2 * 3600.0  # a final checkpoint and takeover measured at 2 h
    clock.advance(session.remaining - 6300.0)  # 1:45:00 left
    assert session.phase == "handover"
    page = Countdown(session, notebook=True).html()
    given = json.loads(re.search(r"th = (\{[^}]*\})", page).group(1))
    assert given["handover"] == 7200.0
    assert phase_of(6300.0, session.elapsed, Thresholds(**{k: given[k] for k in
                                                           ("warning", "handover_at", "lead", "fresh_for")})) \
        == "handover"
    assert 'data-phase="handover"' in page
