"""A job's status: its values, what can happen to it, and a pure ``decide``.

Every change of a job's status goes through :func:`decide`: ``Job`` (job.py) builds
an :class:`Observation` (the status now and what happened), asks for a
:class:`Decision`, and carries it out (the manifest, a ``job.status`` event, the
elapsed time). ``decide`` reads nothing and writes nothing, so every transition
can be listed and tested without a store, a clock or a thread
(tests/test_job_status.py), as the backup's ``handover/decide.py``:

    PENDING --(a run starts)--> RUNNING
    RUNNING --(the items ran out)--> COMPLETED
    RUNNING --(a pause or cancel request; a stop: handover, SIGTERM)--> PAUSED | CANCELLED
    RUNNING --(the loop was left early: break, an error, Ctrl-C)--> LEFT_EARLY
    LEFT_EARLY --(no error, Ctrl-C)--> PAUSED      (outcome.py learns which)
    LEFT_EARLY --(an error)--> FAILED
    PAUSED | FAILED | COMPLETED --(a run starts)--> RUNNING
    any but CANCELLED --(job.set_status)--> what TRANSITIONS allows

``LEFT_EARLY`` lives in memory only: the manifest stores it as "running" (the
documented status of a job whose loop was left and whose outcome is not known yet),
so the status strings in the store are the six of ``STATUSES``, read and written
as before.

The steps of ``decide``, in order:

1. The lease was lost: nothing changes (the new holder owns the record), but a loop
   left early no longer waits for its outcome (RUNNING, as stored; nothing is written).
2. How a loop that was left ended (an error, Ctrl-C, or nothing seen): recorded only
   while the job is running or left early (failed, or paused); otherwise nothing changes.
3. The loop was left early while running: LEFT_EARLY.
4. The loop ran to the end of its items while running: COMPLETED.
5. A run starts: RUNNING, from any status but CANCELLED (refused).
6. A pause or cancel request, or a stop: PAUSED or CANCELLED where ``TRANSITIONS``
   allows it from the status now; elsewhere nothing changes (a paused job asked to pause).
7. A caller names the status (``job.set_status``): the same status changes nothing;
   one ``TRANSITIONS`` allows is taken; any other is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

__all__ = ["JobStatus", "Happened", "Observation", "Decision", "decide", "STATUSES", "ACTIVE", "FINISHED",
           "TRANSITIONS"]


class JobStatus(str, Enum):
    """A job's status; the value is what the manifest stores and views show."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: running, but the loop was left early (a break, an error in its body, Ctrl-C) and how
    #: it ended is not known yet; stored as "running" (see the module docstring)
    LEFT_EARLY = "running, left early"

    def __str__(self) -> str:
        return self.value

    @property
    def stored(self) -> "JobStatus":
        """The status the manifest stores for this one."""
        return JobStatus.RUNNING if self is JobStatus.LEFT_EARLY else self


#: the statuses a manifest stores (the strings are the on-store format)
STATUSES = tuple(s.value for s in JobStatus if s is not JobStatus.LEFT_EARLY)
ACTIVE = ("running", "paused")
FINISHED = ("completed", "failed", "cancelled")
#: what ``job.set_status`` may move a stored status to
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "paused", "cancelled"}),
    "running": frozenset({"paused", "completed", "failed", "cancelled"}),
    "paused": frozenset({"running", "cancelled"}),
    "failed": frozenset({"running", "cancelled"}),
    "completed": frozenset({"running"}),  # new items appeared in the source
    "cancelled": frozenset(),
}


class Happened(Enum):
    """What happened to the job."""

    LEASE_LOST = "lease lost"
    ERROR = "error"  # the left loop's body raised (or a framework's training)
    INTERRUPTED = "interrupted"  # Ctrl-C
    UNSEEN = "loop left early"  # the process ended, or a cell ended, with no error seen
    LEFT = "left"  # the loop was closed before its items ran out
    EXHAUSTED = "exhausted"  # the loop ran to the end of its items
    START = "start"  # a run starts (track, map, a framework's begin)
    REQUEST = "request"  # a pause or cancel request (target: PAUSED or CANCELLED)
    STOP = "stop"  # the loop stops for a reason of its runtime (handover, SIGTERM): PAUSED
    SET = "set"  # job.set_status(target)


@dataclass(frozen=True)
class Observation:
    status: JobStatus  # the status now
    happened: Happened
    target: Optional[JobStatus] = None  # REQUEST and SET: the status asked for


@dataclass(frozen=True)
class Decision:
    status: JobStatus  # the status after (the same one: nothing changes)
    refused: bool = False  # the change asked for is not allowed (status is the one now)


_RUNS = (JobStatus.RUNNING, JobStatus.LEFT_EARLY)
_OUTCOMES = {Happened.ERROR: JobStatus.FAILED, Happened.INTERRUPTED: JobStatus.PAUSED,
             Happened.UNSEEN: JobStatus.PAUSED}


def decide(seen: Observation) -> Decision:
    """The status after what was seen (steps in the module docstring)."""
    now, happened, target = seen.status, seen.happened, seen.target
    stay = Decision(now)
    if happened is Happened.LEASE_LOST:  # 1
        return Decision(now.stored)
    if happened in _OUTCOMES:  # 2
        return Decision(_OUTCOMES[happened]) if now in _RUNS else stay
    if happened is Happened.LEFT:  # 3
        return Decision(JobStatus.LEFT_EARLY) if now is JobStatus.RUNNING else stay
    if happened is Happened.EXHAUSTED:  # 4
        return Decision(JobStatus.COMPLETED) if now is JobStatus.RUNNING else stay
    if happened is Happened.START:  # 5
        return Decision(now, refused=True) if now is JobStatus.CANCELLED else Decision(JobStatus.RUNNING)
    if happened in (Happened.REQUEST, Happened.STOP):  # 6
        wanted = JobStatus.PAUSED if happened is Happened.STOP else target
        if wanted not in (JobStatus.PAUSED, JobStatus.CANCELLED):
            raise ValueError(f"a request pauses or cancels a job, not {wanted!r}")
        return Decision(wanted) if wanted.value in TRANSITIONS[now.stored.value] else stay
    if target is None or target is JobStatus.LEFT_EARLY:  # 7
        raise ValueError(f"set_status names one of {', '.join(STATUSES)}, got {target!r}")
    if target is now.stored:
        return Decision(now)
    if target.value in TRANSITIONS[now.stored.value]:
        return Decision(target)
    return Decision(now, refused=True)


def allowed(status: JobStatus) -> tuple[str, ...]:
    """The statuses ``job.set_status`` may move ``status`` to (for error messages)."""
    return tuple(sorted(TRANSITIONS[status.stored.value]))
