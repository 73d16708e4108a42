"""The gdrive:// store with each of real Drive's reported anomalies (and each answer Drive
might give where its behaviour is unproven) switched on in the emulator: nothing a user
meets may change (one create winner, exact compare-and-swap, unique lease tokens, no lost
item). The store contract itself runs with each anomaly too (conftest.STORE_BACKENDS).

Everything goes through the real googleapiclient / httplib2 / google-auth stack against
tests/drive_emulator.py; the processes are real ones.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

import sessionkit
from sessionkit import Conflict, Lease
from sessionkit.clock import FakeClock
from sessionkit.errors import StoreError
from sessionkit.store import ABSENT

from conftest import DRIVE_ANOMALIES, race_processes

pytest.importorskip("googleapiclient")
from sessionkit.store.gdrive import GDriveStore  # noqa: E402

WORKERS = str(Path(__file__).parent / "support" / "workers.py")
#: the anomalies that hit conditional writes of records (the others hit set-up, inserts, deletes)
WRITE_ANOMALIES = ("false-412", "stale-etag-answer", "etag-drift")



def fresh(**kw) -> GDriveStore:
    kw.setdefault("backoff", 0.01)
    return GDriveStore(f"anomalies/{uuid.uuid4().hex[:8]}", **kw)


def other(store: GDriveStore) -> GDriveStore:
    return GDriveStore(folder_id=store.folder_id, backoff=0.01)


def hand_made_folder(store: GDriveStore) -> str:
    """A folder made in Drive's web page: no sessionkit catalog."""
    return store.transport.service().files().insert(body={
        "title": f"by-hand-{uuid.uuid4().hex[:6]}", "mimeType": "application/vnd.google-apps.folder"}).execute()["id"]


def test_the_emulator_switches_are_fixed_names_and_settable_from_another_process(drive):
    from drive_emulator import set_anomalies_remotely

    assert drive.anomalies == set() and len(DRIVE_ANOMALIES) == 8
    with pytest.raises(ValueError, match="unknown anomalies"):
        drive.set_anomalies("sometimes-wrong")
    state = set_anomalies_remotely(drive.endpoint, ["etag-drift", "false-412"], rate=0.5)
    assert drive.anomalies == {"etag-drift", "false-412"} and drive.anomaly_rate == 0.5
    assert state["anomalies"] == ["etag-drift", "false-412"]


# -- set-up: no conditional metadata write, no store made by a backup -----------------------


@pytest.mark.parametrize("anomaly", ["parent-etag-on-insert", "metadata-if-match-ignored"])
def test_a_new_store_opens_whatever_the_folder_metadata_does(drive, anomaly):
    drive.set_anomalies(anomaly)
    store = fresh()
    store.put("k", b"v", expect=ABSENT)
    assert other(store).get("k").data == b"v"


def test_a_folder_with_no_store_opened_by_id_is_refused_and_gets_no_catalog(drive):
    """A backup that gets to the folder first, or a folder made by hand: two of them opening
    it at once used to install a catalog each (with If-Match ignored on metadata updates)."""
    drive.set_anomalies("metadata-if-match-ignored")
    folder = hand_made_folder(fresh())
    for _ in range(2):
        with pytest.raises(StoreError, match="no sessionkit store yet.*where the job starts"):
            GDriveStore(folder_id=folder, backoff=0.01)
    assert [f for f in drive.by_title("sessionkit-catalog.json")
            if [p["id"] for p in f["parents"]] == [folder]] == []
    made = GDriveStore(folder_id=folder, backoff=0.01, create=True)  # asked for: the store is made
    made.put("k", b"v")
    assert GDriveStore(folder_id=folder, backoff=0.01).get("k").data == b"v"


def test_a_store_whose_creation_stopped_between_its_two_inserts_is_finished_by_its_creator(drive):
    """The folder is inserted naming its catalog's pre-generated id, then the catalog: a
    creator killed in between leaves a folder naming a catalog that is not there."""
    from sessionkit.store.gdrive_catalog import CATALOG_PROPERTY

    files = fresh().files
    catalog_id = files.new_id("test")
    folder = files.insert("half-made", None, f"half-{uuid.uuid4().hex[:6]}", "root",
                          "application/vnd.google-apps.folder", {CATALOG_PROPERTY: catalog_id})["id"]
    with pytest.raises(StoreError, match="is missing.*create=True"):
        GDriveStore(folder_id=folder, backoff=0.01, timeout=0.5)  # waited for its creator, in vain
    made = GDriveStore(folder_id=folder, backoff=0.01, create=True)
    made.put("k", b"v")
    assert GDriveStore(folder_id=folder, backoff=0.01).get("k").data == b"v"
    assert [f["id"] for f in drive.by_title("sessionkit-catalog.json")
            if [p["id"] for p in f["parents"]] == [folder]] == [catalog_id]


