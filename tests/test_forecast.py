"""Will it finish? The pure judgement, and a job on a fake clock whose rate drops."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sessionkit import Session
from sessionkit.clock import FakeClock
from sessionkit.runtimes import Runtime
from sessionkit.forecast import Verdict, forecast
from sessionkit.handover import Primary
from sessionkit.store.memory import MemoryStore
from sessionkit.widgets.text import describe


@pytest.mark.parametrize("done,total,rate,left,lead,verdict", [
    (10, 10, 1.0, 100, 0, Verdict.DONE),
    (0, None, 1.0, 100, 0, Verdict.UNKNOWN),
    (0, 10, None, 100, 0, Verdict.UNKNOWN),
    (0, 80, 1.0, 100, 0, Verdict.FINISHES),       # needs 80 of 100
    (0, 95, 1.0, 100, 0, Verdict.AT_RISK),        # needs 95 of 100: within the 10 % margin
    (0, 101, 1.0, 100, 0, Verdict.NEEDS_HANDOVER),
    (0, 80, 1.0, 100, 30, Verdict.NEEDS_HANDOVER),  # a handover needs 30 s of the 100
    (0, 10 ** 6, 1.0, None, 0, Verdict.FINISHES),  # no time limit
])
def test_verdicts(done, total, rate, left, lead, verdict):
    assert forecast(done, total, rate, left, lead).verdict is verdict


def test_a_job_whose_rate_drops_needs_a_handover_before_its_warning_phase():
    clock = FakeClock()
    primary = Primary(MemoryStore(), "job", runtime=Runtime(max_runtime=10 * 3600, name="ten-hours"),
                      clock=clock, ttl=4 * 3600)  # items of 30 min must not outlast the lease
    seen = []
    for item in primary.track(range(100), display=False):
        clock.advance(60 if item < 50 else 1800)  # a minute an item, then half an hour
        seen.append((item, primary.session.phase, primary.job.progress.forecast.verdict))
        if seen[-1][2] is Verdict.NEEDS_HANDOVER:
            break
    item, phase, verdict = seen[-1]
    assert verdict is Verdict.NEEDS_HANDOVER and phase in ("fresh", "active"), seen[-1]
    assert 50 <= item < 60, "noticed within a few items of the drop (a recent rate, not since start)"
    assert all(v is Verdict.FINISHES for i, _, v in seen if 5 <= i < 50)
    shown = describe(replace(primary.job.progress, status="running"))  # what the views print
    assert "needs a handover: needs" in shown and "runtime has" in shown
    primary.close()


def test_the_handover_phase_starts_early_enough_for_the_measured_lead():
    clock = FakeClock()
    session = Session(MemoryStore(), "primary", runtime=Runtime(max_runtime=10 * 3600), clock=clock, start=False)
    clock.advance(8 * 3600)  # 2 h left: warning (60 min) not yet, handover (15 min) not yet
    assert session.phase == "active"
    session.handover_lead = 3 * 3600  # a final checkpoint and a takeover take 3 h (say)
    assert session.phase == "handover"
