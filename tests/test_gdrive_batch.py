"""A save's chunks on Drive as one batch (issue 30's throughput): two catalog changes for a
save, not one per chunk; nothing uncatalogued outlives a killed or failed save.

Against the Drive v2 emulator through the real googleapiclient stack; the kill is a real
SIGKILL of a real process in the middle of its uploads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from sessionkit import Job
from sessionkit.errors import StoreError

from conftest import TESTS

pytest.importorskip("googleapiclient")
MB = 1024 * 1024


def fresh(**kw):
    from sessionkit.store.gdrive import GDriveStore

    kw.setdefault("backoff", 0.01)
    return GDriveStore(f"gdrive-tests/batch-{uuid.uuid4().hex[:8]}", **kw)


def uncatalogued(emulator, store) -> set[str]:
    """Titles of the live files in the store's folder that its catalog does not name (the
    emulator's own view of the folder, not the store's)."""
    store.catalog.load()
    named = set(store.catalog.keys.values()) | {store.catalog.catalog_id}
    with emulator.lock:
        return {f["title"] for f in emulator.files.values()
                if any(p["id"] == store.folder_id for p in f.get("parents") or [])
                and not (f.get("labels") or {}).get("trashed") and f["id"] not in named}


def state(n: int, mb: int = 1, value: float = 0.0) -> dict:
    return {f"layer{i}": np.full(mb * MB // 4, value + i, dtype=np.float32) for i in range(n)}


def test_the_chunks_of_saves_go_up_on_connections_kept_open_not_one_per_chunk(emulator):
    """A new connection costs two round trips on a real link before its request (TCP's and
    TLS's handshakes; the emulator adds them): three saves of 24 new chunks each must reuse
    the sending threads' connections. A thread per chunk opened 72."""
    store = fresh()
    job = Job(store, "conn")
    job.checkpoint()
    before = emulator.connections
    for value in (0.0, 100.0, 200.0):
        job.save_blob("model", state(24, value=value)).wait()
    job.checkpoint()
    opened = emulator.connections - before
    assert opened <= 16 + 4, f"{opened} connections for 3 x 26 files"
    assert (Job(store, "conn").load_blob("model")["layer3"] == 203.0).all()


def test_a_save_of_many_chunks_changes_the_catalog_twice_and_loads_back(emulator):
    store = fresh()
    job = Job(store, "train")
    job.checkpoint()
    before = dict(store.stats["by_method"])
    job.save_blob("model", state(12)).wait()  # 12 chunks of 1 MB, the skeleton and the index
    after = store.stats["by_method"]
    inserts = after.get("insert", 0) - before.get("insert", 0)
    updates = after.get("update", 0) - before.get("update", 0)
    assert inserts == 14, after
    # one catalog change reserving ids and one naming the files (one per file before: 14)
    assert updates == 2, f"{updates} updates for 14 new files"
    job.checkpoint()
    again = Job(store, "train").load_blob("model")
    assert all(np.array_equal(again[k], v) for k, v in state(12).items())
    assert uncatalogued(emulator, store) == set() and dict(store.catalog.pending) == {}


def test_a_failed_upload_leaves_no_file_and_no_reservation_behind(emulator):
    store = fresh(retries=2)
    job = Job(store, "train")
    job.checkpoint()
    # three 2 MB chunks go up in one request each; the 6 MB one in a resumable upload whose
    # first data request fails every try
    emulator.fail_chunk(0, *["500"] * 6)
    saved = {**state(3, 2), "big": np.ones(6 * MB // 4, dtype=np.float32)}
    with pytest.raises(StoreError, match="uploading"):
        job.save_blob("model", saved).wait()
    assert uncatalogued(emulator, store) == set()
    assert dict(store.catalog.pending) == {}
    assert not store.list("jobs/train/chunks/")


KILLED_SAVE = """
import sys
import numpy as np
from sessionkit import Job
from sessionkit.store import open_store

job = Job(open_store(sys.argv[1]), "train")
job.checkpoint()
job.save_blob("model", {f"layer{i}": np.full(1024 * 1024 // 4, float(i), dtype=np.float32) for i in range(12)})
job.wait_saved()
print("saved", flush=True)
"""


def test_a_save_killed_mid_upload_leaves_files_the_next_save_or_a_sweep_removes(emulator, tmp_path):
    """SIGKILL while the chunks go up (the link at 2 MB/s: 12 MB take 6 s): the files the
    killed save inserted are in the folder, uncatalogued; a later save removes them once
    their reservation is older than ``pending_max_age``, and ``sweep`` does too."""
    store = fresh()
    Job(store, "train").checkpoint()
    emulator.set_bandwidth(2 * MB)
    script = tmp_path / "killed_save.py"
    script.write_text(KILLED_SAVE)
    proc = subprocess.Popen([sys.executable, str(script), store.url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(TESTS.parent)))
    try:
        deadline = time.monotonic() + 120
        while len(uncatalogued(emulator, store)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the save never got two files up"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == -9 and "saved" not in out, err[-2000:]
    emulator.set_bandwidth(None)
    left = uncatalogued(emulator, store)
    assert len(left) >= 2 and all("/chunks/" in title for title in left), left
    assert not store.list("jobs/train/chunks/")  # nothing a reader can find
    assert store.sweep() == 0 and uncatalogued(emulator, store) == left  # younger than an hour: kept
    # a later save, on a store where an hour has passed (pending_max_age=0), removes them
    from sessionkit.store.gdrive import GDriveStore

    later = GDriveStore(folder_id=store.folder_id, backoff=0.01, pending_max_age=0)
    job = Job(later, "train")
    job.save_blob("model", state(2)).wait()
    assert uncatalogued(emulator, later) == set()
    assert len(later.list("jobs/train/chunks/")) == 4  # two chunks, the skeleton and the index


def test_sweep_removes_a_killed_saves_files_at_once_when_asked(emulator):
    from sessionkit.store.gdrive_batch import DriveNewRecords

    store = fresh()
    batch = DriveNewRecords(store)
    batch.put("jobs/x/chunks/a", b"a" * 100)
    batch.put("jobs/x/chunks/b", b"b" * 100)  # then the process dies: neither is published
    assert uncatalogued(emulator, store) == {"jobs/x/chunks/a", "jobs/x/chunks/b"}
    other = fresh()  # a sweep of another store touches nothing here
    assert other.sweep(max_age=0) == 0
    assert store.sweep(max_age=0) == 20  # the batch's twenty reserved ids, two of them files
    assert uncatalogued(emulator, store) == set() and dict(store.catalog.pending) == {}
    with pytest.raises(ValueError, match="max_age is seconds"):
        store.sweep(max_age=-1)
    with pytest.raises(ValueError, match="pending_max_age is seconds"):
        fresh(pending_max_age="1h")


def test_a_key_another_writer_catalogued_meanwhile_keeps_its_file(emulator):
    store = fresh()
    batch = store.new_records()
    batch.put("jobs/x/chunks/same", b"same bytes")
    held = store.put("jobs/x/chunks/same", b"same bytes")  # another writer got there first
    batch.publish()
    assert store.get("jobs/x/chunks/same").version == held
    assert uncatalogued(emulator, store) == set()
    with pytest.raises(StoreError, match="already published"):
        batch.put("jobs/x/chunks/late", b"late")


def test_a_batch_whose_reservations_were_swept_fails_and_catalogues_nothing(emulator):
    """A save that ran longer than pending_max_age between two catalog changes: a sweep
    took its files for a killed save's; its publish must not name files that are gone."""
    store = fresh()
    batch = store.new_records()
    batch.put("jobs/x/chunks/slow", b"slow")
    assert store.sweep(max_age=0) == 20  # the batch's twenty reserved ids, its file among them
    with pytest.raises(StoreError, match="pending_max_age"):
        batch.publish()
    assert store.list("jobs/x/") == [] and uncatalogued(emulator, store) == set()
