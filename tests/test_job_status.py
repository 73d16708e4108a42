"""A job's status machine, from observations alone: no store, no clock, no thread."""

import itertools

import pytest

from sessionkit.jobs.manifest import Manifest
from sessionkit.jobs.status import (
    STATUSES, TRANSITIONS, Decision, Happened, JobStatus, Observation, decide,
)

S, H = JobStatus, Happened
REFUSED = "refused"

# (status now, what happened, target) -> the status after, or REFUSED
TABLE = [
    # 1. a lost lease: nothing changes, and a left loop no longer waits for its outcome
    (S.RUNNING, H.LEASE_LOST, None, S.RUNNING),
    (S.LEFT_EARLY, H.LEASE_LOST, None, S.RUNNING),
    (S.PAUSED, H.LEASE_LOST, None, S.PAUSED),
    # 2. outcomes of a left loop
    (S.LEFT_EARLY, H.ERROR, None, S.FAILED),
    (S.LEFT_EARLY, H.INTERRUPTED, None, S.PAUSED),
    (S.LEFT_EARLY, H.UNSEEN, None, S.PAUSED),
    (S.RUNNING, H.ERROR, None, S.FAILED),  # a framework's training raised (guard.end_by)
    (S.PAUSED, H.ERROR, None, S.PAUSED),  # paused by request before the error: it stands
    (S.CANCELLED, H.UNSEEN, None, S.CANCELLED),
    (S.COMPLETED, H.INTERRUPTED, None, S.COMPLETED),
    # 3. the loop was left early
    (S.RUNNING, H.LEFT, None, S.LEFT_EARLY),
    (S.PAUSED, H.LEFT, None, S.PAUSED),  # it stopped because a request paused it
    (S.CANCELLED, H.LEFT, None, S.CANCELLED),
    # 4. the items ran out
    (S.RUNNING, H.EXHAUSTED, None, S.COMPLETED),
    (S.PAUSED, H.EXHAUSTED, None, S.PAUSED),
    # 5. a run starts
    (S.PENDING, H.START, None, S.RUNNING),
    (S.PAUSED, H.START, None, S.RUNNING),
    (S.FAILED, H.START, None, S.RUNNING),
    (S.COMPLETED, H.START, None, S.RUNNING),
    (S.LEFT_EARLY, H.START, None, S.RUNNING),  # the same object runs it again
    (S.RUNNING, H.START, None, S.RUNNING),
    (S.CANCELLED, H.START, None, REFUSED),
    # 6. requests and stops
    (S.RUNNING, H.REQUEST, S.PAUSED, S.PAUSED),
    (S.RUNNING, H.REQUEST, S.CANCELLED, S.CANCELLED),
    (S.LEFT_EARLY, H.REQUEST, S.CANCELLED, S.CANCELLED),
    (S.PAUSED, H.REQUEST, S.CANCELLED, S.CANCELLED),
    (S.PAUSED, H.REQUEST, S.PAUSED, S.PAUSED),
    (S.COMPLETED, H.REQUEST, S.PAUSED, S.COMPLETED),
    (S.CANCELLED, H.REQUEST, S.PAUSED, S.CANCELLED),
    (S.RUNNING, H.STOP, None, S.PAUSED),
    (S.COMPLETED, H.STOP, None, S.COMPLETED),
    (S.CANCELLED, H.STOP, None, S.CANCELLED),
    # 7. set_status
    (S.RUNNING, H.SET, S.RUNNING, S.RUNNING),
    (S.LEFT_EARLY, H.SET, S.RUNNING, S.LEFT_EARLY),
    (S.RUNNING, H.SET, S.COMPLETED, S.COMPLETED),
    (S.PENDING, H.SET, S.COMPLETED, REFUSED),
    (S.CANCELLED, H.SET, S.RUNNING, REFUSED),
    (S.COMPLETED, H.SET, S.FAILED, REFUSED),
    (S.PAUSED, H.SET, S.RUNNING, S.RUNNING),
]


@pytest.mark.parametrize("now,happened,target,after", TABLE)
def test_the_table(now, happened, target, after):
    d = decide(Observation(now, happened, target))
    if after == REFUSED:
        assert d == Decision(now, refused=True)
    else:
        assert d == Decision(after)


def test_every_set_follows_the_stored_transitions():
    for now, target in itertools.product(S, S):
        if target is S.LEFT_EARLY:
            with pytest.raises(ValueError):
                decide(Observation(now, H.SET, target))
            continue
        d = decide(Observation(now, H.SET, target))
        if target is now.stored:
            assert d == Decision(now)
        else:
            assert d.refused == (target.value not in TRANSITIONS[now.stored.value])


def test_every_decision_and_only_a_left_loop_is_left_early():
    for now, happened in itertools.product(S, H):
        targets = [S.PAUSED, S.CANCELLED] if happened is H.REQUEST else \
            [s for s in S if s is not S.LEFT_EARLY] if happened is H.SET else [None]
        for target in targets:
            d = decide(Observation(now, happened, target))
            assert isinstance(d.status, JobStatus)
            if d.status is S.LEFT_EARLY and now is not S.LEFT_EARLY:
                assert (now, happened) == (S.RUNNING, H.LEFT)
            if now is S.CANCELLED:
                assert d.status is S.CANCELLED  # final
            if d.refused:
                assert d.status is now


def test_a_request_names_pause_or_cancel():
    with pytest.raises(ValueError, match="pauses or cancels"):
        decide(Observation(S.RUNNING, H.REQUEST, S.COMPLETED))


def test_the_store_holds_the_six_status_strings_and_left_early_as_running():
    assert STATUSES == ("pending", "running", "paused", "completed", "failed", "cancelled")
    assert S.RUNNING == "running" and str(S.PAUSED) == "paused"
    for status in S:
        raw = Manifest(job="j", status=status).to_json()
        assert raw["status"] == ("running" if status is S.LEFT_EARLY else status.value)
        assert Manifest.from_json(raw).status is status.stored