def test_opening_by_path_survives_a_lost_answer_at_any_request_with_resent_inserts_refused(drive):
    """The answer to the k-th request of opening a new store by path is lost after it
    landed, and a resent insert is answered 403: it used to raise a raw AttributeError
    ('self.link' read before it was set) or a misleading "share the folder"."""
    drive.set_anomalies("duplicate-id-403")
    for k in range(6):
        drive.inject(*([None] * k), "lost")
        store = GDriveStore(f"anomalies/lost-{k}-{uuid.uuid4().hex[:6]}", backoff=0.01)
        store.put("k", b"v", expect=ABSENT)
        assert other(store).get("k").data == b"v" and store.link.endswith(store.folder_id)


# -- inserts settled by their id ------------------------------------------------------------


@pytest.mark.parametrize("anomaly", ["duplicate-id-403", "duplicate-id-500"])
@pytest.mark.parametrize("fault", ["lost", "500-landed"])
def test_a_create_whose_resent_insert_is_refused_oddly_lands_once(drive, anomaly, fault):
    store = fresh()
    store.put("warm", b"")  # ids and catalog at hand: the next request is the insert
    drive.set_anomalies(anomaly)
    drive.inject(fault)
    version = store.put("k", b"v", expect=ABSENT)
    assert drive.faults_served and store.get("k").version == version
    assert len([f for f in drive.by_title("k") if [p["id"] for p in f["parents"]] == [store.folder_id]]) == 1


# -- conditional writes: 412s, stale answers, etags that move -----------------------------


@pytest.mark.parametrize("anomaly", WRITE_ANOMALIES)
def test_every_put_returns_the_stored_version_and_the_next_swap_takes_it(drive, anomaly):
    store = fresh()
    drive.set_anomalies(anomaly, rate=0.5)
    version = store.put("k", b"0")
    for n in range(1, 11):
        version = store.put("k", str(n).encode(), expect=version)
        assert other(store).get("k").version == version
    assert drive.anomalies_served.get(anomaly, 0) > 0


def test_a_412_from_another_writer_is_still_a_conflict_naming_its_version(drive):
    store = fresh()
    drive.set_anomalies(*WRITE_ANOMALIES, rate=0.3)
    v1 = store.put("k", b"1")
    v2 = other(store).put("k", b"2", expect=v1)
    with pytest.raises(Conflict) as info:
        store.put("k", b"3", expect=v1)
    assert (info.value.expected, info.value.actual) == (v1, v2) and store.get("k").data == b"2"


def test_drive_refusing_the_current_etag_for_ever_is_a_store_error_not_a_conflict(drive):
    store = fresh(timeout=1.0)
    version = store.put("k", b"1")
    drive.set_anomalies("false-412", rate=1.0)
    with pytest.raises(StoreError, match="kept refusing") as info:
        store.put("k", b"2", expect=version)
    assert not isinstance(info.value, Conflict)
    drive.set_anomalies()
    assert store.get("k") == sessionkit.store.Record(b"1", version)


def test_a_delete_with_an_old_version_never_removes_a_newer_write(drive):
    drive.set_anomalies("delete-if-match-ignored")
    store = fresh()
    v1 = store.put("k", b"1")  # a file this store inserted (it could DELETE it outright)
    v2 = other(store).put("k", b"2", expect=v1)
    with pytest.raises(Conflict):
        store.delete("k", expect=v1)
    assert other(store).get("k") == sessionkit.store.Record(b"2", v2)
    assert store.delete("k", expect=v2) and store.get("k") is None and other(store).list() == []


@pytest.mark.parametrize("anomaly", WRITE_ANOMALIES)
def test_event_log_flushes_never_meet_another_writer(drive, anomaly):
    from sessionkit.events import EventLog

    store = fresh()
    drive.set_anomalies(anomaly, rate=0.5)
    log = EventLog(store, clock=FakeClock())
    for n in range(20):
        log.emit("tick", n=n)
        log.flush()  # raised "changed by another writer" on 4 of 20 with false 412s
    assert drive.anomalies_served.get(anomaly, 0) > 0


