"""Blobs of any size: files and folders streamed to every backend, checked on read, current
only at a checkpoint, the last ``keep_blobs`` generations kept; and a 200 MB blob through the
Drive emulator with latency and dropped connections, in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sessionkit
from sessionkit import Job
from sessionkit.errors import BlobError, SessionkitWarning

from conftest import TESTS, drive_emulator

MB = 1024 * 1024


def _folder(root: Path, seed: int) -> Path:
    """A checkpoint-like folder: nested files, two with equal bytes, one over a chunk."""
    files = {"model.safetensors": os.urandom(9 * MB), "optimizer.pt": b"opt %d" % seed,
             "sub/trainer_state.json": json.dumps({"step": seed}).encode(), "copy/a": b"same", "copy/b": b"same"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _contents(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_blob_round_trips_and_is_current_only_after_a_checkpoint(store, tmp_path):
    src = _folder(tmp_path / "ckpt", 1)
    job = Job(store, "train")
    job.save_dir("checkpoint", src)
    assert Job(store, "train").load_dir("checkpoint", tmp_path / "early") is None  # not yet named
    job.checkpoint()
    # equal files are one chunk: 4 distinct contents, and the folder's index
    assert len(store.list("jobs/train/chunks/")) == 5
    out = Job(store, "train").load_dir("checkpoint", tmp_path / "restore" / "checkpoint-1")
    assert _contents(out) == _contents(src)
    assert sorted(p.name for p in out.parent.iterdir()) == ["checkpoint-1"]  # no partial folder left


def test_a_file_blob_round_trips_and_says_what_kind_it_is(store, tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(3 * MB + 7))
    job = Job(store, "f")
    digest = job.save_file("weights", src).wait()
    job.checkpoint()
    again = Job(store, "f")
    assert again.load_file("weights", tmp_path / "w2") == tmp_path / "w2"
    assert (tmp_path / "w2").read_bytes() == src.read_bytes()
    assert store.list(f"jobs/f/chunks/{digest}") == [f"jobs/f/chunks/{digest}"]  # its index
    with pytest.raises(BlobError, match=r"is a file; get it with job.load_file\('weights', path\)"):
        again.load_blob("weights")
    with pytest.raises(BlobError, match="is a file"):
        again.load_dir("weights", tmp_path / "nope")
    assert again.load_file("other", tmp_path / "x") is None


def test_a_damaged_folder_falls_back_to_the_previous_generation_and_old_ones_are_removed(tmp_path):
    store = sessionkit.open_store(tmp_path / "store")
    job = Job(store, "g", keep_blobs=2)
    for step in range(1, 5):
        folder = tmp_path / f"c{step}"
        folder.mkdir()
        (folder / "weights").write_bytes(b"w%d" % step)
        (folder / "config").write_bytes(b"same every time")
        job.save_dir("checkpoint", folder)
        job.checkpoint()
    job.checkpoint()  # a later write removes what no generation names
    names = {store.get(k).data for k in store.list("jobs/g/chunks/")}
    assert {b"w4", b"w3", b"same every time"} <= names and b"w1" not in names
    newest = next(k for k in store.list("jobs/g/chunks/") if store.get(k).data == b"w4")
    store.put(newest, b"damaged")
    with pytest.warns(SessionkitWarning, match="does not match its hash"):
        out = Job(store, "g").load_dir("checkpoint", tmp_path / "restored")
    assert (out / "weights").read_bytes() == b"w3"


def test_blob_names_and_sources_are_checked(tmp_path):
    job = Job(sessionkit.open_store(tmp_path / "s"), "n")
    with pytest.raises(ValueError, match="blob name"):
        job.save_file("a/b", tmp_path)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        job.save_dir("d", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="not a file"):
        job.save_file("f", tmp_path)


def test_checkpoint_done_records_a_frameworks_steps_with_its_blob(tmp_path):
    store = sessionkit.open_store(tmp_path / "s")
    job = Job(store, "steps", total=100)
    job.set_status("running")
    job.state["global_step"] = 40
    job.checkpoint(done=40)
    again = Job(store, "steps")
    assert again.done == 40 and again.state == {"global_step": 40} and again.total == 100
    job.checkpoint(done=60)
    assert Job(store, "steps").done == 60
    with pytest.raises(ValueError, match="done must be an int"):
        job.checkpoint(done=-1)


@pytest.mark.slow
def test_a_200_mb_blob_goes_to_drive_in_chunks_survives_dropped_connections_in_bounded_memory(tmp_path):
    """Through the real googleapiclient in another process, with 150 ms of latency on every
    request: 13 content chunks of 16 MB, each a resumable upload of 8 MB requests; the second
    request of the first loses its connection twice (httplib2 resends once by itself, then
    sessionkit asks the session what it holds and goes on from there; the server kept half
    of the first try); the blob loads back equal, and the process's peak memory grows by
    less than 96 MB over its baseline (four chunks go up at once, each in 8 MB requests
    that the client copies; a chunk is read back whole, 16 MB)."""
    emulator = drive_emulator()
    store = sessionkit.open_store(f"gdrive://sessionkit-tests/big-{tmp_path.name}")
    source = tmp_path / "big.bin"
    with open(source, "wb") as fh:
        for _ in range(25):
            fh.write(os.urandom(8 * MB))
    emulator.latency = 0.15
    emulator.fail_chunk(1, "drop-midchunk", "drop-midchunk")
    before, faults_before = dict(emulator.by_kind), emulator.faults_served
    proc = subprocess.run([sys.executable, str(TESTS / "support" / "workers.py"), "blob_round_trip", store.url, str(source),
                           str(tmp_path / "back.bin")], capture_output=True, text=True, timeout=900,
                          env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    counts = {k: emulator.by_kind.get(k, 0) - before.get(k, 0) for k in emulator.by_kind}
    assert counts["upload-session"] == 13  # one per content chunk, resumed: never restarted
    # four chunks go up at once: the two drops may hit one request (then sessionkit asks the
    # session where to go on) or two (httplib2's own resend carries each)
    assert counts.get("upload-status", 0) <= 1
    # 25 requests of up to 8 MB; the resumed one goes on from the half the server kept, which
    # moves that chunk's later boundary (the two dropped tries are refused before counting)
    assert 25 <= counts["upload-chunk"] <= 27
    # both drops were served (httplib2's own resend carries one without the client counting it)
    assert emulator.faults_served - faults_before == 2
    assert (tmp_path / "back.bin").stat().st_size == 200 * MB
    with open(source, "rb") as a, open(tmp_path / "back.bin", "rb") as b:
        while chunk := a.read(8 * MB):
            assert chunk == b.read(8 * MB)
    grown_mb = (report["peak_kb"] - report["baseline_kb"]) / 1024
    print(f"200 MB round trip: peak memory +{grown_mb:.1f} MB; requests {report['stats']['requests']}")
    assert grown_mb < 96, f"peak memory grew by {grown_mb:.0f} MB during a 200 MB upload and download"
