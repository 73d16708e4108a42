"""Background saves (issue 30): a save returns once the state is captured; the generation that
names a blob carries the step it was captured at; unchanged chunks are not sent again; chunks
shared by kept generations survive, orphans of killed saves do not; old whole blobs load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import sessionkit
from sessionkit import Job
from sessionkit.errors import StoreFull
from sessionkit.integrations.guard import TrainingGuard
from sessionkit.jobs import blobs, chunks
from sessionkit.jobs.manifest import Manifest, decode, load, manifest_key
from sessionkit.store.local import LocalStore

from conftest import TESTS
from support import WORKERS
from support.faulty import Wrapped

MB = 1024 * 1024


class Gate(Wrapped):
    """A local store whose chunk writes wait until ``open()``: it stands for a slow uplink
    (a 1 GB state takes ~25 s to reach Drive), so a test can act while an upload is out.
    It records the manifests written, in order, and the chunk bytes sent."""

    def __init__(self, inner, *, shut: bool = True, full: bool = False) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.waiting = threading.Event()  # set once an upload is out, held at the gate
        if not shut:
            self.gate.set()
        self.full = full
        self.manifests: list[Manifest] = []
        self.chunk_bytes = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        self.gate.set()

    def write(self, op, key, do):
        if "/chunks/" in key and op != "delete":
            self.waiting.set()
            assert self.gate.wait(60), "the gate was never opened"
            if self.full:
                raise StoreFull(f"{op} {key!r}: the quota is used up (injected)", key=key)
        result = do()
        with self._lock:
            if key.endswith("/manifest") and op == "put":
                record = self.inner.get(key)
                self.manifests.append(Manifest.from_json(decode(key, "", record.data, record.version)))
                self.order.append("manifest")
            elif "/chunks/" in key and op != "delete":
                self.chunk_bytes += len(self.inner.get(key).data)
                self.order.append("chunk")
        return result


def _state(step: int, changed: int = 0) -> dict:
    """Eight 1 MB float32 arrays; layer i holds i, except the first ``changed``: step + i / 2."""
    arrays = {f"layer{i}": np.full(MB // 4, step + i / 2 if i < changed else float(i), dtype=np.float32)
              for i in range(8)}
    return {"step": step, "weights": arrays}


def test_a_save_returns_before_its_upload_and_a_checkpoint_after_it_carries_its_step(tmp_path):
    store = Gate(LocalStore(tmp_path / "s"))
    job = Job(store, "train", total=100)
    job.set_status("running")
    for step in (10, 20, 30):  # 20 is queued behind 10 and replaced by 30 before it starts
        state = _state(step, changed=8)
        handle = job.save_blob("model", state)
        state["weights"]["layer0"][:] = -1  # the caller changes its state at once: the save has a copy
        job.checkpoint(done=step)
        assert store.waiting.wait(10) and not handle.done
    assert Job(LocalStore(tmp_path / "s"), "train").done == 0, "nothing named before the upload is whole"
    store.open()
    assert handle.wait(60) and job.wait_saved(60)
    again = Job(LocalStore(tmp_path / "s"), "train")
    assert again.done == 30 and again.load_blob("model")["step"] == 30
    assert (again.load_blob("model")["weights"]["layer0"] == 30).all()
    named = [m for m in store.manifests if m.blobs.get("model")]
    assert [m.done for m in named] == [10, 30], "the checkpoint behind the replaced save was dropped"
    for m in named:  # every generation names the blob captured at its own done count
        assert chunks.load_object(store, "train", m.blobs["model"][0])["step"] == m.done


class Counted(Gate):
    """A gate that counts the chunk writes held at it at once."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.held = 0
        self.most = 0
        self.changed = threading.Condition()

    def write(self, op, key, do):
        if "/chunks/" not in key or op == "delete":
            return super().write(op, key, do)
        with self.changed:
            self.held += 1
            self.most = max(self.most, self.held)
            self.changed.notify_all()
        try:
            return super().write(op, key, do)
        finally:
            with self.changed:
                self.held -= 1


