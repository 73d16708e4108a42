"""A save shares the arrays unchanged since the last save of its name instead of copying
them (sessionkit/jobs/capture.py): every generation still loads exactly as it was when
saved, byte for byte, while uploads overlap saves and the caller changes its arrays in
place; and ``copied_bytes`` says what a save copied."""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict, namedtuple

import numpy as np

from sessionkit import Job
from sessionkit.jobs import chunks
from sessionkit.jobs.manifest import load
from sessionkit.store.local import LocalStore

from support.faulty import Wrapped

MB = 1024 * 1024
Point = namedtuple("Point", "x y")  # at module level: pickle finds a class by its name


class Held(Wrapped):
    """A local store whose chunk writes wait while ``held`` is clear: it stands for a slow
    uplink (Drive at the link's speed), so saves are captured while an upload is out."""

    def __init__(self, inner, *, delay: float = 0.0) -> None:
        super().__init__(inner)
        self.held = threading.Event()
        self.held.set()
        self.out = threading.Event()  # set once a chunk write has waited at the hold
        self.delay = delay  # seconds each chunk write takes at least (a slow link)

    def write(self, op, key, do):
        if "/chunks/" in key and op != "delete":
            if not self.held.is_set():
                self.out.set()
                assert self.held.wait(60), "the hold was never let go"
            if self.delay:
                time.sleep(self.delay)
        return do()


