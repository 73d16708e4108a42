"""Primary/backup handover on a memory store and fake clocks (one process, interleaved)."""

from __future__ import annotations

import json

import pytest

from sessionkit import handover
from sessionkit.clock import FakeClock
from sessionkit.runtimes import Runtime
from sessionkit.handover import Backup, Primary
from sessionkit.lease import read_lease
from sessionkit.store.local import LocalStore
from sessionkit.store.memory import MemoryStore

SHORT = Runtime(max_runtime=1000, name="short")  # handover phase after 100 s (15 min left)


def events(store):
    out = []
    for key in store.list("events/"):
        out += [json.loads(line) for line in store.get(key).data.splitlines()]
    return sorted(out, key=lambda e: e["ts"])


@pytest.fixture
def setup():
    return MemoryStore(), FakeClock()


def test_planned_handover(setup):
    store, clock = setup
    primary = Primary(store, "job", runtime=SHORT, clock=clock, ttl=10, label="A")
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    done = []
    for item in primary.track(range(60), display=False):
        done.append((item, primary.lease.token))
        clock.advance(5)
        assert backup.step() is None
    assert primary.handed_over and primary.job.status == "paused"
    assert primary.session.status == "ended" and primary.session.end_reason == "handover"
    new = backup.step()
    assert new is not None and new.lease.token == 2
    for item in new.track(range(60), display=False):
        done.append((item, new.lease.token))
    assert sorted(i for i, _ in done) == list(range(60)), "every item once"
    assert new.job.status == "completed"
    switch = [t for _, t in done].index(2)
    assert 20 <= switch <= 23  # requested at ~100 s (item 20), ready, stopped within 2 polls
    kinds = [e["kind"] for e in events(store)]
    for kind in ("handover.requested", "handover.ready", "handover.completed", "lease.released"):
        assert kind in kinds
    completed = next(e for e in events(store) if e["kind"] == "handover.completed")
    assert completed["data"]["planned"] is True and completed["data"]["to"] == backup.session.id


def test_unplanned_takeover_after_the_primary_dies(setup):
    store, clock = setup
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, checkpoint_items=5)
    it = primary.track(range(30), display=False)
    for _ in range(11):
        next(it)  # items 0..9 done; then the runtime dies: no release, no more renewals
    primary.lease.stop_renewing()
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    waited = 0.0
    while (new := backup.step()) is None:
        clock.advance(backup.poll)
        waited += backup.poll
    assert 10 <= waited <= 10 + 2 * backup.poll
    assert new.lease.token == 2
    assert list(new.track(range(30), display=False)) == list(range(10, 30))
    completed = next(e for e in events(store) if e["kind"] == "handover.completed")
    assert completed["data"]["planned"] is False


def test_lower_priority_number_goes_first_and_others_wait(setup):
    store, clock = setup
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
    second = Backup(store, "second", priority=2, clock=clock, ttl=10, runtime="local")
    first = Backup(store, "first", priority=1, clock=clock, ttl=10, runtime="local")
    assert (first.rank(), second.rank()) == (0, 1)
    primary.close()
    assert second.step() is None  # its turn comes a grace later
    assert first.step() is not None and first.status == "primary"
    assert second.step() is None and second.status == "watching"


def test_ties_break_on_session_id(setup):
    store, clock = setup
    a = Backup(store, "a", clock=clock, runtime="local")
    b = Backup(store, "b", clock=clock, runtime="local")
    assert sorted([a.rank(), b.rank()]) == [0, 1]
    assert (a.rank() == 0) == (a.session.id < b.session.id)


def test_approval_required(setup):
    store, clock = setup
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
    backup = Backup(store, "B", approval="required", clock=clock, ttl=10, runtime="local")
    primary.close()
    assert backup.step() is None and backup.status == "approval pending"
    pending = handover.pending_approvals(store)
    assert [p.session for p in pending] == [backup.session.id]
    with pytest.raises(LookupError, match="pending"):
        handover.approve(store, "nope")
    handover.approve(store, pending[0].id)
    assert backup.step() is not None
    kinds = [e["kind"] for e in events(store)]
    assert "approval.requested" in kinds and "approval.granted" in kinds


def test_a_backup_stops_watching_when_the_job_is_done(setup):
    store, clock = setup
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
    assert list(primary.track(range(3), display=False)) == [0, 1, 2]
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    assert backup.watch(timeout=100) is None and backup.status == "done"


def test_backup_arguments_are_checked(setup):
    store, clock = setup
    with pytest.raises(ValueError, match="approval"):
        Backup(store, approval="maybe", clock=clock)
    with pytest.raises(TypeError, match="priority"):
        Backup(store, priority="high", clock=clock)


