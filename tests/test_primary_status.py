"""The primary's status changes, from what its loop saw alone: no store, no clock, no thread."""

import itertools

import pytest

from sessionkit.handover.primary_status import (
    RUNNING, LoopEvent, LoopSeen, PrimaryAct, PrimaryDecision, PrimaryStatus, transition,
)

S, E, A = PrimaryStatus, LoopEvent, PrimaryAct


def seen(event, **kw):
    return LoopSeen(event, **kw)


@pytest.mark.parametrize("status, observation, expected", [
    # 1: the loop begins (again)
    (S.PRIMARY, seen(E.BEGAN), PrimaryDecision(S.PRIMARY)),
    (S.PAUSED, seen(E.BEGAN), PrimaryDecision(S.PRIMARY)),  # the cell runs again: resumes
    (S.PAUSED, seen(E.BEGAN, requested=True), PrimaryDecision(S.HANDING_OVER)),
    # 2: the lease was lost
    (S.PRIMARY, seen(E.LEASE_LOST), PrimaryDecision(S.LEASE_LOST)),
    (S.HANDING_OVER, seen(E.LEASE_LOST, handed_over=True), PrimaryDecision(S.LEASE_LOST)),
    # 3: close() and a signal outside the loop
    (S.PRIMARY, seen(E.CLOSE), PrimaryDecision(S.CLOSED, A.RELEASE)),
    (S.PAUSED, seen(E.CLOSE), PrimaryDecision(S.PAUSED, A.RELEASE)),  # an end stays
    (S.COMPLETED, seen(E.CLOSE, holds_lease=False), PrimaryDecision(S.COMPLETED)),
    (S.PRIMARY, seen(E.CLOSE, holds_lease=False), PrimaryDecision(S.PRIMARY)),
    (S.PRIMARY, seen(E.SIGNALLED), PrimaryDecision(S.STOPPED, A.RELEASE)),
    (S.PAUSED, seen(E.SIGNALLED), PrimaryDecision(S.PAUSED, A.RELEASE)),
    # 4: the handover phase published a request
    (S.PRIMARY, seen(E.REQUESTED, requested=True), PrimaryDecision(S.HANDING_OVER)),
    (S.LEASE_LOST, seen(E.REQUESTED, requested=True), PrimaryDecision(S.LEASE_LOST)),
    # 5: closed early or raised: the job's status; a job left running paused or failed
    (S.PRIMARY, seen(E.CLOSED, job_status="paused"), PrimaryDecision(S.PAUSED)),
    (S.PRIMARY, seen(E.CLOSED, job_status="running"), PrimaryDecision(S.PAUSED)),
    (S.PRIMARY, seen(E.CLOSED, job_status="running", handed_over=True), PrimaryDecision(S.PAUSED)),
    (S.PRIMARY, seen(E.RAISED, job_status="running"), PrimaryDecision(S.FAILED)),
    (S.PRIMARY, seen(E.RAISED, job_status="running", interrupted=True), PrimaryDecision(S.PAUSED)),
    (S.PRIMARY, seen(E.RAISED, job_status="cancelled"), PrimaryDecision(S.CANCELLED)),
    # 6-9: the loop returned
    (S.HANDING_OVER, seen(E.RETURNED, job_status="paused", handed_over=True),
     PrimaryDecision(S.HANDED_OVER, A.RELEASE)),
    (S.PRIMARY, seen(E.RETURNED, job_status="completed"), PrimaryDecision(S.COMPLETED, A.RELEASE)),
    (S.PRIMARY, seen(E.RETURNED, job_status="cancelled"), PrimaryDecision(S.CANCELLED, A.RELEASE)),
    (S.PRIMARY, seen(E.RETURNED, job_status="paused", stop_requested=True),
     PrimaryDecision(S.STOPPED, A.RELEASE_AND_PASS_ON)),
    (S.PRIMARY, seen(E.RETURNED, job_status="completed", stop_requested=True),
     PrimaryDecision(S.COMPLETED, A.RELEASE)),  # done first: nothing left to hand over
    (S.PRIMARY, seen(E.RETURNED, job_status="paused", stop_requested=True, holds_lease=False),
     PrimaryDecision(S.PAUSED)),  # stop_now released already
    (S.PRIMARY, seen(E.RETURNED, job_status="paused"), PrimaryDecision(S.PAUSED)),
    (S.PRIMARY, seen(E.RETURNED, job_status="failed"), PrimaryDecision(S.FAILED)),
    (S.PRIMARY, seen(E.RETURNED, job_status="running"), PrimaryDecision(S.PAUSED)),
])
def test_each_step_of_transition(status, observation, expected):
    assert transition(status, observation) == expected


def test_every_observation_keeps_the_safety_rules():
    """All combinations: the lease is released only at a handover, a finished job, a stop
    or a close, and only while held; a lost lease is never released; a loop that ran out
    never stays running; beginning always runs; the job's own end is never overwritten by
    "handed over" unless a backup answered ready."""
    for status, event, job_status, requested, handed, stop, holds, interrupted in itertools.product(
            list(S), list(E), ["pending", "running", "paused", "completed", "failed", "cancelled"],
            [False, True], [False, True], [False, True], [False, True], [False, True]):
        o = LoopSeen(event, job_status, requested, handed, stop, holds, interrupted)
        d = transition(status, o)
        assert isinstance(d.status, S)
        if d.act is not A.NOTHING:
            assert holds, o
            assert event in (E.RETURNED, E.CLOSE, E.SIGNALLED), o
        if event is E.LEASE_LOST:
            assert d == PrimaryDecision(S.LEASE_LOST)
        if event is E.BEGAN:
            assert d.status in RUNNING and d.act is A.NOTHING
        if event in (E.RETURNED, E.CLOSED, E.RAISED):
            assert d.status.ended, o
        if d.status is S.HANDED_OVER and status is not S.HANDED_OVER:
            assert handed and event is E.RETURNED
        if d.act is A.RELEASE_AND_PASS_ON:
            assert stop and d.status is S.STOPPED
        if status.ended and event in (E.REQUESTED, E.CLOSE, E.SIGNALLED):
            assert d.status is status  # an end is the last word until the loop runs again


def test_statuses_read_as_the_words_views_show():
    assert S.HANDING_OVER == "handing over" and str(S.HANDED_OVER) == "handed over"
    assert {s.value for s in S} == {"primary", "handing over", "completed", "handed over", "lease lost",
                                   "stopped", "paused", "cancelled", "failed", "closed"}
    assert {s for s in S if not s.ended} == RUNNING == {S.PRIMARY, S.HANDING_OVER}


def test_a_loop_that_returns_after_its_lease_was_released_releases_nothing():
    """stop_now released the lease before the loop ran out: no second release."""
    assert transition(S.HANDING_OVER, seen(E.RETURNED, handed_over=True, holds_lease=False)) == \
        PrimaryDecision(S.HANDED_OVER)
    assert transition(S.PRIMARY, seen(E.RETURNED, job_status="completed", holds_lease=False)) == \
        PrimaryDecision(S.COMPLETED)