# -- leases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("anomaly", WRITE_ANOMALIES)
def test_a_release_frees_the_lease_at_once(drive, anomaly):
    """A release that met a false 412 (or a stale etag) used to return leaving the lease
    held; the next holder now takes it at once (no ttl passes on this clock)."""
    store = fresh()
    drive.set_anomalies(anomaly, rate=0.5)
    clock = FakeClock()
    for n in range(6):
        runtime = store if n % 2 == 0 else other(store)
        lease = Lease(runtime, "l", holder=f"holder-{n}", ttl=30, clock=clock)
        assert lease.acquire(timeout=0) == n + 1
        assert lease.renew()
        assert lease.release() is True
        assert sessionkit.lease.read_lease(store, "l").holder is None
    assert drive.anomalies_served.get(anomaly, 0) > 0


def test_a_dead_holders_lease_expires_though_its_etag_keeps_moving(drive):
    """Expiry is judged by the record's content changing, not its version: with etags
    moving at every other request, a dead holder's record must still expire after its ttl."""
    store = fresh()
    clock = FakeClock()
    holder = Lease(store, "l", holder="dead", ttl=10, clock=clock)
    assert holder.acquire(timeout=0) == 1  # ... and never renews again
    drive.set_anomalies("etag-drift", rate=0.5)
    backup = Lease(other(store), "l", holder="backup", ttl=10, clock=clock)
    waited = 0.0
    while backup.try_acquire() is None:
        clock.advance(1)
        waited += 1
        assert waited <= 12, "a dead holder's record looked alive (its etag moved)"
    assert backup.token == 2 and waited >= 10 - 1
    # and a live holder's renewals still keep it held
    assert backup.renew() and Lease(store, "l", holder="c", ttl=10, clock=clock).try_acquire() is None


# -- real processes ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("anomaly", DRIVE_ANOMALIES)
def test_two_processes_racing_a_create_have_one_winner(drive, anomaly):
    store = fresh()
    drive.set_anomalies(anomaly, rate=0.5)
    results = race_processes("drive_create_race", store.url, ["a", "b"], lead=3.0)
    assert sorted(r["won"] for r in results) == [False, True], results
    winner = next(r for r in results if r["won"])
    assert store.get("lock").version == winner["version"]


@pytest.mark.slow
@pytest.mark.parametrize("anomaly", WRITE_ANOMALIES)
def test_two_processes_racing_for_a_lease_get_one_token(drive, anomaly):
    store = fresh()
    drive.set_anomalies(anomaly, rate=0.5)
    results = race_processes("drive_lease_race", store.url, ["holder-a", "holder-b"], lead=3.0)
    assert sorted((r["token"] for r in results), key=lambda t: t or 0) == [None, 1], results
    assert [r["renewed"] for r in results if r["token"]] == [True]


@pytest.mark.slow
@pytest.mark.parametrize("anomaly", WRITE_ANOMALIES)
def test_three_processes_cas_increments_end_exact(drive, anomaly):
    url = fresh().url
    drive.set_anomalies(anomaly, rate=0.3)
    procs = [subprocess.Popen([sys.executable, WORKERS, "drive_count", url, "25"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    assert json.loads(sessionkit.open_store(url).get("counter").data)["value"] == 75
    assert drive.anomalies_served.get(anomaly, 0) > 0


@pytest.mark.slow
@pytest.mark.parametrize("anomaly", WRITE_ANOMALIES + ("delete-if-match-ignored", "duplicate-id-500"))
def test_a_keyed_job_sigkilled_and_resumed_loses_no_item(drive, anomaly, tmp_path):
    """Done keys leave the manifest for segments every 8 keys, so runs write, merge and
    delete segments; each run is killed after a random amount of progress, then resumed."""
    url = fresh().url
    drive.set_anomalies(anomaly, rate=0.3)
    log, items, every = tmp_path / "items.log", 60, 4
    rng = random.Random(anomaly)
    kills = 0
    for _run in range(20):
        before = len(log.read_text().split()) if log.exists() else 0
        proc = subprocess.Popen([sys.executable, WORKERS, "keyed_job_worker", url, "keyed", str(log), str(items),
                                 str(every), "0.01", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()
        target = before + rng.randint(6, 20)
        while proc.poll() is None and kills < 3 and len(log.read_text().split()) < target:
            time.sleep(0.005)
        if proc.poll() is None and kills < 3:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, err = proc.communicate(timeout=180)
        if proc.returncode == 0:
            assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": items}, err
            break
        assert proc.returncode == -signal.SIGKILL, err[-3000:]
    else:
        pytest.fail("the job never completed")
    seen = Counter(int(x) for x in log.read_text().split())
    assert set(seen) == set(range(items)) and kills == 3
    # (how much is redone depends on how long Drive takes to take a checkpoint: with 412s
    # retried after pauses, more than the interval; tests/test_jobs_processes.py bounds it)
    assert sum(c - 1 for c in seen.values()) < 3 * items, seen
    assert sessionkit.Job(url, "keyed").done == items