def test_a_backup_started_first_waits_for_a_primary(setup):
    store, clock = setup
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    assert backup.step() is None and backup.status == "waiting for a primary"
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
    assert primary.lease.token == 1
    assert backup.step() is None and backup.status == "watching"


def test_observers_never_take_a_lease(setup):
    from sessionkit import Session

    store, clock = setup
    observer = Session(store, "observer", clock=clock, runtime="local", start=False)
    with pytest.raises(ValueError, match="observer"):
        Primary(store, "job", session=observer, clock=clock)
    assert store.list("leases/") == []


def test_a_backup_with_no_primary_in_its_store_says_so(setup):
    store, clock = setup
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    assert backup.step() is None and backup.status == "waiting for a primary"
    assert "no primary" not in backup.handover_view.detail  # not at once: the primary may be starting
    for _ in range(6):
        clock.advance(backup.poll)
        backup.step()
    assert "no primary has written to memory://" in backup.handover_view.detail
    assert "is STORE the same as the primary's?" in backup.handover_view.detail
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, label="A")
    backup.step()
    assert backup.status == "watching" and "no primary" not in backup.handover_view.detail
    primary.close()


def test_sigterm_hands_the_signal_on_to_the_handler_that_was_there_before(setup):
    """A program with its own SIGTERM handler still gets the signal, after the primary has
    checkpointed and released (the signal is raised in this process, between two items)."""
    import signal

    from sessionkit import stopping
    from sessionkit.lease import read_lease

    store, clock = setup
    seen = []
    own = lambda signum, frame: seen.append(signum)  # noqa: E731
    previous = signal.signal(signal.SIGTERM, own)
    try:
        primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, label="A")
        assert signal.getsignal(signal.SIGTERM) is not own, "sessionkit's handler is in place"
        signal.raise_signal(signal.SIGTERM)  # Python runs the handler on this (the main) thread
        assert seen == [signal.SIGTERM], "the program's own handler ran"
        assert read_lease(store, "primary").holder is None, "released first"
        assert primary.session.end_reason == "stopped (SIGTERM)"
        assert stopping.requested() is None and signal.getsignal(signal.SIGTERM) is own, "the program's again"
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("record", ["state", "lease"])
@pytest.mark.parametrize("damage", ["garbage", "removed"])
def test_a_damaged_handover_state_record_does_not_leave_the_backup_waiting(tmp_path, damage, record):
    """The state record names the job; if it is damaged or moved away while a primary holds
    the lease, the backup still takes over when the lease expires (the most recent active
    job stands in), and the new primary writes the record anew. The same when the lease
    record itself is damaged or moved away: the backup takes over once it has lain still
    for the ttl, with a token above the old primary's (never token 1 again)."""
    store, clock = LocalStore(tmp_path / "s"), FakeClock()
    primary = Primary(store, "job", runtime="local", clock=clock, ttl=10, checkpoint_items=5)
    it = primary.track(range(30), display=False)
    for _ in range(11):
        next(it)
    primary.lease.stop_renewing()
    path = store.path_of("handover/primary/state" if record == "state" else "leases/primary")
    if damage == "garbage":
        path.write_bytes(b"\x00 not a record")
    else:
        path.rename(tmp_path / "moved-away")
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    for _ in range(100):
        new = backup.step()
        if new is not None:
            break
        clock.advance(backup.poll)
    assert new is not None, f"the backup stayed {backup.status!r}"
    assert list(new.track(range(30), display=False)) == list(range(10, 30))
    assert handover.read_guard(store).job == "job"
    assert read_lease(store, "primary").token == 2  # the new primary held token 2


def test_a_backup_for_another_job_refuses_before_taking_anything(tmp_path):
    """Issue 17: notebook.start_backup took the lease and only then checked JOB, so a backup
    set for the wrong job had already fenced out the primary when it said so."""
    store, clock = LocalStore(tmp_path / "s"), FakeClock()
    primary = Primary(store, "ingest", runtime="local", clock=clock, ttl=10)
    it = primary.track(range(20), display=False)
    next(it)
    primary.lease.stop_renewing()  # the primary dies: its lease expires
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local", job="train")
    clock.advance(11)
    with pytest.raises(ValueError, match="'ingest', not 'train'"):
        backup.step()
    assert read_lease(store, "primary").token == 1, "nothing was taken over"
    with pytest.raises(ValueError, match="job"):
        Backup(store, "B2", clock=clock, runtime="local", job="")