def test_at_most_parallel_chunks_are_sent_at_once(tmp_path, monkeypatch):
    """A send starts as it is added: the sender waited for the oldest only after starting
    the next, so five 16 MB chunks were out at once where the docs say four (the 200 MB
    Drive round trip grew past its memory bound). With the uplink held shut, the fifth
    never starts until one of the four ends."""
    monkeypatch.setattr(chunks, "CHUNK", chunks.SMALL)  # 1 MB chunks: a small file makes many
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(2 * chunks.PARALLEL * chunks.SMALL))
    store = Counted(LocalStore(tmp_path / "s"))
    handle = Job(store, "j").save_file("f", source)
    try:
        with store.changed:
            assert store.changed.wait_for(lambda: store.held == chunks.PARALLEL, 60), store.held
            # with the bug the fifth arrives within milliseconds; two seconds is a wide margin
            assert not store.changed.wait_for(lambda: store.held > chunks.PARALLEL, 2), store.held
    finally:
        store.open()
    assert handle.wait(60)
    assert store.most == chunks.PARALLEL


def test_the_bytes_of_the_chunks_out_at_once_are_bounded(tmp_path, monkeypatch):
    """Eight sends of 16 MB chunks would hold 128 MB of request buffers: at most
    IN_FLIGHT_BYTES are out at once, however many sends PARALLEL allows."""
    monkeypatch.setattr(chunks, "CHUNK", chunks.SMALL)
    monkeypatch.setattr(chunks, "IN_FLIGHT_BYTES", 3 * chunks.SMALL)  # three 1 MB chunks
    source = tmp_path / "f.bin"
    source.write_bytes(os.urandom(8 * chunks.SMALL))
    store = Counted(LocalStore(tmp_path / "s"))
    handle = Job(store, "j").save_file("f", source)
    try:
        with store.changed:
            assert store.changed.wait_for(lambda: store.held == 3, 60), store.held
            assert not store.changed.wait_for(lambda: store.held > 3, 2), store.held
    finally:
        store.open()
    assert handle.wait(60)
    assert store.most == 3


def test_a_save_while_one_is_in_flight_replaces_the_queued_one_and_its_handle_answers_with_it(tmp_path):
    store = Gate(LocalStore(tmp_path / "s"))
    job = Job(store, "j")
    first = job.save_blob("m", _state(1, changed=8))
    assert store.waiting.wait(10)  # the first is in flight
    second = job.save_blob("m", _state(2, changed=8))
    third = job.save_blob("m", _state(3, changed=8))
    store.open()
    assert third.wait(60) == second.wait(60) != first.wait(60)
    job.checkpoint()
    assert Job(LocalStore(tmp_path / "s"), "j").load_blob("m")["step"] == 3
    sent = {k.rsplit("/", 1)[1] for k in store.list("jobs/j/chunks/")}
    assert second.hash in sent and len(sent) <= 2 * (8 + 2), "the replaced save was never sent"


def test_a_failing_upload_surfaces_at_the_next_save_and_names_nothing(tmp_path):
    store = Gate(LocalStore(tmp_path / "s"), shut=False, full=True)
    job = Job(store, "j")
    handle = job.save_blob("m", _state(1))
    with pytest.raises(StoreFull):
        handle.wait(60)
    with pytest.raises(StoreFull):
        job.save_blob("m", _state(2))
    store.full = False
    job.save_blob("m", _state(3)).wait(60)
    job.checkpoint()
    assert Job(LocalStore(tmp_path / "s"), "j").load_blob("m")["step"] == 3


def test_a_failing_upload_stops_a_track_loop_at_its_next_tick(tmp_path):
    store = Gate(LocalStore(tmp_path / "s"), shut=False, full=True)
    job = Job(store, "loop", checkpoint_items=5, checkpoint_every=3600)
    ran = []
    with pytest.raises(StoreFull):
        for i in job.track(range(1000), display=False):
            ran.append(i)
            if i == 3:
                job.save_blob("m", _state(i))
    assert len(ran) < 1000
    assert Job(LocalStore(tmp_path / "s"), "loop").load_blob("m", default=None) is None


