"""A session's phase, in one place: ``phase_of`` for the kernel and ``PHASE_JS``, the same
rule in JavaScript for the page's countdown (issue 26: the page used fixed thresholds
while the session moved the handover phase by its measured lead, so "active" stood
beside "handover"). The kernel hands :class:`Thresholds` to the page (``as_dict``);
tests/test_phase.py runs both on the same table.

    left <= 0                                   -> expired
    left <= max(handover_at, handover lead)     -> handover
    left <= warning_at                          -> warning
    elapsed < fresh_for                         -> fresh
    otherwise                                   -> active

(no limit: fresh, then active). ``left`` and ``elapsed`` are seconds of the session's
own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["Thresholds", "phase_of", "PHASE_JS"]


@dataclass(frozen=True)
class Thresholds:
    """Seconds left (of the session's clock) where the phases start."""

    warning: float
    handover_at: float  # the configured handover phase
    lead: float = 0.0  # what a handover measured it needs (a final checkpoint and a takeover)
    fresh_for: float = 300.0  # how long a new session is fresh

    @property
    def handover(self) -> float:
        """Where the handover phase really starts: the configured one or the lead, earlier."""
        return max(self.handover_at, self.lead)

    def as_dict(self) -> dict[str, float]:
        """What the page's countdown is given (and the session record carries)."""
        return {"warning": self.warning, "handover": self.handover, "handover_at": self.handover_at,
                "lead": self.lead, "fresh_for": self.fresh_for}


def phase_of(left: Optional[float], elapsed: float, thresholds: Thresholds) -> str:
    """The phase of an active session with ``left`` seconds to its limit (None: no limit)
    that started ``elapsed`` seconds ago."""
    if left is not None:
        if left <= 0:
            return "expired"
        if left <= thresholds.handover:
            return "handover"
        if left <= thresholds.warning:
            return "warning"
    return "fresh" if elapsed < thresholds.fresh_for else "active"


#: ``phase_of`` for the page: ``skPhase(left, elapsed, th)`` with ``th`` = ``Thresholds.as_dict()``
PHASE_JS = """function skPhase(left, elapsed, th) {
  if (left !== null) {
    if (left <= 0) { return "expired"; }
    if (left <= th.handover) { return "handover"; }
    if (left <= th.warning) { return "warning"; }
  }
  return elapsed < th.fresh_for ? "fresh" : "active";
}"""
