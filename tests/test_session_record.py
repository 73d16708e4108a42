"""The session's record as a typed value, and its life cycle (role, status, phase) as pure
functions (issue 28 item 6)."""

import itertools
import json
import warnings

import pytest

from sessionkit.clock import FakeClock
from sessionkit.errors import CorruptRecord, InvalidTransition
from sessionkit.phase import PHASES, Phase, Thresholds, session_phase
from sessionkit.runtimes import Runtime
from sessionkit.session_record import (
    LeaseHeld, Role, SessionEvent, SessionRecord, SessionStatus, session_after,
)
from sessionkit.sessions import Session, list_sessions, read_session
from sessionkit.store.memory import MemoryStore

R, St, Ev = Role, SessionStatus, SessionEvent
TH = Thresholds(3600.0, 900.0)


@pytest.mark.parametrize("role, status, event, expected", [
    (R.BACKUP, St.ACTIVE, Ev.PROMOTE, (R.PRIMARY, St.ACTIVE)),  # 1
    (R.PRIMARY, St.ACTIVE, Ev.END, (R.PRIMARY, St.ENDED)),  # 2
    (R.BACKUP, St.DROPPED, Ev.END, (R.BACKUP, St.ENDED)),
    (R.OBSERVER, St.ENDED, Ev.END, (R.OBSERVER, St.ENDED)),
    (R.PRIMARY, St.ACTIVE, Ev.DROP, (R.PRIMARY, St.DROPPED)),  # 3
    (R.PRIMARY, St.ENDED, Ev.DROP, (R.PRIMARY, St.ENDED)),  # its own end is never overwritten
    (R.BACKUP, St.DROPPED, Ev.BEAT, (R.BACKUP, St.ACTIVE)),  # 4: back
    (R.BACKUP, St.ACTIVE, Ev.BEAT, (R.BACKUP, St.ACTIVE)),
    (R.BACKUP, St.ENDED, Ev.BEAT, (R.BACKUP, St.ENDED)),
])
def test_each_step_of_session_after(role, status, event, expected):
    assert session_after(role, status, event) == expected


@pytest.mark.parametrize("role, status", [(R.PRIMARY, St.ACTIVE), (R.OBSERVER, St.ACTIVE), (R.BACKUP, St.ENDED),
                                          (R.BACKUP, St.DROPPED)])
def test_only_an_active_backup_is_promoted(role, status):
    with pytest.raises(InvalidTransition):
        session_after(role, status, Ev.PROMOTE)


def test_every_change_keeps_the_life_cycle_rules():
    """An ended session stays ended; only PROMOTE changes a role, only to primary; only
    DROP makes a session dropped, and only an active one."""
    for role, status, event in itertools.product(list(R), list(St), list(Ev)):
        try:
            new_role, new_status = session_after(role, status, event)
        except InvalidTransition:
            assert event is Ev.PROMOTE
            continue
        if status is St.ENDED:
            assert new_status is St.ENDED
        assert new_role is role or (event is Ev.PROMOTE and new_role is R.PRIMARY and role is R.BACKUP)
        if new_status is St.DROPPED and status is not St.DROPPED:
            assert event is Ev.DROP and status is St.ACTIVE


@pytest.mark.parametrize("live, left, elapsed, expected", [
    (False, 5000.0, 10.0, Phase.ENDED), (False, -1.0, 10.0, Phase.ENDED), (False, None, 1e6, Phase.ENDED),
    (True, 0.0, 10.0, Phase.EXPIRED), (True, 900.0, 1000.0, Phase.HANDOVER), (True, 3000.0, 1000.0, Phase.WARNING),
    (True, None, 10.0, Phase.FRESH), (True, None, 1000.0, Phase.ACTIVE),
])
def test_each_step_of_session_phase(live, left, elapsed, expected):
    assert session_phase(live, left, elapsed, TH) is expected


def test_an_ended_session_is_in_the_phase_ended_which_is_one_of_the_phases():
    """``phase`` said "ended" for an ended session while PHASES had no "ended"."""
    clock = FakeClock()
    session = Session(MemoryStore(), "primary", runtime="colab-free", clock=clock, start=False)
    assert session.phase in PHASES and session.phase is Phase.FRESH
    session.end("done")
    assert session.phase is Phase.ENDED and session.phase in PHASES and session.snapshot().phase is Phase.ENDED


