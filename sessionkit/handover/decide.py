"""What a backup does next: its states, what it observed, and a pure ``decide``.

A backup's loop (backup.py) reads the store into an :class:`Observation`, asks
:func:`decide` for a :class:`Decision`, and carries it out. ``decide`` reads nothing
and writes nothing, so every transition can be listed and tested without a store,
a clock or a thread (docs/decisions.md has the diagram):

    WAITING_FOR_PRIMARY --(a job is guarded)--> WATCHING
    WATCHING --(lease free or expired)--> WAITING_TURN | APPROVAL_PENDING | TAKING_OVER
    WAITING_TURN --(its rank's grace passed)--> APPROVAL_PENDING | TAKING_OVER
    APPROVAL_PENDING --(granted)--> TAKING_OVER
    TAKING_OVER --(acquired)--> PRIMARY          (ends the watch: a Primary runs the job)
    TAKING_OVER --(another backup won)--> WATCHING
    any --(lease free, job finished)--> DONE     (ends the watch)

The steps of ``decide``, in order (like client-go's ``tryAcquireOrRenew``):

1. No job guarded by the lease yet: wait for a primary.
2. The guarded job is not the one this backup is for: refuse (nothing taken).
3. Answer an open handover request this backup has not answered (in any state below).
4. The lease is held and not expired on this backup's clock: watch.
5. The lease is free and the job finished: done.
6. A backup of higher priority is alive and its head start has not passed: wait its turn.
7. Approval is required and not granted: ask once, then wait for it.
8. Take the lease.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional

__all__ = ["BackupStatus", "LeaseSeen", "ApprovalSeen", "Act", "Observation", "Decision", "decide"]


class BackupStatus(str, Enum):
    """What a backup is doing; the value is what views and ``sessionkit status`` show."""

    WAITING_FOR_PRIMARY = "waiting for a primary"
    WATCHING = "watching"
    WAITING_TURN = "waiting for its turn"
    APPROVAL_PENDING = "approval pending"
    TAKING_OVER = "taking over"
    PRIMARY = "primary"
    DONE = "done"

    def __str__(self) -> str:
        return self.value


class LeaseSeen(Enum):
    """The lease as this backup sees it, on its own clock."""

    HELD = "held"  # a holder renews it (or a damaged record has not lain still for ttl)
    EXPIRED = "expired"  # a holder's record has not changed for ttl: the holder is gone
    FREE = "free"  # released: no holder


class ApprovalSeen(Enum):
    """This backup's approval, as last read."""

    NOT_NEEDED = "not needed"
    NOT_ASKED = "not asked"
    PENDING = "pending"
    GRANTED = "granted"


class Act(Enum):
    """What the loop does after deciding (besides answering a request)."""

    NOTHING = "nothing"
    REFUSE_OTHER_JOB = "refuse other job"
    ASK_APPROVAL = "ask approval"
    ACQUIRE = "acquire"


@dataclass(frozen=True)
class Observation:
    """What one look at the store showed. Fields the loop only reads when the lease is
    available (``job_finished``, ``turn_in``, ``approval``) are None otherwise."""

    job: Optional[str]  # the job the lease guards (None: no primary has run one here)
    wanted_job: Optional[str]  # the job this backup is for (None: whichever)
    request: Optional[str]  # an open handover request's id that this backup has not answered
    lease: LeaseSeen
    job_finished: Optional[bool] = None
    turn_in: Optional[float] = None  # seconds until this backup's turn (<= 0: its turn)
    approval: Optional[ApprovalSeen] = None

    @property
    def lease_available(self) -> bool:
        return self.lease is not LeaseSeen.HELD


@dataclass(frozen=True)
class Decision:
    status: BackupStatus
    act: Act = Act.NOTHING
    answer: Optional[str] = None  # a request id to answer "ready"


def decide(seen: Observation) -> Decision:
    """The next status and act for what was seen (steps in the module docstring)."""
    if seen.job is None:  # 1
        return Decision(BackupStatus.WAITING_FOR_PRIMARY)
    if seen.wanted_job is not None and seen.job != seen.wanted_job:  # 2
        return Decision(BackupStatus.WATCHING, Act.REFUSE_OTHER_JOB)
    answer = seen.request  # 3
    if not seen.lease_available:  # 4
        return Decision(BackupStatus.WATCHING, answer=answer)
    if seen.lease is LeaseSeen.FREE and seen.job_finished:  # 5
        return Decision(BackupStatus.DONE, answer=answer)
    if seen.turn_in is not None and seen.turn_in > 0:  # 6
        return Decision(BackupStatus.WAITING_TURN, answer=answer)
    if seen.approval is ApprovalSeen.NOT_ASKED:  # 7
        return Decision(BackupStatus.APPROVAL_PENDING, Act.ASK_APPROVAL, answer)
    if seen.approval is ApprovalSeen.PENDING:
        return Decision(BackupStatus.APPROVAL_PENDING, answer=answer)
    return Decision(BackupStatus.TAKING_OVER, Act.ACQUIRE, answer)  # 8
