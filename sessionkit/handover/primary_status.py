"""What a primary is doing: its statuses, what its loop saw, and a pure ``transition``.

A :class:`~.primary.Primary` keeps one :class:`PrimaryStatus`. Each time something
happens to its loop (it begins, the handover phase publishes a request, it ends one
way or another, the lease is lost, ``close()`` or a signal) it builds a
:class:`LoopSeen` and asks :func:`transition` for a :class:`PrimaryDecision`: the next
status and whether to release the lease. ``transition`` reads nothing and writes
nothing, so every change is listed and tested without a store, a clock or a thread
(tests/test_primary_status.py), in the shape of the backup's ``decide`` (decide.py):

    PRIMARY --(handover phase: request published)--> HANDING_OVER
    PRIMARY | HANDING_OVER --(loop returned)--> HANDED_OVER | COMPLETED | CANCELLED | STOPPED
                                                 (lease released) | PAUSED | FAILED (lease kept)
    PRIMARY | HANDING_OVER --(loop closed or raised)--> PAUSED | FAILED | COMPLETED | CANCELLED
    any --(lease lost)--> LEASE_LOST
    not an end --(close())--> CLOSED;  not an end --(signal, no loop running)--> STOPPED
    an end --(the loop runs again)--> PRIMARY | HANDING_OVER

The steps of ``transition``, in order:

1. The loop begins (again): PRIMARY, or HANDING_OVER when a request is already published.
2. The lease was lost: LEASE_LOST; nothing to release (another runtime may hold it).
3. ``close()`` or a stop signal while no loop runs: release the lease if held; an end
   stays as it was, anything else becomes CLOSED (close) or STOPPED (signal).
4. A handover request was published: HANDING_OVER (an end stays as it was).
5. The loop was closed early or raised: the job's status, as an end (a job left
   "running" is PAUSED when interrupted or closed, FAILED when it raised); lease kept.
6. The loop returned and a backup answered ready: HANDED_OVER, release (if still held).
7. ... the job completed or was cancelled: that status, release (if still held).
8. ... told to stop (SIGTERM, exit) while holding the lease: STOPPED, release and pass
   the signal on (stopping.pass_on).
9. ... otherwise: the job's status as an end (PAUSED, FAILED); the lease is kept, so
   running the cell again resumes here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["PrimaryStatus", "LoopEvent", "LoopSeen", "PrimaryAct", "PrimaryDecision", "transition", "RUNNING"]


class PrimaryStatus(str, Enum):
    """What a primary is doing; the value is what views and ``sessionkit status`` show."""

    PRIMARY = "primary"
    HANDING_OVER = "handing over"
    COMPLETED = "completed"
    HANDED_OVER = "handed over"
    LEASE_LOST = "lease lost"
    STOPPED = "stopped"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value

    @property
    def ended(self) -> bool:
        """The loop ended (how is the status); views show it as the last word."""
        return self not in RUNNING


#: statuses while the loop runs (every other status says how it ended)
RUNNING = frozenset({PrimaryStatus.PRIMARY, PrimaryStatus.HANDING_OVER})


class LoopEvent(Enum):
    """What just happened to the primary's loop."""

    BEGAN = "began"  # track/map/begin_external started (or ran again)
    REQUESTED = "requested"  # the handover phase published a request
    RETURNED = "returned"  # the loop ran out (or end_external): decide how it ended
    CLOSED = "closed"  # the loop was closed early (a break, an interrupt in its body, stop_now)
    RAISED = "raised"  # an exception left the loop
    LEASE_LOST = "lease lost"  # LeaseLost left the loop
    CLOSE = "close"  # Primary.close()
    SIGNALLED = "signalled"  # SIGTERM or exit while no loop runs (stop_now)


@dataclass(frozen=True)
class LoopSeen:
    """What the primary knew when ``event`` happened (read from its own objects, no I/O)."""

    event: LoopEvent
    job_status: str = "running"  # the job's status ("pending", "running", "paused", ...)
    requested: bool = False  # a handover request is published
    handed_over: bool = False  # a live backup answered the request ready
    stop_requested: bool = False  # stopping.requested(): SIGTERM or interpreter exit
    holds_lease: bool = True  # this primary still holds a token
    interrupted: bool = False  # RAISED: the exception was a KeyboardInterrupt


class PrimaryAct(Enum):
    """What the primary does after the status change."""

    NOTHING = "nothing"
    RELEASE = "release"  # mark the request released, publish "released", release the lease, end the session
    RELEASE_AND_PASS_ON = "release and pass on"  # release, then let the signal take its course


@dataclass(frozen=True)
class PrimaryDecision:
    status: PrimaryStatus
    act: PrimaryAct = PrimaryAct.NOTHING


_JOB_ENDS = {"completed": PrimaryStatus.COMPLETED, "cancelled": PrimaryStatus.CANCELLED,
             "failed": PrimaryStatus.FAILED, "paused": PrimaryStatus.PAUSED}


def _job_end(job_status: str, raised: bool) -> PrimaryStatus:
    """The job's status as an end of the loop; a job not (yet) at an end of its own
    ("running", "pending") paused when the loop was left without an error, failed with one."""
    found = _JOB_ENDS.get(str(getattr(job_status, "value", job_status)))
    if found is not None:
        return found
    return PrimaryStatus.FAILED if raised else PrimaryStatus.PAUSED


def transition(status: PrimaryStatus, seen: LoopSeen) -> PrimaryDecision:
    """The next status and act from ``status`` for what was seen (steps in the module docstring)."""
    event = seen.event
    if event is LoopEvent.BEGAN:  # 1
        return PrimaryDecision(PrimaryStatus.HANDING_OVER if seen.requested else PrimaryStatus.PRIMARY)
    if event is LoopEvent.LEASE_LOST:  # 2
        return PrimaryDecision(PrimaryStatus.LEASE_LOST)
    if event in (LoopEvent.CLOSE, LoopEvent.SIGNALLED):  # 3
        act = PrimaryAct.RELEASE if seen.holds_lease else PrimaryAct.NOTHING
        if status.ended:
            return PrimaryDecision(status, act)
        if not seen.holds_lease:
            return PrimaryDecision(status)
        return PrimaryDecision(PrimaryStatus.CLOSED if event is LoopEvent.CLOSE else PrimaryStatus.STOPPED, act)
    if event is LoopEvent.REQUESTED:  # 4
        return PrimaryDecision(status if status.ended else PrimaryStatus.HANDING_OVER)
    if event in (LoopEvent.CLOSED, LoopEvent.RAISED):  # 5
        raised = event is LoopEvent.RAISED and not seen.interrupted
        return PrimaryDecision(_job_end(seen.job_status, raised))
    release = PrimaryAct.RELEASE if seen.holds_lease else PrimaryAct.NOTHING
    if seen.handed_over:  # 6
        return PrimaryDecision(PrimaryStatus.HANDED_OVER, release)
    ended = _job_end(seen.job_status, raised=False)
    if ended in (PrimaryStatus.COMPLETED, PrimaryStatus.CANCELLED):  # 7
        return PrimaryDecision(ended, release)
    if seen.stop_requested and seen.holds_lease:  # 8
        return PrimaryDecision(PrimaryStatus.STOPPED, PrimaryAct.RELEASE_AND_PASS_ON)
    return PrimaryDecision(ended)  # 9
