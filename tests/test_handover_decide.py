"""The backup's decisions, from observations alone: no store, no clock, no thread."""

import itertools

import pytest

from sessionkit.handover.decide import (
    Act, ApprovalSeen, BackupStatus, Decision, LeaseSeen, Observation, decide,
)

S = BackupStatus


def seen(**kw):
    base = dict(job="train", wanted_job=None, request=None, lease=LeaseSeen.HELD)
    base.update(kw)
    if base["lease"] is not LeaseSeen.HELD:
        base.setdefault("job_finished", False)
        base.setdefault("turn_in", 0.0)
        base.setdefault("approval", ApprovalSeen.NOT_NEEDED)
    return Observation(**base)


@pytest.mark.parametrize("observation, expected", [
    (seen(job=None), Decision(S.WAITING_FOR_PRIMARY)),
    (seen(job=None, request="r1"), Decision(S.WAITING_FOR_PRIMARY)),  # nothing guarded: nothing answered
    (seen(wanted_job="other"), Decision(S.WATCHING, Act.REFUSE_OTHER_JOB)),
    (seen(wanted_job="train"), Decision(S.WATCHING)),
    (seen(request="r1"), Decision(S.WATCHING, answer="r1")),
    (seen(lease=LeaseSeen.FREE, job_finished=True), Decision(S.DONE)),
    (seen(lease=LeaseSeen.EXPIRED, job_finished=None), Decision(S.TAKING_OVER, Act.ACQUIRE)),
    (seen(lease=LeaseSeen.FREE, turn_in=3.0), Decision(S.WAITING_TURN)),
    (seen(lease=LeaseSeen.FREE, turn_in=3.0, request="r1"), Decision(S.WAITING_TURN, answer="r1")),
    (seen(lease=LeaseSeen.FREE, approval=ApprovalSeen.NOT_ASKED), Decision(S.APPROVAL_PENDING, Act.ASK_APPROVAL)),
    (seen(lease=LeaseSeen.FREE, approval=ApprovalSeen.PENDING), Decision(S.APPROVAL_PENDING)),
    (seen(lease=LeaseSeen.FREE, approval=ApprovalSeen.GRANTED), Decision(S.TAKING_OVER, Act.ACQUIRE)),
    (seen(lease=LeaseSeen.EXPIRED), Decision(S.TAKING_OVER, Act.ACQUIRE)),
])
def test_each_step_of_decide(observation, expected):
    assert decide(observation) == expected


def test_every_observation_gets_a_decision_that_keeps_the_safety_rules():
    """All combinations: a backup takes the lease only when it is free or expired, it is this
    backup's turn, approval is not missing, the job is the wanted one and not finished; it
    never asks for approval twice; it answers a request only for a guarded job."""
    for job, wanted, request, lease, finished, turn_in, approval in itertools.product(
            [None, "train"], [None, "train", "other"], [None, "r1"], list(LeaseSeen), [None, False, True],
            [None, -1.0, 0.0, 5.0], [None, *ApprovalSeen]):
        o = Observation(job, wanted, request, lease, finished, turn_in, approval)
        d = decide(o)
        assert isinstance(d.status, BackupStatus)
        if d.act is Act.ACQUIRE:
            assert lease is not LeaseSeen.HELD and job is not None and wanted in (None, job)
            assert not (lease is LeaseSeen.FREE and finished)
            assert turn_in is None or turn_in <= 0
            assert approval in (None, ApprovalSeen.NOT_NEEDED, ApprovalSeen.GRANTED)
            assert d.status is S.TAKING_OVER
        if d.act is Act.ASK_APPROVAL:
            assert approval is ApprovalSeen.NOT_ASKED
        if d.answer is not None:
            assert job is not None and wanted in (None, job) and d.answer == request
        if lease is LeaseSeen.HELD:
            assert d.status in (S.WAITING_FOR_PRIMARY, S.WATCHING)
        assert d.status is not S.PRIMARY  # PRIMARY only after acquiring


def test_statuses_read_as_the_words_views_show():
    assert S.WATCHING == "watching" and str(S.APPROVAL_PENDING) == "approval pending"
    assert {s.value for s in S} >= {"waiting for a primary", "watching", "approval pending", "taking over",
                                   "primary", "done"}
