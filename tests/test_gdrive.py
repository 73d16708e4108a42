"""The gdrive:// store against the Drive v2 emulator, through the real googleapiclient,
httplib2, oauth2client and PyDrive2 stack (no code of ours is patched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import sessionkit
from sessionkit import Job
from sessionkit.clock import FakeClock
from sessionkit.errors import StoreError

from support.stores import heartbeat_costs, lease_and_fencing

pytest.importorskip("googleapiclient")
WORKERS = str(Path(__file__).parent / "support" / "workers.py")


def fresh(emulator, **kw):
    from sessionkit.store.gdrive import GDriveStore

    kw.setdefault("backoff", 0.01)
    return GDriveStore(f"gdrive-tests/{uuid.uuid4().hex[:8]}", **kw)


def test_open_store_by_path_and_by_folder_id(emulator):
    by_path = sessionkit.open_store(f"gdrive://shared/{uuid.uuid4().hex[:8]}")
    by_path.put("k", b"v")
    by_id = sessionkit.open_store(f"gdrive://id/{by_path.folder_id}")
    assert by_id.get("k").data == b"v" and by_id.url == f"gdrive://id/{by_path.folder_id}"
    with pytest.raises(ValueError, match="names no folder"):
        sessionkit.open_store("gdrive://")


def test_each_fault_is_retried_and_counted(emulator):
    store = fresh(emulator)
    v = store.put("k", b"1")
    before, served = store.stats["retries"], emulator.faults_served
    emulator.inject("500", "403rate", "429", "drop", "slow")
    assert store.get("k").data == b"1"
    assert emulator.faults_served - served == 5
    # ours retried the three error answers; httplib2 itself reconnects once after a dropped
    # connection on a GET; a slow answer is only late
    assert store.stats["retries"] - before >= 3
    assert {"500", "403", "429"} <= set(store.stats["errors"])
    assert store.put("k", b"2", expect=v)


def test_a_412_is_a_conflict_only_when_another_write_is_there(emulator):
    from sessionkit.store.gdrive import GDriveStore

    store = fresh(emulator)
    other = GDriveStore(folder_id=store.folder_id, backoff=0.01)
    v1 = store.put("k", b"1")
    v2 = other.put("k", b"2", expect=v1)
    with pytest.raises(sessionkit.Conflict) as info:
        store.put("k", b"3", expect=v1)
    assert (info.value.expected, info.value.actual) == (v1, v2)
    # a 412 although nothing changed (real Drive is reported to answer so) is tried again
    emulator.inject("412", None, "412")
    v3 = store.put("k", b"3", expect=v2)
    assert store.get("k").version == v3 and other.get("k").data == b"3"


def test_giving_up_names_the_key_and_status_and_no_secret(emulator):
    store = fresh(emulator, retries=3)
    emulator.inject("500", "500", "500")
    with pytest.raises(StoreError) as info:
        store.get("some/key")
    text = str(info.value)
    assert "'some/key'" in text and "HTTP 500" in text and "3 tries" in text
    assert "emu-" not in text and "PRIVATE KEY" not in text


def test_missing_credentials_are_a_clear_error(emulator, monkeypatch):
    from sessionkit.store.gdrive import GDriveStore

    monkeypatch.delenv("SESSIONKIT_GDRIVE_CREDENTIALS")
    with pytest.raises(StoreError, match="authenticate_user"):
        GDriveStore("x")


def test_create_only_race_has_one_winner(emulator):
    a, b = fresh(emulator), None
    from sessionkit.store.gdrive import GDriveStore

    b = GDriveStore(folder_id=a.folder_id, backoff=0.01)
    # b creates while a's create is in flight: emulate with two sequential creates and the
    # duplicate check: the first created file wins, the second writer gets Conflict
    va = a.put("lock", b"a", expect=sessionkit.store.ABSENT)
    with pytest.raises(sessionkit.Conflict):
        b.put("lock", b"b", expect=sessionkit.store.ABSENT)
    assert a.get("lock") == sessionkit.store.Record(b"a", va) and a.list() == ["lock"]


@pytest.mark.slow
def test_three_processes_100_cas_increments_each_end_exact(emulator, tmp_path):
    url = fresh(emulator).url  # create the store once; the workers open it by id
    procs = [subprocess.Popen([sys.executable, WORKERS, "drive_count", url, "100"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy()) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    value = json.loads(sessionkit.open_store(url).get("counter").data)["value"]
    assert value == 300
    assert sum(json.loads(o)["conflicts"] for o, _ in outs) > 0


def test_lease_and_fencing_on_drive(emulator):
    lease_and_fencing(fresh(emulator))


@pytest.mark.slow
def test_a_job_completes_under_ten_percent_faults_with_no_item_lost(emulator, tmp_path):
    store = fresh(emulator)
    emulator.random_faults(0.10, ["500", "403rate"], seed=7)
    done = []
    job = Job(store, "faulty", checkpoint_items=10)
    for item in job.track(range(60), display=False):
        done.append(item)
    emulator.random_faults(0, [])
    assert job.status == "completed" and sorted(set(done)) == list(range(60)) and len(done) == 60
    assert store.stats["retries"] > 0 and emulator.faults_served > 0
    assert Job(store, "faulty").done == 60


def test_a_heartbeat_costs_one_request_in_steady_state(emulator):
    assert heartbeat_costs(fresh(emulator)) == [1] * 5


def test_without_the_google_client_the_error_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_client(name, *args, **kw):
        if name.startswith("googleapiclient"):
            raise ImportError("No module named 'googleapiclient'", name="googleapiclient")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_client)
    from sessionkit.store.gdrive import GDriveStore

    with pytest.raises(StoreError, match=r"sessionkit-runtime\[gdrive\].*googleapiclient"):
        GDriveStore("x")


def test_what_a_job_checkpoint_costs_on_drive(emulator):
    """docs/gdrive.md's figures, with search lag on (nothing here searches). A position
    job keeps its done ranges in the manifest, and the compare-and-swap itself fences: a
    checkpoint is one update; every tenth also keeps manifest.prev (one more)."""
    from sessionkit.jobs.checkpoint import PREV_EVERY

    store = fresh(emulator)
    job = Job(store, "j", clock=FakeClock(), checkpoint_every=1e9, checkpoint_items=10)
    it = job.track(range(1000), display=False)
    for _ in range(11):
        next(it)
    lists_before = store.stats["by_method"].get("list", 0)  # opening by path searched
    costs = []
    for _ in range(2 * PREV_EVERY):
        before = store.stats["requests"]
        for _ in range(10):
            next(it)
        costs.append(store.stats["requests"] - before)
    assert sorted(costs) == [1] * (2 * PREV_EVERY - 2) + [2, 2], costs
    assert store.stats["by_method"].get("list", 0) == lists_before


def test_a_stale_cached_id_is_rewritten_not_lost(emulator):
    from sessionkit.store.gdrive import GDriveStore

    a = fresh(emulator)
    a.put("k", b"1")
    b = GDriveStore(folder_id=a.folder_id, backoff=0.01)
    b.delete("k")
    assert a.put("k", b"2")  # a's cached id is gone: 404, then created anew
    assert b.get("k").data == b"2" and a.list() == ["k"]


def test_a_running_job_reads_control_requests_every_10_s_on_a_remote_store(emulator):
    """Pause/cancel requests are read every REMOTE_CONTROL_POLL seconds on a remote store,
    and a read of an absent request costs one request (the catalog's etag is unchanged):
    a job with nothing to checkpoint makes 6 requests a minute, and still obeys a pause."""
    from sessionkit import jobs
    from sessionkit.jobs.jobrecord import REMOTE_CONTROL_POLL

    store = fresh(emulator)
    clock = FakeClock()
    job = Job(store, "j", clock=clock, checkpoint_every=1e9)
    assert job.control_poll == REMOTE_CONTROL_POLL == 10.0
    assert Job(sessionkit.open_store(f"memory://{uuid.uuid4().hex}"), "j").control_poll == 1.0
    it = job.track(range(100_000), display=False)
    clock.advance(0.1)
    next(it)
    before = store.stats["requests"]
    for _ in range(600):  # a minute of 0.1 s items
        clock.advance(0.1)
        next(it)
    assert 5 <= store.stats["requests"] - before <= 6  # one read per 10 s, edges aside
    jobs.request(store, "j", "pause")
    ran = 0
    while ran <= 200:
        clock.advance(0.1)  # time passes before every item, as it does for real
        if next(it, None) is None:
            break
        ran += 1
    assert job.status == "paused" and ran <= 101  # obeyed within one poll interval (10 s)


def test_a_read_that_races_a_write_returns_the_new_version_without_starting_over(emulator):
    """get reads metadata, then content. When a write lands between the two, the content is
    the new write's: the metadata read once more vouches for it (its checksum matches), so
    the read costs one request more instead of failing under contention ('keeps changing')."""
    import threading

    store = fresh(emulator)
    store.put("k", b"old")
    store.get("k")  # ids and catalog cached
    emulator.inject(None, "hang")  # the metadata read passes; the download waits
    got = {}
    reader = threading.Thread(target=lambda: got.update(record=store.get("k")))
    before = store.stats["requests"]
    reader.start()
    emulator.hanging.wait(30)
    from sessionkit.store.gdrive import GDriveStore

    writer = GDriveStore(folder_id=store.folder_id, backoff=0.01)
    new_version = writer.put("k", b"new")
    emulator.release_hang()
    reader.join(30)
    record = got["record"]
    assert record.data == b"new" and record.version == new_version
    assert store.stats["requests"] - before == 3  # metadata, content, metadata again


def test_a_read_racing_a_busy_writer_waits_for_a_quiet_moment_instead_of_failing(emulator):
    """Three runtimes hammering one key with compare-and-swap made a reader lose the race eight
    times in a row in CI ('keeps changing while being read'). Here two writes land around every
    content download for the first twelve tries; the read still returns the final record."""
    from sessionkit.store.gdrive import GDriveStore

    store = fresh(emulator)
    store.put("k", b"0")
    store.get("k")
    writer = GDriveStore(folder_id=store.folder_id, backoff=0.01)
    download, raced = store.files.download, []

    def download_between_two_writes(key, file_id):
        if len(raced) < 12:
            raced.append(writer.put("k", f"{len(raced)}a".encode()))
            data = download(key, file_id)
            writer.put("k", f"{len(raced)}b".encode())
            return data
        return download(key, file_id)

    store.files.download = download_between_two_writes
    record = store.get("k")
    assert len(raced) == 12
    assert record.data == b"12b" and record.version == writer.get("k").version


def test_the_emulators_bandwidth_limit_holds_uploads_and_downloads_to_its_rate(emulator, tmp_path):
    """DriveEmulator.bandwidth (bytes per second) carries every request and answer body over
    one shared link: 3 MB up and 3 MB back at 4 MB/s take at least 1.5 s (a lower bound,
    which sleeping guarantees); set remotely, it is reported back, and None lifts it."""
    import time

    from drive_emulator import set_anomalies_remotely

    store = fresh(emulator)
    store.put("warm", b"1")
    data = os.urandom(3 * 1024 * 1024)
    with pytest.raises(ValueError, match="bytes per second"):
        emulator.set_bandwidth(0)
    state = set_anomalies_remotely(emulator.endpoint, [], ca_file=str(emulator.cert), bandwidth=4 * 1024 * 1024)
    assert state["bandwidth"] == 4 * 1024 * 1024
    t0 = time.monotonic()
    store.put("big", data)
    assert store.get("big").data == data
    assert time.monotonic() - t0 >= 1.5
    assert set_anomalies_remotely(emulator.endpoint, [], ca_file=str(emulator.cert), bandwidth=None)["bandwidth"] is None



def test_threads_of_one_store_creating_keys_at_once_all_land_in_the_catalog(emulator):
    """A save sends four chunks at once from threads of one store, each a create that adds
    its key to the catalog by compare-and-swap. A thread read the keys, then (while it
    encoded them) another thread's change landed, and it swapped on that change's nonce:
    the swap succeeded and dropped the other key (a chunk the manifest names, gone from
    the catalog). Before the fix a round lost a key about one time in three with a
    catalog of 1,500 entries (a job's after some hundred saves); four rounds here. The
    switch interval is made tiny to let threads interleave anywhere, as a busy machine does."""
    import threading

    from sessionkit.store.gdrive import GDriveStore

    store = fresh(emulator)
    store.put("first", b"x")
    # a big catalog, written through the catalog's own compare-and-swap (1,500 real creates
    # would take 18 s): entries that name no file are only read by list() here
    padding = {f"padding/{n:05d}": "no-such-file" for n in range(1500)}
    store.catalog.change("padding", lambda keys: {**keys, **padding})
    failures: list[BaseException] = []

    def create(round_: int, thread: int) -> None:
        try:
            for n in range(10):
                store.put(f"new/{round_}-{thread}-{n}", b"v")
        except Exception as exc:  # handed to the test's thread
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(4):
            threads = [threading.Thread(target=create, args=(round_, t)) for t in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures
    listed = set(GDriveStore(folder_id=store.folder_id, backoff=0.01).list("new/"))
    missing = {f"new/{r}-{t}-{n}" for r in range(4) for t in range(6) for n in range(10)} - listed
    assert not missing, f"created, then dropped from the catalog: {sorted(missing)}"


def test_a_multipart_upload_body_reads_as_googleapiclients_own_in_a_standard_parser(emulator):
    """``with_media`` builds the multipart body itself (googleapiclient's costs ~16 ms of CPU
    per MB): read by the standard library's MIME parser, a strict reader independent of
    both, it holds the same metadata and bytes, at the same upload URL, as the one
    googleapiclient builds; bytes that look like delimiters and line breaks survive."""
    import email.parser
    import email.policy

    from googleapiclient.http import MediaInMemoryUpload

    from sessionkit.store.gdrive_transport import with_media

    store = fresh(emulator)
    files = store.transport.service().files()
    body = {"title": "k", "parents": [{"id": store.folder_id}], "properties": [{"key": "a", "value": "é"}]}
    data = b"\r\n--sessionkit-0\r\n\n\x00\xff" * 1000 + b"\n"

    def parts(request):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.body)
        return [p.get_payload(decode=True) for p in message.iter_parts()]

    ours = with_media(files.insert, data, body=body, fields="id")
    theirs = files.insert(body=body, media_body=MediaInMemoryUpload(data, mimetype="application/octet-stream"),
                          fields="id")
    assert ours.uri == theirs.uri and "uploadType=multipart" in ours.uri
    (our_meta, our_data), (their_meta, their_data) = parts(ours), parts(theirs)
    assert json.loads(our_meta) == json.loads(their_meta) == body
    assert our_data == their_data == data
    assert int(ours.body_size) == len(ours.body)
