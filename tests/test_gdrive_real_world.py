"""The gdrive:// store under what real Drive does and our first emulator did not: search
that lags, answers lost after the write landed, two accounts sharing one folder, service
accounts without storage, trashed files served by id, tokens that expire.

Everything runs through the real googleapiclient / httplib2 / google-auth stack against
tests/drive_emulator.py, with search lag on (conftest.DRIVE_LIST_LAG unless a test sets more).
"""

from __future__ import annotations

import json
import uuid

import pytest

import sessionkit
from sessionkit import Conflict, Job, Lease, LeaseLost
from sessionkit.clock import FakeClock
from sessionkit.errors import StoreError
from sessionkit.store import ABSENT
from sessionkit.store.gdrive import GDriveStore, folder_id_from_link

from conftest import DRIVE_USER, race_processes

pytest.importorskip("googleapiclient")
BOB = "bob@example.com"


def fresh(**kw) -> GDriveStore:
    kw.setdefault("backoff", 0.01)
    return GDriveStore(f"real-world/{uuid.uuid4().hex[:8]}", **kw)


def live_files(emulator, store, title):
    """Files of that title in the store's folder that hold a record (not trashed or tombstones)."""
    return [f for f in emulator.by_title(title) if not f["labels"]["trashed"]
            and [p["id"] for p in f["parents"]] == [store.folder_id]
            and not any(p["key"] == "sessionkitDeleted" for p in f["properties"])]


# -- the emulator itself behaves as Drive does (so the tests below mean something) --------


def test_the_emulator_lags_search_but_not_reads_by_id(emulator):
    store = fresh()
    emulator.list_lag = 30.0
    version = store.put("fresh-key", b"x")
    file_id = version.split(":")[0]
    service = store.transport.service()
    listed = service.files().list(q=f"title = 'fresh-key' and '{store.folder_id}' in parents").execute()
    assert listed.get("items", []) == []  # search has not caught up
    assert service.files().get(fileId=file_id).execute()["id"] == file_id  # by id: there
    assert store.get("fresh-key").data == b"x"


def test_the_emulator_refuses_a_malformed_if_match_with_500_and_deletes_by_non_owners(emulator):
    from googleapiclient.errors import HttpError

    store = fresh()
    file_id = store.put("k", b"x").split(":")[0]
    request = store.transport.service().files().update(fileId=file_id, body={})
    request.headers["If-Match"] = "not-an-etag"
    with pytest.raises(HttpError) as info:
        request.execute()
    assert info.value.resp.status == 500
    emulator.share(store.folder_id, BOB)
    bob = GDriveStore(folder_id=store.folder_id, credentials_file=str(emulator.user_credentials_file(BOB)))
    with pytest.raises(HttpError) as info:
        bob.transport.service().files().delete(fileId=file_id).execute()
    assert info.value.resp.status == 403


# -- no split brain when search lags ----------------------------------------------------


@pytest.mark.slow
def test_two_processes_racing_a_create_under_a_5_s_search_lag_have_one_winner(emulator):
    store = fresh()
    emulator.list_lag = 5.0
    results = race_processes("drive_create_race", store.url, ["a", "b"])
    assert sorted(r["won"] for r in results) == [False, True], results
    assert all(r["lists"] == 0 for r in results), "a create must not search (search lags)"
    winner = next(r for r in results if r["won"])
    record = store.get("lock")
    assert record.version == winner["version"]
    assert len(live_files(emulator, store, "lock")) == 1  # the loser removed its own file


@pytest.mark.slow
def test_two_processes_racing_for_a_lease_under_a_5_s_search_lag_get_one_token(emulator):
    store = fresh()
    emulator.list_lag = 5.0
    results = race_processes("drive_lease_race", store.url, ["holder-a", "holder-b"])
    tokens = [r["token"] for r in results]
    assert sorted(tokens, key=lambda t: t or 0) == [None, 1], results
    assert [r["renewed"] for r in results if r["token"]] == [True]
    assert sessionkit.lease.read_lease(store, "primary").token == 1


def test_in_process_racers_each_with_a_stale_catalog_never_both_create(emulator):
    """Two stores that loaded the catalog before either created: both think the key is
    absent; the catalog's compare-and-swap lets exactly one through."""
    a = fresh()
    b = GDriveStore(folder_id=a.folder_id, backoff=0.01)
    emulator.list_lag = 60.0
    a.put("leases/x", b"a", expect=ABSENT)
    with pytest.raises(Conflict) as info:
        b.put("leases/x", b"b", expect=ABSENT)
    assert info.value.actual == a.get("leases/x").version
    b.put("other", b"unconditional")  # a plain put of a key another store just created:
    a.put("shared", b"from a")
    b.put("shared", b"from b")  # overwrites a's file instead of making a second one
    assert len(live_files(emulator, a, "shared")) == 1 and a.get("shared").data == b"from b"


