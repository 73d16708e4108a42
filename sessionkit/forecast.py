"""Will the job finish in this runtime? A pure judgement from plain numbers.

The job's recent rate (an exponential moving average over the last few seconds, not
the average since the start) gives the time it still needs; the runtime's time left
less the *handover lead* (the measured time of a final checkpoint plus a backup's
takeover) is the time it may use. Verdicts:

- ``finishes``: it needs less than 90 % of the usable time;
- ``at risk``: it needs between 90 % and all of it;
- ``needs a handover``: it needs more than the usable time;
- ``done`` / ``unknown`` (no total or no rate yet).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional

__all__ = ["Forecast", "Verdict", "forecast"]

AT_RISK_MARGIN = 0.1  # within 10 % of the usable time counts as at risk


class Verdict(str, enum.Enum):
    FINISHES = "finishes in this runtime"
    AT_RISK = "at risk"
    NEEDS_HANDOVER = "needs a handover"
    DONE = "done"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Forecast:
    """Time the job still needs against the time its runtime has (clock seconds)."""

    finish_in: Optional[float]
    runtime_left: Optional[float]
    lead: float
    verdict: Verdict

    def text(self, per_real_second: float = 1.0) -> str:
        """The verdict and its two times; ``per_real_second``: the clock's seconds per real
        second, to give the times in real seconds on a scaled clock (720 on a x720 clock)."""
        if self.verdict in (Verdict.DONE, Verdict.UNKNOWN):
            return self.verdict.value
        if self.runtime_left is None:
            return f"{self.verdict.value} (no time limit)"
        real = (lambda s: None if s is None else s / per_real_second)
        return (f"{self.verdict.value}: needs {_short(real(self.finish_in))}, "
                f"runtime has {_short(real(self.runtime_left))}")


def forecast(done: int, total: Optional[int], rate: Optional[float], runtime_left: Optional[float],
             lead: float = 0.0) -> Forecast:
    """Judge ``total - done`` items at ``rate`` per second against ``runtime_left`` seconds,
    keeping ``lead`` seconds for a handover. ``runtime_left`` None: no limit."""
    if total is not None and done >= total:
        return Forecast(0.0, runtime_left, lead, Verdict.DONE)
    if total is None or not rate or rate <= 0:
        return Forecast(None, runtime_left, lead, Verdict.UNKNOWN)
    finish_in = (total - done) / rate
    if runtime_left is None:
        return Forecast(finish_in, None, lead, Verdict.FINISHES)
    usable = runtime_left - lead
    if finish_in <= usable * (1 - AT_RISK_MARGIN):
        verdict = Verdict.FINISHES
    elif finish_in <= usable:
        verdict = Verdict.AT_RISK
    else:
        verdict = Verdict.NEEDS_HANDOVER
    return Forecast(finish_in, runtime_left, lead, verdict)


def _short(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