class CountingStore(MemoryStore):
    """A memory store that counts the requests made to it (each is one on Drive)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def get(self, key):
        self.calls += 1
        return super().get(key)

    def list(self, prefix=""):
        self.calls += 1
        return super().list(prefix)


def test_a_backup_look_costs_the_same_however_many_sessions_have_ended():
    """Watching a live primary reads the live sessions only: 50 ended sessions (a week of
    restarts) add no request to a backup's step, or to a look at a free lease."""
    from sessionkit.sessions import Session, list_sessions

    costs = []
    for ended in (0, 50):
        store, clock = CountingStore(), FakeClock()
        for n in range(ended):
            Session(store, "backup", clock=clock, runtime="local", label=f"old{n}").end("closed")
        primary = Primary(store, "job", runtime="local", clock=clock, ttl=10)
        backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
        backup.step()
        store.calls = 0
        assert backup.step() is None and backup.status == "watching"
        watching = store.calls
        primary.close()
        store.calls = 0
        assert backup.step() is not None
        costs.append((watching, store.calls))
        assert len(list_sessions(store)) == ended + 2, "history still lists every session"
    assert costs[0] == costs[1], costs


def test_an_ended_session_moves_out_of_the_live_records_and_gc_removes_it_after_the_retention():
    from datetime import timedelta

    from sessionkit.sessions import Session, live_session_ids, list_sessions, read_session, remove_ended

    store, clock = MemoryStore(), FakeClock()
    old = Session(store, "backup", clock=clock, runtime="local")
    live = Session(store, "backup", clock=clock, runtime="local")
    old.end("closed")
    assert live_session_ids(store) == {live.id}
    assert read_session(store, old.id).status == "ended"
    assert remove_ended(store, older_than=timedelta(days=30), clock=clock) == []
    clock.advance(31 * 86400)
    assert remove_ended(store, older_than=timedelta(days=30), clock=clock) == [old.id]
    assert [s.id for s in list_sessions(store)] == [live.id]


def test_a_session_marked_dropped_that_beats_again_is_live_again():
    from sessionkit.sessions import DropWatcher, Session, live_session_ids, list_sessions

    store, clock = MemoryStore(), FakeClock()
    silent = Session(store, "backup", clock=clock, runtime="local", start=False)
    silent.beat()  # one beat by hand, no background heartbeats: then it is silent
    watcher = DropWatcher(store, clock=clock)
    watcher.check(timeout=60)
    clock.advance(61)
    assert watcher.check(timeout=60) == [silent.id]
    assert live_session_ids(store) == set()
    assert [(s.status, s.phase, s.end_reason) for s in list_sessions(store)] == [("dropped", "ended", "no heartbeat")]
    silent.beat()
    assert live_session_ids(store) == {silent.id}
    assert [s.status for s in list_sessions(store)] == ["active"]
    silent.end("closed")
    assert live_session_ids(store) == set() and [s.status for s in list_sessions(store)] == ["ended"]


def test_a_backup_becomes_primary_through_its_session_promotion_only():
    from sessionkit.errors import InvalidTransition
    from sessionkit.sessions import Session

    store, clock = MemoryStore(), FakeClock()
    observer = Session(store, "observer", clock=clock, runtime="local")
    with pytest.raises(InvalidTransition, match="observer"):
        observer.promote()
    with pytest.raises(ValueError, match="a Primary runs in a primary session"):
        Primary(store, "job", session=Session(store, "backup", clock=clock, runtime="local"), clock=clock)


def test_a_session_killed_between_writing_its_end_and_removing_its_live_record_reads_as_ended():
    """format.md: when both records exist, the later heartbeat is current; gc tidies it."""
    from datetime import timedelta

    from sessionkit.sessions import Session, ended_key, live_session_ids, list_sessions, remove_ended

    store, clock = MemoryStore(), FakeClock()
    session = Session(store, "backup", clock=clock, runtime="local")
    live_copy = store.get(f"sessions/{session.id}").data
    clock.advance(5)
    session.end("closed")
    store.put(f"sessions/{session.id}", live_copy)  # as if killed before the live record went
    assert [s.status for s in list_sessions(store)] == ["ended"]
    assert remove_ended(store, older_than=timedelta(days=30), clock=clock) == []
    assert live_session_ids(store) == set() and store.get(ended_key(session.id)) is not None


def test_a_watcher_never_overwrites_a_sessions_own_end_with_dropped():
    """The live record a killed end left behind stops changing; a watcher must remove it,
    not mark the session dropped over its own 'closed'."""
    from sessionkit.sessions import DropWatcher, Session, live_session_ids, list_sessions

    store, clock = MemoryStore(), FakeClock()
    session = Session(store, "backup", clock=clock, runtime="local")
    live_copy = store.get(f"sessions/{session.id}").data
    clock.advance(5)
    session.end("closed")
    store.put(f"sessions/{session.id}", live_copy)
    watcher = DropWatcher(store, clock=clock)
    watcher.check(timeout=60)
    clock.advance(61)
    assert watcher.check(timeout=60) == []
    assert live_session_ids(store) == set()
    assert [(s.status, s.end_reason) for s in list_sessions(store)] == [("ended", "closed")]
