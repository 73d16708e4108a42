"""TrainingGuard without a framework (logic tests, fake clock): how a training run that
raised is recorded. The frameworks' own runs are in tests/training (make test-training)."""

from __future__ import annotations

import pytest

from sessionkit import Job, Session
from sessionkit.clock import FakeClock
from sessionkit.runtimes import Runtime
from sessionkit.integrations.guard import TrainingGuard
from sessionkit.store.memory import MemoryStore


@pytest.fixture
def store():
    return MemoryStore()


def started(store, clock=None, session=None) -> TrainingGuard:
    guard = TrainingGuard(Job(store, "train", clock=clock or FakeClock()), session=session)
    guard.begin(36)
    return guard


def test_an_error_in_training_fails_the_job_with_its_message(store):
    guard = started(store)
    guard.end_by(RuntimeError("CUDA out of memory"))
    job = Job(store, "train")  # as another runtime reads it
    assert job.status == "failed"
    assert "CUDA out of memory" in str(job.progress.error)
    assert not guard.training


def test_ctrl_c_pauses_the_job(store):
    started(store).end_by(KeyboardInterrupt())
    assert Job(store, "train").status == "paused"


def test_a_stop_the_guard_asked_for_ends_paused_whatever_ends_the_framework(store):
    """Lightning leaves fit by raising SystemExit after a SIGTERM once the callback saved;
    a stop at the handover phase that the framework answers with an error is still a stop."""
    clock = FakeClock()
    session = Session(store, "primary", runtime=Runtime(max_runtime=4000.0), clock=clock)
    guard = started(store, clock, session)
    assert guard.should_stop() is None
    clock.advance(3600.0)
    assert guard.should_stop() == "handover phase"
    guard.end_by(RuntimeError("the framework's own error after the stop"))
    assert Job(store, "train").status == "paused"


def test_a_system_exit_pauses_the_job(store):
    started(store).end_by(SystemExit(0))
    assert Job(store, "train").status == "paused"


def test_nothing_is_recorded_before_training_began_or_after_it_ended(store):
    guard = TrainingGuard(Job(store, "train", clock=FakeClock()))
    guard.end_by(RuntimeError("raised while downloading the checkpoint"))
    assert Job(store, "train").status == "pending", "training never began: nothing to fail"
    guard.begin(36)
    guard.end(completed=True, step=36)
    guard.end_by(RuntimeError("raised after training returned"))
    job = Job(store, "train")
    assert job.status == "completed" and job.done == 36