def test_a_planned_handover_waits_for_the_upload_and_names_the_blob(tmp_path):
    """TrainingGuard.end (a handover, a stop) sets the status, which checkpoints after every
    upload queued: the generation a backup takes over names the whole blob."""
    store = Gate(LocalStore(tmp_path / "s"))
    job = Job(store, "h")
    guard = TrainingGuard(job)
    guard.begin(total_steps=100)
    job.save_blob("checkpoint", _state(40, changed=8))
    assert store.waiting.wait(10)
    job.state["training"] = {"global_step": 40}
    job.checkpoint(done=40)
    guard.reason = "handover phase"
    ended = threading.Thread(target=guard.end, kwargs={"completed": False})
    ended.start()
    store.open()
    ended.join(60)
    paused = [m for m in store.manifests if m.status == "paused"]
    assert paused and paused[0].done == 40 and paused[0].blobs["checkpoint"]
    assert store.order.index("manifest", store.order.index("chunk")) > store.order.index("chunk")
    taken = Job(LocalStore(tmp_path / "s"), "h")
    assert taken.status == "paused" and taken.load_blob("checkpoint")["step"] == 40


def test_unchanged_chunks_are_not_sent_again_and_three_generations_cost_little_more_than_one(tmp_path):
    store = Gate(LocalStore(tmp_path / "s"), shut=False)
    job = Job(store, "c", keep_blobs=3)
    sizes = []
    for step in (10, 11, 12):  # the first sends eight arrays; then one of the eight changes
        before = store.chunk_bytes
        job.save_blob("m", _state(step, changed=1))
        job.checkpoint()
        sizes.append(store.chunk_bytes - before)
    assert sizes[1] < 0.2 * sizes[0] and sizes[2] < 0.2 * sizes[0], sizes
    stored = sum(len(store.get(k).data) for k in store.list("jobs/c/chunks/"))
    assert stored <= 1.3 * sizes[0]
    assert Job(LocalStore(tmp_path / "s"), "c").load_blob("m")["step"] == 12


