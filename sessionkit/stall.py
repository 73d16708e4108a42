"""Is a running job stalled? One pure ``decide_stall``, on real seconds.

A stall is a real-world event (a webhook alerts a person), so it is decided on real
seconds whatever the clock's scale: on a 720x demo clock a 0.5 s item is 6 minutes of
clock time, and measured on that clock a steady job looked stalled against the 5-minute
floor (issue 26). The caller (handover/primary.py) turns its clock's seconds into real
ones (``clock.clock_rate``; a FakeClock's seconds stand for real ones) and fills a
:class:`StallSeen`; ``decide_stall`` reads nothing else, so every case is a table row
(tests/test_stall.py).

    not running, or no item finished and none begun     -> not stalled
    idle >= stall_after (given), else
    idle >= max(MIN_STALL_AFTER, 10 x the mean item time) -> stalled
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["MIN_STALL_AFTER", "ITEMS_OF_SLACK", "StallSeen", "Stall", "decide_stall"]

MIN_STALL_AFTER = 300.0  # real seconds: a job is never called stalled sooner than this
ITEMS_OF_SLACK = 10.0  # by default, stalled after this many mean item times without an item


@dataclass(frozen=True)
class StallSeen:
    """One look at a job, in real seconds."""

    running: bool  # the job's loop runs and has begun (an item finished or the run began)
    idle_s: float  # real seconds since an item last finished (or the run began)
    item_s: Optional[float] = None  # the recent mean real seconds per item (None: no rate yet)
    stall_after_s: Optional[float] = None  # the user's stall_after (None: the default rule)


@dataclass(frozen=True)
class Stall:
    stalled: bool
    idle_s: float  # real seconds without an item (0 when not running)
    after_s: float  # the bound it was measured against (0 when not running)


def decide_stall(seen: StallSeen) -> Stall:
    """Stalled or not, and against which bound (module docstring)."""
    if not seen.running:
        return Stall(False, 0.0, 0.0)
    if seen.stall_after_s is not None:
        after = seen.stall_after_s
    else:
        after = max(MIN_STALL_AFTER, ITEMS_OF_SLACK * seen.item_s if seen.item_s else MIN_STALL_AFTER)
    return Stall(seen.idle_s >= after, seen.idle_s, after)