# -- answers lost after the write landed ---------------------------------------------------


@pytest.mark.parametrize("fault", ["lost", "500-landed", "403rate-landed"])
def test_a_lost_answer_at_any_request_of_a_checkpoint_loses_nothing(emulator, fault):
    """The k-th request of a checkpoint lands but its answer is lost, for every k: the job
    can always be reopened, keeps what was checkpointed, and finishes with every item."""
    store = fresh()
    for k in range(60):
        job_id = f"j{k}"
        job = Job(store, job_id, clock=FakeClock(), checkpoint_every=1e9, checkpoint_items=10)
        it = job.track(range(24), display=False)
        for _ in range(20):
            next(it)  # the 11th resumed after item 9 and checkpointed 10 items
        served = emulator.faults_served
        emulator.inject(*([None] * k), fault)
        try:
            next(it)  # resumes after item 19: the checkpoint of 20 items, with the fault
            it.close()
        except StoreError:
            pass  # it may or may not have landed; either must be fine
        hit = emulator.faults_served > served
        emulator.reset()
        emulator.list_lag = 0.3
        other_runtime = GDriveStore(folder_id=store.folder_id, backoff=0.01)
        reopened = Job(other_runtime, job_id)
        kept = reopened.done
        assert 10 <= kept <= 20, (k, kept)
        rest = list(reopened.track(range(24), display=False))
        assert rest == list(range(kept, 24)), (k, kept, rest)
        final = Job(GDriveStore(folder_id=store.folder_id, backoff=0.01), job_id)
        assert final.done == 24 and final.status == "completed", (k, final.done)
        if not hit:
            assert k > 0
            return  # k was past the checkpoint's last request: every request was tried
    pytest.fail("a checkpoint made more than 60 requests")


@pytest.mark.parametrize("fault", ["lost", "500-landed"])
def test_a_lost_answer_at_any_request_of_a_lease_renewal_or_acquisition_keeps_tokens_unique(emulator, fault):
    store = fresh()
    clock = FakeClock()
    for k in range(4):
        a = Lease(store, f"l{k}", holder="a", ttl=30, clock=clock)
        b = Lease(GDriveStore(folder_id=store.folder_id, backoff=0.01), f"l{k}", holder="b", ttl=30, clock=clock)
        emulator.inject(*([None] * k), fault)
        token = a.try_acquire() or a.try_acquire()  # a lost answer: the second try finds its own record
        assert token == 1
        assert b.try_acquire() is None
        emulator.inject(*([None] * k), fault)
        try:
            first = a.renew()
        except LeaseLost as exc:
            pytest.fail(f"a lost answer is not a lost lease: {exc}")
        assert first or a.renew()
        assert a.held and a.token == 1 and b.try_acquire() is None
        a.release()
        assert b.try_acquire() == 2
    assert emulator.faults_served >= 8


# -- two accounts sharing one folder ------------------------------------------------------


def test_two_accounts_hand_a_job_over_and_back_through_a_shared_folder(emulator, monkeypatch):
    from sessionkit.jobs import checkpoint

    # done keys leave the manifest for a segment every 10 keys (2,000 in use), so both
    # accounts write, merge and delete segments the other created
    monkeypatch.setattr(checkpoint, "INLINE_KEYS", 10)
    alice = fresh()  # signed in as DRIVE_USER (conftest)
    emulator.share(alice.folder_id, BOB)
    bob_credentials = str(emulator.user_credentials_file(BOB))
    assert folder_id_from_link(alice.link) == alice.folder_id
    bob = GDriveStore(folder_id=folder_id_from_link(alice.link), credentials_file=bob_credentials, backoff=0.01)
    assert bob.url == alice.url
    # the path form means a different folder in each account's My Drive
    assert GDriveStore("real-world/elsewhere", credentials_file=bob_credentials).folder_id != alice.folder_id

    clock = FakeClock()
    seen: list[int] = []

    def run_until(store, holder, stop):
        lease = Lease(store, "primary", holder=holder, ttl=30, clock=clock)
        token = lease.acquire(timeout=0)
        job = Job(store, "shared-job", lease=lease, clock=clock, checkpoint_items=7)
        # items known by key: done segments are written, merged and deleted by both accounts
        for x in job.track(range(90), key=str, display=False):
            if x == stop:
                break
            seen.append(x)
        lease.release()
        return token, job

    assert run_until(alice, "alice-runtime", 30)[0] == 1
    assert run_until(bob, "bob-runtime", 60)[0] == 2
    token, job = run_until(alice, "alice-runtime-2", None)
    assert token == 3 and job.status == "completed"
    assert sorted(seen) == list(range(90)), "every item exactly once"
    tombstones = [f for f in emulator.files.values() if f.get("_owner") == DRIVE_USER
                  and any(p["key"] == "sessionkitDeleted" for p in f["properties"])]
    assert tombstones, "bob removed files alice owns without deleting them (tombstones)"