def test_chunks_shared_by_kept_generations_survive_gc_and_dropped_ones_go(tmp_path):
    store = LocalStore(tmp_path / "s")
    job = Job(store, "g", keep_blobs=2)
    for step in range(10, 14):  # layer0 changes every time; layers 1-7 never
        job.save_blob("m", _state(step, changed=1))
        job.checkpoint()
        job.gc()
        job.checkpoint()
    job.checkpoint()
    m = load(store, "g").manifest
    named = {f"jobs/g/{f}" for e in m.blobs["m"] for f in chunks.named_files(e)}
    assert set(store.list("jobs/g/chunks/")) == named
    shared = np.full(MB // 4, 3.0, dtype=np.float32)  # layer3, in every generation
    assert (Job(store, "g").load_blob("m")["weights"]["layer3"] == shared).all()
    newest = m.blobs["m"][0]
    index = chunks.read_index(store, "g", newest)
    layer0 = index["chunks"][0][0]
    store.put(f"jobs/g/chunks/{layer0}", b"damaged")
    with pytest.warns(sessionkit.errors.SessionkitWarning, match="does not match its hash"):
        assert Job(store, "g").load_blob("m")["step"] == 12  # the kept generation before it


def test_a_generation_stored_whole_before_chunks_still_loads(tmp_path):
    store = LocalStore(tmp_path / "s")
    job = Job(store, "old")
    job.checkpoint()
    entry = blobs.save(store, "old", {"w": np.arange(5.0)}, None, sessionkit.clock.SYSTEM_CLOCK)
    loaded = load(store, "old")
    m = loaded.manifest.with_changes(generation=loaded.manifest.generation + 1, blobs={"m": (entry,)})
    store.put(manifest_key("old"), m.encode(), expect=loaded.version)
    again = Job(store, "old")
    assert (again.load_blob("m")["w"] == np.arange(5.0)).all()
    again.save_blob("m", {"w": np.arange(6.0)})
    again.checkpoint()
    again.gc()
    again.checkpoint()
    assert store.list(f"jobs/old/blobs/{entry['hash']}"), "the kept whole generation is still named"
    assert (Job(store, "old").load_blob("m")["w"] == np.arange(6.0)).all()


def _worker(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, WORKERS, *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("at", [3, 9, 14])
def test_a_sigkill_during_an_upload_leaves_the_previous_generation_and_no_orphan_for_long(tmp_path, at):
    """A hand-written training loop saving 8 arrays every 5 steps with checkpoint(done=step),
    SIGKILLed at its store write number ``at`` (inside an upload): the job resumes at a step
    whose blob it names, redoes at most two save intervals plus the running step, and the
    chunks the killed upload sent are removed by the writes of the next run."""
    folder, log = tmp_path / "s", tmp_path / "steps.log"
    killed = _worker("saves_job", folder, log, at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = LocalStore(folder)
    job = Job(store, "train")
    done = job.done
    if done:
        assert job.load_blob("model")["step"] == done, "the blob named is the one of its own step"
    finished = _worker("saves_job", folder, log, 0)
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = [line.split() for line in log.read_text().splitlines()]
    steps = [int(step) for step, _ in lines]
    assert set(steps) == set(range(40))
    # the true bound (docs/saves.md): two save intervals plus the running step, plus the
    # steps run while an upload was still out (none when uploads are faster than saves)
    busy = sum(int(b) for _, b in lines[:len(lines) - (40 - done)])
    assert len(steps) - 40 <= 2 * 5 + 1 + busy, f"{len(steps) - 40} steps ran twice ({busy} while uploading)"
    job = Job(store, "train")
    assert job.done == 40 and job.load_blob("model")["step"] == 40
    for _ in range(sessionkit.jobs.saves.ORPHAN_GRACE + 2):  # a writer without a lease waits this long
        job.checkpoint()
    job.gc()
    for _ in range(sessionkit.jobs.saves.ORPHAN_GRACE + 2):
        job.checkpoint()
    m = load(store, "train").manifest
    named = {f"jobs/train/{f}" for e in m.blobs["model"] for f in chunks.named_files(e)}
    assert set(store.list("jobs/train/chunks/")) == named, "orphans of the killed upload were left"
    print(json.dumps({"at": at, "resumed_at": done, "redone": len(steps) - 40}))


EXIT_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import numpy as np
from support.faulty import Wrapped
from sessionkit import Job
from sessionkit.store.local import LocalStore

class Slow(Wrapped):
    '''A local store whose chunk writes take 0.2 s each: a slow uplink.'''
    def write(self, op, key, do):
        if "/chunks/" in key:
            time.sleep(0.2)
        return do()

job = Job(Slow(LocalStore({path!r})), "x")
job.save_blob("m", {{"step": 5, "w": [np.full(300_000, float(i), dtype=np.float32) for i in range(6)]}})
job.checkpoint(done=5)
print("leaving", flush=True)
"""


def test_the_interpreters_exit_waits_for_the_upload_and_the_checkpoint_behind_it(tmp_path):
    code = EXIT_SCRIPT.format(tests=str(TESTS), path=str(tmp_path / "s"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "leaving", proc.stderr[-2000:]
    job = Job(LocalStore(tmp_path / "s"), "x")
    assert job.done == 5 and job.load_blob("m")["step"] == 5


def test_a_status_change_waits_for_a_failing_upload_writes_the_status_then_raises_it_once(tmp_path):
    store = Gate(LocalStore(tmp_path / "s"), shut=False, full=True)
    job = Job(store, "j")
    job.save_blob("m", _state(1))
    with pytest.raises(StoreFull):
        job.set_status("running")  # waits for the upload, writes the status, then says why
    assert Job(LocalStore(tmp_path / "s"), "j").status == "running"
    store.full = False
    job.save_blob("m", _state(3))  # raised once: the next save goes on
    assert job.wait_saved(60)
    job.checkpoint()
    assert Job(LocalStore(tmp_path / "s"), "j").load_blob("m")["step"] == 3