def test_the_record_reads_back_as_the_session_wrote_it_and_as_older_code_reads_it():
    store, clock = MemoryStore(), FakeClock()
    session = Session(store, "backup", runtime=Runtime(max_runtime=1000, name="t"), clock=clock, label="B")
    session.priority = 2
    session.beat()
    record = read_session(store, session.id)
    assert isinstance(record, SessionRecord)
    assert (record.role, record.status, record.label, record.priority) == (R.BACKUP, St.ACTIVE, "B", 2)
    assert record.runtime.max_runtime == 1000 and record.runtime.name == "t" and record.heartbeats >= 1
    assert record.thresholds == session.thresholds() and record.last_heartbeat is not None
    body = json.loads(store.get(f"sessions/{session.id}").data)  # what an older version reads with .get
    assert body["kind"] == "sessionkit.session" and body["v"] == 1
    assert {"id", "role", "label", "status", "phase", "runtime", "environment", "started", "remaining_s",
            "deadline", "idle_remaining_s", "thresholds", "elapsed_s", "clock_rate", "fresh_left_s",
            "end_reason", "host", "pid", "last_heartbeat", "heartbeats", "priority"} <= set(body)
    assert body["role"] == "backup" and body["runtime"]["name"] == "t" and body["thresholds"]["handover"] == 900.0
    assert "job" not in body and "lease" not in body  # a backup's record has no primary's fields, as before


def test_a_record_written_by_an_older_version_reads_with_defaults():
    old = {"kind": "sessionkit.session", "v": 1, "id": "a" * 32, "role": "primary", "label": "A",
           "status": "ended", "phase": "ended", "runtime": {"name": "colab-free", "max_runtime": 43200,
                                                             "idle_timeout": 5400},
           "started": "2026-01-01T00:00:00+00:00", "remaining_s": 10.0, "job": "train",
           "lease": {"name": "primary", "token": 3}, "stalled": True, "someday": "a field from a newer version"}
    record = SessionRecord.decode("sessions-ended/x", "memory://", json.dumps(old).encode(), "1")
    assert record.thresholds == Thresholds(3600.0, 900.0) and record.clock_rate == 1.0 and record.heartbeats == 0
    assert record.lease == LeaseHeld("primary", 3) and record.job == "train" and record.stalled
    assert record.status is St.ENDED and record.phase is Phase.ENDED and record.runtime.idle_timeout == 5400


@pytest.mark.parametrize("data, reason", [
    (b"not json", "not JSON"),
    (b'["a list"]', "not a JSON object"),
    (json.dumps({"kind": "sessionkit.job", "id": "x"}).encode(), "not a sessionkit.session record"),
    (json.dumps({"kind": "sessionkit.session", "id": "x", "status": "active"}).encode(), "no 'role'"),
    (json.dumps({"kind": "sessionkit.session", "id": "x", "role": "boss", "status": "active"}).encode(), "'role'"),
    (json.dumps({"kind": "sessionkit.session", "id": "x", "role": "primary", "status": "gone"}).encode(),
     "'status'"),
    (json.dumps({"kind": "sessionkit.session", "id": "", "role": "primary", "status": "active"}).encode(), "'id'"),
    (json.dumps({"kind": "sessionkit.session", "id": "x", "role": "primary", "status": "active",
                 "runtime": {"max_runtime": -5}}).encode(), "'runtime'"),
])
def test_a_damaged_record_is_a_corrupt_record_naming_its_key(data, reason):
    with pytest.raises(CorruptRecord, match=reason) as caught:
        SessionRecord.decode("sessions/x", "memory://", data, "7")
    assert caught.value.key == "sessions/x"


def test_a_damaged_record_is_listed_as_damaged_and_the_others_still_read():
    store, clock = MemoryStore(), FakeClock()
    session = Session(store, "primary", clock=clock, runtime="local")
    store.put("sessions/broken", b'{"kind": "sessionkit.session", "id": "broken"}')
    damaged: list = []
    assert [s.id for s in list_sessions(store, damaged)] == [session.id]
    assert [exc.key for exc in damaged] == ["sessions/broken"]


def test_reading_a_record_as_a_dict_still_works_but_warns():
    store = MemoryStore()
    session = Session(store, "primary", clock=FakeClock(), runtime="local", label="A")
    record = read_session(store, session.id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert record["label"] == "A" and record.get("role") == "primary" and record.get("nothing", 5) == 5
    assert caught and all(issubclass(w.category, DeprecationWarning) for w in caught)