def test_a_drive_folder_link_opens_the_store(emulator):
    store = fresh()
    store.put("k", b"v")
    by_link = sessionkit.open_store(store.link + "?usp=sharing")
    assert by_link.url == store.url and by_link.get("k").data == b"v"
    with pytest.raises(ValueError, match="not a Google Drive folder link"):
        sessionkit.open_store("https://example.com/folders/abc")


def test_a_folder_not_shared_with_the_account_is_a_clear_error(emulator):
    store = fresh()
    stranger = str(emulator.user_credentials_file("carol@example.com"))
    with pytest.raises(StoreError, match="share the folder with this account as Editor"):
        GDriveStore(folder_id=store.folder_id, credentials_file=stranger)


# -- service accounts, trash, tokens, malformed versions ----------------------------------


def test_service_accounts_are_refused_in_my_drive_and_work_in_a_shared_drive(emulator):
    robot = "robot@emulator.iam.gserviceaccount.com"
    key = str(emulator.service_account_file(robot))
    with pytest.raises(StoreError, match="shared drive"):
        GDriveStore("robots/store", service_account=key)
    mine = fresh()
    emulator.share(mine.folder_id, robot)
    with pytest.raises(StoreError, match="owns no Drive storage"):
        GDriveStore(folder_id=mine.folder_id, service_account=key)
    drive = emulator.add_shared_drive("team", [robot, DRIVE_USER])
    store = GDriveStore(folder_id=drive, service_account=key, backoff=0.01, create=True)
    v1 = store.put("k", b"1", expect=ABSENT)
    v2 = store.put("k", b"2", expect=v1)
    assert GDriveStore(folder_id=drive).get("k").data == b"2"  # a member user reads it too
    assert store.delete("k", expect=v2) and store.get("k") is None
    with pytest.raises(StoreError, match="owns no Drive storage") as info:
        store.files.insert("x", b"", "x", mine.folder_id)  # straight at My Drive: Drive says no
    assert "HTTP 403 storageQuotaExceeded" in str(info.value)


def test_a_trashed_file_counts_as_absent(emulator):
    store = fresh()
    version = store.put("k", b"x")
    emulator.trash(version.split(":")[0])
    assert store.get("k") is None
    assert store.delete("k") is False
    with pytest.raises(Conflict):
        store.put("k", b"y", expect=version)
    store.put("k", b"new", expect=ABSENT)
    assert store.get("k").data == b"new" and store.list() == ["k"]


def test_an_expired_access_token_is_refreshed(emulator):
    store = fresh()
    store.put("k", b"x")
    before = emulator.statuses.get(401, 0)
    emulator.expire_tokens()
    assert store.get("k").data == b"x"
    assert emulator.statuses.get(401, 0) > before


def test_a_version_drive_would_not_take_is_never_sent(emulator):
    store = fresh()
    version = store.put("k", b"x")
    other = store.put("other", b"y")
    errors = emulator.statuses.get(500, 0)
    for bad in ["1.deadbeef", version.split(":")[0] + ':"broken', version + "x", ""]:
        with pytest.raises(Conflict) as info:
            store.put("k", b"z", expect=bad)
        assert info.value.actual == version
    with pytest.raises(Conflict):  # another key's version never writes that key's file
        store.put("k", b"z", expect=other)
    assert emulator.statuses.get(500, 0) == errors
    assert store.get("other").data == b"y" and store.get("k").data == b"x"


def test_a_pydrive2_sign_in_is_reused_without_oauth2client_sending_requests(emulator):
    """PyDrive2 users sign in with GoogleAuth; the store reuses its refresh token through
    google-auth (oauth2client is deprecated)."""
    pytest.importorskip("pydrive2")
    from oauth2client.client import OAuth2Credentials
    from pydrive2.auth import GoogleAuth

    info = emulator.add_user("dora@example.com")
    gauth = GoogleAuth()
    gauth.credentials = OAuth2Credentials(None, info["client_id"], info["client_secret"], info["refresh_token"],
                                          None, info["token_uri"], "test")
    store = GDriveStore("pydrive2-user/store", credentials=gauth)
    store.put("k", b"v")
    assert store.get("k").data == b"v"
    assert emulator.files[store.folder_id]["_owner"] == "dora@example.com"


def test_a_revoked_sign_in_is_a_store_error_that_says_sign_in_again(emulator):
    credentials = emulator.user_credentials_file("erin@example.com")
    store = GDriveStore("revoked/store", credentials_file=str(credentials), backoff=0.01)
    store.put("k", b"v")
    refresh_token = json.loads(credentials.read_text())["refresh_token"]
    with emulator.lock:
        del emulator.refresh_tokens[refresh_token]  # the user revoked the app's access
    emulator.expire_tokens()
    with pytest.raises(StoreError, match="sign in again") as info:
        store.get("k")
    assert refresh_token not in str(info.value)
