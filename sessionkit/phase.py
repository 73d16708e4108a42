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
own clock. :func:`session_phase` is the phase of any session, live or not:

1. The session ended or was dropped: ``ended`` (no countdown runs; the page's rule never
   sees such a session: the Countdown shows how it ended instead).
2. Otherwise ``phase_of`` above.

``expired`` is a live session whose runtime's time is up (its record still beats: the
runtime outlived its stated limit); a session's own status never says "expired".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

__all__ = ["Phase", "PHASES", "Thresholds", "phase_of", "session_phase", "PHASE_JS"]


class Phase(str, Enum):
    """A session's phase; the value is the word views, records and events carry."""

    FRESH = "fresh"
    ACTIVE = "active"
    WARNING = "warning"
    HANDOVER = "handover"
    EXPIRED = "expired"
    ENDED = "ended"  # the session ended or was dropped (step 1 of session_phase)

    def __str__(self) -> str:
        return self.value


#: every phase's word, in the order a session goes through them
PHASES = tuple(p.value for p in Phase)


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


def phase_of(left: Optional[float], elapsed: float, thresholds: Thresholds) -> Phase:
    """The phase of an active session with ``left`` seconds to its limit (None: no limit)
    that started ``elapsed`` seconds ago."""
    if left is not None:
        if left <= 0:
            return Phase.EXPIRED
        if left <= thresholds.handover:
            return Phase.HANDOVER
        if left <= thresholds.warning:
            return Phase.WARNING
    return Phase.FRESH if elapsed < thresholds.fresh_for else Phase.ACTIVE


def session_phase(live: bool, left: Optional[float], elapsed: float, thresholds: Thresholds) -> Phase:
    """The phase of a session (steps in the module docstring); ``live``: its status is active."""
    if not live:  # 1
        return Phase.ENDED
    return phase_of(left, elapsed, thresholds)  # 2


#: ``phase_of`` for the page: ``skPhase(left, elapsed, th)`` with ``th`` = ``Thresholds.as_dict()``
PHASE_JS = """function skPhase(left, elapsed, th) {
  if (left !== null) {
    if (left <= 0) { return "expired"; }
    if (left <= th.handover) { return "handover"; }
    if (left <= th.warning) { return "warning"; }
  }
  return elapsed < th.fresh_for ? "fresh" : "active";
}"""
