"""One meaning for "state" (issue 28 item 10): the handover's records and views renamed, their
stored JSON unchanged, and the old names still working with a DeprecationWarning."""

import json

import pytest

from sessionkit import handover
from sessionkit.clock import FakeClock
from sessionkit.errors import CorruptRecord
from sessionkit.handover import Backup, GuardRecord, GuardStatus, HandoverView, Primary, Request
from sessionkit.runtimes import Runtime
from sessionkit.store.memory import MemoryStore


def test_the_guard_record_is_stored_as_older_versions_wrote_it():
    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime=Runtime(max_runtime=1000), clock=clock, ttl=10, label="A")
    body = json.loads(store.get("handover/primary/state").data)
    assert body["state"] == "primary" and body["job"] == "job" and "status" not in body
    primary.close()
    assert json.loads(store.get("handover/primary/state").data)["state"] == "released"
    assert handover.read_guard(store).status is GuardStatus.RELEASED


def test_a_guard_record_and_a_request_written_by_an_older_version_read():
    old = json.dumps({"job": "train", "primary": "p" * 32, "token": 4, "state": "released"}).encode()
    guard = GuardRecord.decode("handover/primary/state", "memory://", old, "1")
    assert guard.status is GuardStatus.RELEASED and guard.token == 4
    request = Request.decode("handover/primary/request", "memory://",
                             json.dumps({"id": "r1", "from": "p", "state": "released"}).encode(), "1")
    assert request.status == "released" and not request.open and request.from_ == "p"
    assert json.loads(request.encode())["state"] == "released"


def test_a_guard_record_with_an_unknown_status_is_corrupt():
    with pytest.raises(CorruptRecord, match="not a handover record"):
        GuardRecord.decode("handover/primary/state", "memory://", b'{"job": "train", "state": "asleep"}', "1")


def test_the_old_names_still_work_and_warn():
    store, clock = MemoryStore(), FakeClock()
    primary = Primary(store, "job", runtime=Runtime(max_runtime=1000), clock=clock, ttl=10, label="A")
    backup = Backup(store, "B", clock=clock, ttl=10, runtime="local")
    with pytest.warns(DeprecationWarning):
        assert handover.StateRecord is GuardRecord
    with pytest.warns(DeprecationWarning):
        assert handover.HandoverState is HandoverView
    with pytest.warns(DeprecationWarning):
        from sessionkit.handover.records import StateRecord
    assert StateRecord is GuardRecord
    with pytest.warns(DeprecationWarning):
        assert handover.read_state(store).job == "job"
    with pytest.warns(DeprecationWarning):
        assert primary.state == primary.handover_view
    backup.step()
    with pytest.warns(DeprecationWarning):
        assert backup.state.status == "watching"
    with pytest.warns(DeprecationWarning):
        assert handover.read_guard(store).state == "primary"
    with pytest.warns(DeprecationWarning):
        assert Request("r1").state == "open"