def _layers(n: int = 6) -> dict:
    return {f"layer{i}": np.full(MB // 4, float(i), dtype=np.float32) for i in range(n)}


def _expected(state: dict) -> dict:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _same(loaded: dict, expected: dict) -> bool:
    return loaded.keys() == expected.keys() and all(
        loaded[k].tobytes() == expected[k].tobytes() if isinstance(expected[k], np.ndarray) else loaded[k] == expected[k]
        for k in expected)


def test_a_save_copies_only_the_arrays_changed_since_the_last_save_of_its_name(tmp_path):
    store = Held(LocalStore(tmp_path / "s"))
    job = Job(store, "j", keep_blobs=3)
    state = {"step": 1, **_layers()}
    store.held.clear()
    first = job.save_blob("m", state)
    assert store.out.wait(10) and not first.done  # the first is out, held
    assert first.copied_bytes == first.captured_bytes == 6 * MB
    state["layer2"][7] += 1.0  # changed in place, after the save returned
    state["step"] = 2
    second = job.save_blob("m", state)  # queued behind the first
    assert (second.captured_bytes, second.copied_bytes) == (6 * MB, MB)
    state["layer4"][0] = -1.0
    state["step"] = 3
    third = job.save_blob("m", state)  # replaces the queued one
    assert third.copied_bytes == MB, "compared with the last capture (the second), not the first"
    store.held.set()
    assert third.wait(60) and job.wait_saved(60)
    job.checkpoint(done=3)
    again = Job(LocalStore(tmp_path / "s"), "j").load_blob("m")
    assert again["step"] == 3 and again["layer2"][7] == 3.0 and again["layer4"][0] == -1.0
    assert first.wait(1) != third.wait(1)


def test_a_changed_sign_of_zero_is_a_change():
    """-0.0 == 0.0 as floats; a save compares bytes."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        job = Job(LocalStore(tmp), "z")
        weights = np.zeros(MB // 4, dtype=np.float32)
        job.save_blob("m", weights)
        weights[5] = -0.0
        handle = job.save_blob("m", weights)
        assert handle.copied_bytes == MB
        job.checkpoint()
        loaded = Job(LocalStore(tmp), "z").load_blob("m")
        assert np.signbit(loaded[5]) and not np.signbit(loaded[4])


def test_every_kept_generation_loads_as_saved_while_uploads_overlap_saves_and_arrays_change(tmp_path):
    """Forty saves of six arrays on a slow store (each chunk write 20 ms, so most saves are
    captured while the one before is out): each round changes some arrays in place (a value,
    a sign of zero, an array replaced by a new one of another shape) and sometimes holds the
    uploads. Every generation the manifest names loads as the state was at its step."""
    rng = random.Random(30)
    store = Held(LocalStore(tmp_path / "s"), delay=0.02)
    job = Job(store, "r", keep_blobs=3)
    state = {"step": 0, **_layers()}
    expected: dict[int, dict] = {}
    for step in range(1, 41):
        for name in rng.sample(sorted(k for k in state if k != "step"), rng.randint(0, 3)):
            change = rng.choice(["value", "zero", "shape"])
            if change == "value":
                state[name][rng.randrange(state[name].size)] += 1.0
            elif change == "zero":
                state[name][rng.randrange(state[name].size)] *= -0.0
            else:
                state[name] = np.full(rng.choice([MB // 4, MB // 8, 1000]), float(step), dtype=np.float32)
        state["step"] = step
        if step % 9 == 0:
            store.held.clear()
        elif step % 9 == 3:
            store.held.set()
        expected[step] = _expected(state)
        job.save_blob("m", state)
        job.checkpoint(done=step)
    store.held.set()
    assert job.wait_saved(120)
    job.checkpoint(done=40)
    entries = load(store, "r").manifest.blobs["m"]
    assert len(entries) == 3
    for entry in entries:
        loaded = chunks.load_object(store, "r", entry)
        assert _same(loaded, expected[loaded["step"]]), loaded["step"]
    newest = Job(LocalStore(tmp_path / "s"), "r").load_blob("m")
    assert newest["step"] == 40 and _same(newest, expected[40])


def test_arrays_in_an_ordered_dict_are_chunks_of_their_own_and_it_loads_as_an_ordered_dict(tmp_path):
    """torch's state_dict() is an OrderedDict: its tensors must be found (an unchanged one
    then costs nothing again), and what loads is an OrderedDict with its attributes."""
    job = Job(LocalStore(tmp_path / "s"), "o", keep_blobs=2)
    weights = OrderedDict((f"layer{i}", np.full(MB // 4, float(i), dtype=np.float32)) for i in range(4))
    weights.version = 3
    first = job.save_blob("m", {"weights": weights, "at": Point(1, 2)})
    job.checkpoint()
    one = sum(len(job.store.get(k).data) for k in job.store.list("jobs/o/chunks/"))
    weights["layer1"] += 1.0
    second = job.save_blob("m", {"weights": weights, "at": Point(3, 4)})
    job.checkpoint()
    assert first.captured_bytes == 4 * MB and second.copied_bytes == MB
    two = sum(len(job.store.get(k).data) for k in job.store.list("jobs/o/chunks/"))
    assert two <= 1.3 * one, "the unchanged arrays were stored again"
    loaded = Job(LocalStore(tmp_path / "s"), "o").load_blob("m")
    assert type(loaded["weights"]) is OrderedDict and loaded["weights"].version == 3
    assert list(loaded["weights"]) == list(weights) and (loaded["weights"]["layer1"] == 2.0).all()
    assert loaded["at"] == Point(3, 4) and type(loaded["at"]) is Point


def test_a_changed_array_is_copied_into_the_last_captures_buffer_once_no_snapshot_holds_it():
    """Saves that do not overlap (the usual case) reuse the memory of the last one: fresh
    memory costs a page fault per 4 KB. A buffer a snapshot still holds is never written."""
    from sessionkit.jobs.capture import HostBuffers, capture_object

    buffers = HostBuffers()
    weights = {"w": np.full(MB // 4, 1.0, dtype=np.float32)}
    first = capture_object(weights, "pickle", buffers)
    held = first.arrays[0]
    weights["w"] += 1.0
    second = capture_object(weights, "pickle", buffers)  # the first is not sent: it holds its buffer
    assert second.arrays[0] is not held and (held == 1.0).all() and (second.arrays[0] == 2.0).all()
    first.discard()
    second.discard()  # both sent
    weights["w"] += 1.0
    third = capture_object(weights, "pickle", buffers)
    assert third.copied == MB and (third.arrays[0] == 3.0).all()
    weights["w"] += 1.0
    reused = third.arrays[0]
    third.discard()
    fourth = capture_object(weights, "pickle", buffers)
    assert fourth.arrays[0] is reused and (fourth.arrays[0] == 4.0).all()


def test_a_masked_array_is_saved_again_without_error(tmp_path):
    """A numpy subclass's raw bytes are not its data (a masked array's mask): it is copied,
    never compared byte for byte."""
    job = Job(LocalStore(tmp_path / "s"), "ma")
    masked = np.ma.masked_array(np.arange(4.0), mask=[0, 1, 0, 0])
    for _ in range(2):
        job.save_blob("m", {"a": masked}).wait(30)
    job.checkpoint()
    loaded = Job(LocalStore(tmp_path / "s"), "ma").load_blob("m")["a"]
    assert list(np.asarray(loaded)) == [0.0, 1.0, 2.0, 3.0]
