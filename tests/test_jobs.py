"""Job logic on the memory store and a fake clock; the local store where files matter."""

from __future__ import annotations

import io
import json
import warnings
from datetime import timedelta

import pytest

import sessionkit
from sessionkit import LeaseLost, jobs
from sessionkit.clock import FakeClock
from sessionkit.errors import SessionkitWarning
from sessionkit.handover import Backup, Primary
from sessionkit.jobs import InvalidTransition
from sessionkit.jobs.doneset import Ranges
from sessionkit.store.memory import MemoryStore
from sessionkit.widgets.text import TextProgress


class Job(sessionkit.Job):
    """Logic tests: a job made here without ``clock=`` runs on a fake clock of its own, so its
    background writes are the fake clock's steps (the writer task's code, on no thread;
    writer threads: test_jobs_writer.py). A default argument, nothing else."""

    def __init__(self, *args, **kw):
        kw.setdefault("clock", FakeClock())
        super().__init__(*args, **kw)


class Token:
    """The smallest lease a job needs: an int ``token`` (the real Lease comes with sessions)."""

    def __init__(self, token: int) -> None:
        self.token = token


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def clock():
    return FakeClock()


def run(job, items, upto=None, **kw):
    seen = []
    for x in job.track(items, display=False, **kw):
        if upto is not None and x == upto:
            break
        seen.append(x)
    return seen


def test_fresh_job_is_pending_then_completes(store):
    job = Job(store, "a")
    assert job.status == "pending" and job.done == 0
    assert run(job, range(10)) == list(range(10))
    assert job.status == "completed" and job.done == 10 and job.total == 10


def test_item_is_done_only_when_the_loop_asks_for_the_next(store):
    job = Job(store, "a")
    assert run(job, range(10), upto=4) == [0, 1, 2, 3]
    job.record_outcome(None)  # what IPython's post_run_cell does when the cell had no error
    assert job.status == "paused" and job.done == 4
    again = Job(store, "a")
    assert run(again, range(10)) == [4, 5, 6, 7, 8, 9]
    assert again.progress.skipped == 4


def test_a_raising_body_inside_with_job_fails_the_job_and_propagates(store):
    job = Job(store, "a", checkpoint_items=3)
    with pytest.raises(ZeroDivisionError):
        with job:
            for x in job.track(range(10), display=False):
                if x == 5:
                    1 / 0
    assert job.status == "failed" and job.done == 5
    stored = jobs.list(store)[0]
    assert stored.status == "failed" and "division" in stored.error
    assert run(Job(store, "a"), range(10)) == [5, 6, 7, 8, 9]  # failed -> running again


def test_keyboard_interrupt_pauses(store):
    job = Job(store, "a")
    with pytest.raises(KeyboardInterrupt):
        with job:
            for x in job.track(range(10), display=False):
                if x == 3:
                    raise KeyboardInterrupt
    assert job.status == "paused" and job.done == 3


def test_keyed_items_may_complete_in_any_order(store):
    job = Job(store, "k")
    assert run(job, ["c", "a", "b", "d"], upto="b", key=str) == ["c", "a"]
    job.record_outcome(None)
    job = Job(store, "k")
    assert run(job, ["d", "b", "a", "c", "e"], key=str) == ["d", "b", "e"]
    assert job.done == 5 and job.status == "completed"


def test_key_mode_cannot_change(store):
    job = Job(store, "k")
    run(job, ["a"], key=str)
    with pytest.raises(ValueError, match="key="):
        Job(store, "k").track(["a"])


def test_new_items_after_completion_are_run(store):
    job = Job(store, "grow")
    run(job, ["a", "b"], key=str)
    assert run(Job(store, "grow"), ["a", "b", "c"], key=str) == ["c"]
    assert run(Job(store, "grow"), ["a", "b", "c"], key=str) == []


def test_checkpoint_every_items(store):
    job = Job(store, "c", checkpoint_items=10, checkpoint_every=1e9)
    generations = []
    for x in job.track(range(35), display=False):
        generations.append(json.loads(store.get("jobs/c/manifest").data)["generation"])
    # the claim at start is generation 1; then one checkpoint per 10 items
    assert generations[0] == 1 and generations[10] == 2 and generations[20] == 3 and generations[30] == 4


def test_checkpoint_every_seconds_on_a_fake_clock(store, clock):
    job = Job(store, "t", checkpoint_every=2.0, clock=clock)
    stored_done = []
    for x in job.track(range(20), display=False):
        clock.advance(0.5)
        stored_done.append(json.loads(store.get("jobs/t/manifest").data)["done"])
    # each item takes 0.5 s: a checkpoint every 2 s holds every 4th item count
    assert stored_done[:12] == [0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8]


def test_state_is_saved_with_the_done_set(store):
    job = Job(store, "s", checkpoint_items=5)
    seen = []
    for x in job.track(range(12), display=False):
        stored = Job(store, "s")  # what a crash right now would resume from
        seen.append((stored.done, stored.state.get("last")))
        job.state["last"] = x
    # every checkpoint holds the state as it was after its last done item
    assert seen[5] == (5, 4) and seen[9] == (5, 4) and seen[10] == (10, 9)
    assert all(last is None or last == done - 1 for done, last in seen)
    assert Job(store, "s").state == {"last": 11}


def test_state_must_be_json(store):
    job = Job(store, "s")
    job.state["bad"] = object()
    with pytest.raises(TypeError, match="'bad'.*save_blob"):
        job.checkpoint()
    assert Job(store, "s").state == {}


def test_params_are_fixed_at_creation(store):
    Job(store, "p", params={"lr": 0.1})
    assert Job(store, "p", params={"lr": 0.1}).params == {"lr": 0.1}
    assert Job(store, "p").params == {"lr": 0.1}
    with pytest.raises(ValueError, match="lr"):
        Job(store, "p", params={"lr": 0.2})


@pytest.mark.parametrize("kw,match", [
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"checkpoint_items": 0}, "checkpoint_items"),
    ({"total": -1}, "total"),
])
def test_bad_arguments(store, kw, match):
    with pytest.raises(ValueError, match=match):
        Job(store, "x", **kw)


@pytest.mark.parametrize("bad", ["", "a/b", "..", None])
def test_bad_job_ids(store, bad):
    with pytest.raises(ValueError):
        Job(store, bad)


def test_status_transitions_are_validated(store):
    job = Job(store, "st")
    job.set_status("cancelled")
    with pytest.raises(InvalidTransition, match="'cancelled' to 'running'"):
        job.set_status("running")
    with pytest.raises(jobs.JobCancelled):
        job.track([1])


def test_stages_are_numbered_and_shown(store):
    job = Job(store, "stg")
    job.stage("scan")
    job.stage("process")
    p = job.progress
    assert (p.stage, p.stage_index, p.stages) == ("process", 2, 2)
    job.stage("scan")
    assert job.progress.stage_index == 1


def test_progress_rate_eta_bytes(store, clock):
    job = Job(store, "r", clock=clock, checkpoint_every=1e9)
    for x in job.track(range(100), display=False):
        clock.advance(0.1)
        job.add_bytes(10)
        if x == 50:
            p = job.progress
            assert p.rate == pytest.approx(10, rel=0.05)
            assert p.eta == pytest.approx((100 - p.done) / p.rate)
            assert p.bytes == 510
    assert job.progress.elapsed == pytest.approx(10.0, abs=0.2)


def test_fencing_a_lower_token_cannot_write_after_a_higher_one(store):
    old = Job(store, "f", lease=Token(3), checkpoint_items=5)
    gen = old.track(range(100), display=False)
    for x in gen:
        if x == 7:
            break_at = x
            break
    new = Job(store, "f", lease=Token(4))
    it = new.track(range(100), display=False)
    next(it)  # the new holder claims the job (token 4 is in the store now)
    before = store.get("jobs/f/manifest")
    with pytest.raises(LeaseLost) as info:
        old.checkpoint()
    assert (info.value.token, info.value.newer) == (3, 4)
    assert store.get("jobs/f/manifest") == before, "the stale writer wrote nothing"
    assert break_at == 7


def test_fencing_stops_a_running_loop(store):
    old = Job(store, "f2", lease=Token(3), checkpoint_items=5)
    seen = []
    with pytest.raises(LeaseLost):
        for x in old.track(range(100), display=False):
            seen.append(x)
            if x == 2:
                Job(store, "f2", lease=Token(4)).checkpoint()
    assert seen == [0, 1, 2, 3, 4]  # stopped at its next checkpoint, after item 4


def test_a_new_holder_takes_in_a_checkpoint_written_after_it_opened_the_job(store):
    old = Job(store, "h", lease=Token(1), checkpoint_items=1)
    new = Job(store, "h", lease=Token(2))  # opened early: sees nothing done
    run(old, range(10), upto=6)  # the old holder checkpoints items 0..5 afterwards
    assert run(new, range(10)) == [6, 7, 8, 9]
    assert new.done == 10


def test_two_writers_without_a_lease_keep_both_sets_of_work(store):
    a = Job(store, "both", checkpoint_items=1)
    b = Job(store, "both", checkpoint_items=1)
    ia = a.track(["x", "y", "z"], key=str, display=False)
    ib = b.track(["p", "q"], key=str, display=False)
    next(ia); next(ia)
    next(ib); next(ib)
    list(ia); list(ib)
    final = Job(store, "both")
    assert run(final, ["x", "y", "z", "p", "q"], key=str) == []


def test_corrupted_manifest_falls_back_to_the_previous_generation(tmp_path):
    from sessionkit.jobs.checkpoint import PREV_EVERY

    url = str(tmp_path / "store")
    job = Job(url, "c", checkpoint_items=10)
    # generation 1 starts the run, k+1 holds 10k items; leaving the loop writes 125
    run(job, range(200), upto=125)
    store = sessionkit.open_store(url)
    path = store.path_of("jobs/c/manifest")
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    with pytest.warns(SessionkitWarning, match="previous generation") as record:
        again = Job(url, "c")
    assert "jobs/c/manifest" in str(record[0].message)
    # a position job without blobs keeps manifest.prev every PREV_EVERY generations: the
    # one replaced by generation 10 (80 items); at most PREV_EVERY intervals run again
    assert again.done == 80 and 125 - again.done <= PREV_EVERY * 10
    assert run(again, range(200))[0] == 80
    assert again.status == "completed"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Job(url, "c").done == 200


def test_a_job_whose_blobs_change_keeps_the_generation_just_before(tmp_path):
    """The files a generation names are deleted two writes after it dropped them, so while
    they change, manifest.prev is the generation just before, and its blob is still there."""
    url = str(tmp_path / "store")
    job = Job(url, "b", checkpoint_items=10)
    loop = job.track(range(100), display=False)
    for x in loop:
        if x == 35:
            break
        job.save_blob("model", {"w": x})  # a new blob with every item
    loop.close()  # CPython closes it at the break already; said here so no late finalizer races the test
    # checkpoints at 10, 20, 30 and, leaving the loop, at 35
    assert job._checkpointer.written.manifest.done == 35
    path = sessionkit.open_store(url).path_of("jobs/b/manifest")
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.warns(SessionkitWarning, match="previous generation"):
        again = Job(url, "b")
    assert again.done == 30 and again.load_blob("model") == {"w": 29}


def test_foreign_manifest_with_no_previous_generation_is_a_clear_error(store):
    store.put("jobs/x/manifest", b"{not json")
    with pytest.raises(sessionkit.errors.CorruptRecord, match="jobs/x/manifest"):
        Job(store, "x")


def test_blobs_are_saved_with_checkpoints_and_generations_kept(store):
    job = Job(store, "b", keep_blobs=2)
    for i in range(4):
        job.save_blob("model", {"weights": [i] * 100})
        job.checkpoint()
    assert job.load_blob("model") == {"weights": [3] * 100}
    chunk_keys = store.list("jobs/b/chunks/")
    # a pickled list is two chunks (the object, its index): two generations kept, plus one
    # the previous generation still names
    assert len(chunk_keys) <= 3 * 2


def test_a_blob_that_cannot_be_loaded_falls_back_to_the_previous_generation(store):
    job = Job(store, "b")
    old = job.save_blob("model", [1, 2, 3]).wait()
    job.checkpoint()
    new = job.save_blob("model", [4, 5, 6]).wait()
    job.checkpoint()
    store.put(f"jobs/b/chunks/{new}", b"garbage")
    with pytest.warns(SessionkitWarning, match=new):
        assert Job(store, "b").load_blob("model") == [1, 2, 3]
    store.put(f"jobs/b/chunks/{old}", b"garbage")
    with pytest.warns(SessionkitWarning), pytest.raises(jobs.BlobError, match="model"):
        Job(store, "b").load_blob("model")


def test_unknown_blob(store):
    job = Job(store, "b")
    assert job.load_blob("nothing", default=None) is None
    with pytest.raises(KeyError, match="nothing"):
        job.load_blob("nothing")


def test_numpy_blobs_load_without_pickle(store):
    np = pytest.importorskip("numpy")
    job = Job(store, "np")
    arr = np.arange(12.0).reshape(3, 4)
    job.save_blob("arr", arr)
    job.checkpoint()
    assert job.manifest.blobs["arr"][0]["format"] == "numpy"
    assert (Job(store, "np").load_blob("arr") == arr).all()


def test_blob_pointer_is_not_current_until_a_checkpoint(store):
    job = Job(store, "b")
    job.save_blob("m", 1)
    job.checkpoint()
    job.save_blob("m", 2)  # no checkpoint: a crash now keeps 1 with its done items
    assert Job(store, "b").load_blob("m") == 1


def test_checkpoint_cost_follows_new_items_not_all_done(store):
    job = Job(store, "cost", checkpoint_items=100, checkpoint_every=1e9)
    sizes = []
    manifests = 0
    for x in job.track(range(20_000), key=str, display=False):
        if x % 100 == 99:
            manifests += len(job._checkpointer.raw)  # the newest keys live in the manifest
            sizes.append(job._checkpointer.segments.bytes_written + manifests)
    per_checkpoint = [b - a for a, b in zip(sizes, sizes[1:])]
    early = sum(per_checkpoint[:20]) / 20  # 20 checkpoints: one cycle of keys kept inline
    late = sum(per_checkpoint[-20:]) / 20
    # tiered merging rewrites each key O(log n) times: late checkpoints cost a few times
    # the early ones, not 100x as rewriting the whole set would
    assert late < 8 * early, (early, late)
    assert len(job._checkpointer.segments.segments) <= 12


def test_position_done_set_is_ranges(store):
    job = Job(store, "r", checkpoint_items=1000)
    run(job, range(100_000))
    m = json.loads(store.get("jobs/r/manifest").data)
    assert len(m["segments"]) <= 3 and len(store.get("jobs/r/manifest").data) < 2000


def test_ranges():
    r = Ranges([[5, 10], [0, 2], [9, 12], [12, 13]])
    assert r.spans == [[0, 2], [5, 13]] and len(r) == 10
    assert 5 in r and 12 in r and 13 not in r and 3 not in r
    assert list(r.gaps()) == [(2, 5), (13, None)]


def test_latest_prefers_active_then_recently_completed(store, clock):
    a = Job(store, "old-done", clock=clock)
    run(a, range(3))
    clock.advance(3600)
    b = Job(store, "paused", clock=clock)
    run(b, range(5), upto=2)
    b.record_outcome(None)
    clock.advance(60)
    c = Job(store, "new-done", clock=clock)
    run(c, range(3))
    assert Job.latest(store, clock=clock).id == "paused"
    clock.advance(1)
    b.set_status("cancelled")
    assert Job.latest(store, clock=clock).id == "new-done"
    clock.advance(600)
    assert Job.latest(store, clock=clock).id == "paused"  # most recent overall (cancelled later)
    assert Job.latest(MemoryStore()) is None


def test_clear_removes_old_finished_jobs(store, clock):
    done = Job(store, "done", clock=clock)
    run(done, range(3))
    live = Job(store, "live", clock=clock)
    run(live, range(3), upto=1)
    live.record_outcome(None)
    assert jobs.clear(store, older_than=timedelta(hours=1), clock=clock) == []
    clock.advance(7200)
    assert jobs.clear(store, older_than=timedelta(hours=1), clock=clock) == ["done"]
    assert store.list("jobs/done/") == []
    assert [i.id for i in jobs.list(store)] == ["live"]


def test_request_validates(store):
    Job(store, "j")
    with pytest.raises(ValueError, match="stop"):
        jobs.request(store, "j", "stop")
    with pytest.raises(LookupError, match="nope"):
        jobs.request(store, "nope", "pause")


def test_events_record_the_job_life(store):
    job = Job(store, "ev")
    job.stage("process")
    run(job, range(10))
    lines = [json.loads(line) for k in store.list("events/") for line in store.get(k).data.splitlines()]
    kinds = [e["kind"] for e in lines]
    assert kinds[0] == "job.created"
    assert {"job.status", "job.stage", "job.checkpoint"} <= set(kinds)
    assert all(e["v"] == 1 and e["data"]["job"] == "ev" for e in lines)
    statuses = [(e["data"]["from"], e["data"]["to"]) for e in lines if e["kind"] == "job.status"]
    assert statuses == [("pending", "running"), ("running", "completed")]


def test_text_view_on_a_terminal_rewrites_one_line(store):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    clock = FakeClock()
    job = Job(store, "tv", clock=clock)
    for _ in job.track(range(1000), display=TextProgress(stream=out)):
        clock.advance(0.01)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.count("\r") >= 2 and "1000/1000" in text


def test_job_progress_widget_colours(store):
    pytest.importorskip("ipywidgets")
    from sessionkit.widgets import JobProgress

    job = Job(store, "w")
    view = JobProgress(job)
    assert view.colour == "#1f77b4"
    run(job, range(5))
    view.update(job.progress)
    assert view.colour == "#2ca02c" and view.bar.value == 1.0 and "5/5" in view.label.value
    job2 = Job(store, "w2")
    with pytest.raises(RuntimeError):
        with job2:
            for _ in job2.track(range(5), display=view):
                raise RuntimeError("x")
    assert view.colour == "#d62728"


from hypothesis import given, strategies as st  # noqa: E402


@given(st.lists(st.text()))
def test_done_key_segments_round_trip_any_strings(keys):
    from sessionkit.jobs.doneset import _decode_keys, _encode

    assert _decode_keys(_encode("key", None, keys)) == keys


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 50))))
def test_ranges_hold_exactly_the_union(spans):
    spans = [[a, a + n] for a, n in spans]
    r = Ranges(spans)
    expected = {i for a, b in spans for i in range(a, b)}
    assert {i for a, b in r.spans for i in range(a, b)} == expected and len(r) == len(expected)
    assert all(b < c for (_, b), (c, _) in zip(r.spans, r.spans[1:])), "disjoint, not touching"


def test_keyed_done_keys_live_in_the_manifest_until_they_outgrow_it(tmp_path):
    """Most keyed checkpoints are one manifest write: the newest keys are kept inline and
    move to a segment every INLINE_KEYS keys; a resumed job sees both."""
    from sessionkit.jobs.checkpoint import INLINE_KEYS

    url = str(tmp_path / "store")
    items = [f"k{i}" for i in range(2 * INLINE_KEYS + 500)]
    job = Job(url, "inline", checkpoint_items=100, checkpoint_every=1e9)
    seen = []
    for k in job.track(items, key=str, display=False):
        if len(seen) == 2 * INLINE_KEYS + 321:
            break
        seen.append(k)
    m = Job(url, "inline").manifest
    assert len(m.segments) >= 1 and 0 < len(m.keys) <= INLINE_KEYS
    again = Job(url, "inline")
    rest = list(again.track(items, key=str, display=False))
    assert rest == items[len(seen):] and again.done == len(items) == again.total


def test_duplicate_keys_in_one_run_are_an_error_naming_the_key(store):
    job = Job(store, "dup")
    seen = []
    with pytest.raises(jobs.DuplicateKey, match="'b'.*appears twice"):
        for x in job.track(["a", "b", "c", "b", "d"], key=str, display=False):
            seen.append(x)
    assert seen == ["a", "b", "c"]


def test_a_key_that_is_not_a_str_is_refused_before_the_item_runs(store):
    job = Job(store, "nonstr")
    seen = []
    with pytest.raises(TypeError, match="must return a str.*Nothing was run"):
        for x in job.track([1, 2], key=lambda x: x, display=False):
            seen.append(x)
    assert seen == []


def test_one_run_of_track_at_a_time(store):
    job = Job(store, "twice")
    first = job.track(range(10), display=False)
    next(first)
    second = job.track(range(10), display=False)
    with pytest.raises(sessionkit.SessionkitError, match="already being tracked"):
        next(second)
    assert list(first) == list(range(1, 10)) and job.done == 10 and job.status == "completed"
    assert list(job.track(range(12), display=False)) == [10, 11]  # a new run once the first ended


@pytest.mark.parametrize("bad", [0, -1, True, "1", float("inf")])
@pytest.mark.parametrize("make,name", [
    (lambda store, bad: Backup(store, "B", clock=FakeClock(), poll=bad, runtime="local"), "poll"),
    (lambda store, bad: Primary(store, "j", clock=FakeClock(), stall_after=bad, runtime="local"), "stall_after"),
    (lambda store, bad: Job(store, "j", checkpoint_every=bad), "checkpoint_every"),
    (lambda store, bad: Job(store, "j", control_poll=bad), "control_poll"),
])
def test_durations_must_be_positive_seconds_and_the_error_names_them(store, bad, make, name):
    with pytest.raises(ValueError, match=f"^{name} must be a number of seconds > 0"):
        make(store, bad)


@pytest.mark.parametrize("state", [{1: "one"}, {"t": (1, 2)}, {"x": float("nan")}])
def test_state_that_would_not_round_trip_is_refused(store, state):
    job = Job(store, "rt")
    job.state = state
    with pytest.raises(TypeError, match="job.state"):
        job.checkpoint()


@pytest.mark.parametrize("damage", ["truncated", "emptied", "garbage", "foreign", "removed"])
def test_a_damaged_done_segment_costs_only_its_items(tmp_path, monkeypatch, damage):
    """A segment that cannot be read is never a dead end: its items run again, with a
    warning naming the segment and how many items; the job then completes."""
    from sessionkit.jobs import checkpoint

    monkeypatch.setattr(checkpoint, "INLINE_KEYS", 20)  # keys go to segments every 20
    url = str(tmp_path / "store")
    items = [f"k{i}" for i in range(100)]
    job = Job(url, "seg", checkpoint_items=10)
    ran = []
    for k in job.track(items, key=str, display=False):
        ran.append(k)
        if len(ran) == 70:
            break
    store = sessionkit.open_store(url)
    segment = Job(url, "seg").manifest.segments[0]
    path = store.path_of(f"jobs/seg/done/{segment[0]}")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif damage == "emptied":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff" * 50)
    elif damage == "foreign":
        path.write_text("a file someone else put here\n")
    else:
        path.unlink()
    with pytest.warns(SessionkitWarning, match=rf"{segment[0]}.*the {segment[1]} item\(s\) they recorded will run again"):
        again = Job(url, "seg")
    assert again.done == 69 - segment[1]  # the 70th item's body broke the loop: not done
    ran += list(again.track(items, key=str, display=False))
    assert again.status == "completed" and again.done == 100 == again.total
    assert set(ran) == set(items) and len(ran) == 100 + segment[1] + 1, \
        "only the damaged segment's items (and the one that broke the loop) ran twice"
    assert Job(url, "seg").done == 100  # and the manifest no longer names it


class Crashing(MemoryStore):
    """A process killed right after a manifest write landed: deletes fail from then on, as
    nothing more runs (the writer's in-memory plans are lost with it)."""

    killed = False

    def delete(self, key, *, expect=None):
        if self.killed:
            raise sessionkit.errors.StoreError(f"delete {key!r}: the process is gone", key=key)
        return super().delete(key, expect=expect)


def test_garbage_planned_by_a_killed_writer_is_removed_by_the_next_one():
    """Issue 18 (8): a SIGKILL leaked up to two blob generations and the segments a write had
    dropped, because what was to be removed lived only in the writer's memory."""
    store = Crashing()
    job = Job(store, "j", keep_blobs=1)
    for i in range(4):
        job.save_blob("model", list(range(i * 1000, i * 1000 + 1000)))
        job.checkpoint()
    store.killed = True
    job.save_blob("model", "final")
    job.checkpoint()  # landed; the blobs it dropped were not removed
    named = {c for e in job.manifest.blobs["model"] for c in e["chunks"]}
    assert len(store.list("jobs/j/chunks/")) > len(named), "garbage was left"
    store.killed = False
    again = Job(store, "j", keep_blobs=1)  # the next run (a re-run, or the backup)
    again.checkpoint()
    again.checkpoint()
    left = {k.rsplit("/", 1)[1] for k in store.list("jobs/j/chunks/")}
    assert left == named, "only what the manifest names is left"
    assert again.load_blob("model") == "final"


class KilledAfter(MemoryStore):
    """A process killed after ``deletes`` more deletes: the next one raises (nothing more
    runs in it)."""

    deletes = None

    def delete(self, key, *, expect=None):
        if self.deletes is not None:
            if self.deletes == 0:
                raise KeyboardInterrupt(f"killed before deleting {key!r}")
            self.deletes -= 1
        return super().delete(key, expect=expect)


@pytest.mark.parametrize("killed_after", [0, 1, 3])
def test_gc_killed_part_way_leaves_a_job_the_next_gc_removes(clock, killed_after):
    """Issue 18 (8): gc removed the manifest first; killed part-way, it left files no later
    gc removed (nothing listed the job any more)."""
    store = KilledAfter()
    job = Job(store, "old", clock=clock, keep_blobs=2)
    job.save_blob("m", "one")
    run(job, range(5))
    jobs.request(store, "old", "pause", clock=clock)
    files = store.list("jobs/old/")
    assert len(files) >= 4
    clock.advance(7200)
    store.deletes = killed_after
    with pytest.raises(KeyboardInterrupt):
        jobs.clear(store, older_than=timedelta(hours=1), clock=clock)
    assert "jobs/old/manifest" in store.list("jobs/old/"), "the manifest goes last"
    store.deletes = None
    assert jobs.clear(store, older_than=timedelta(hours=1), clock=clock) == ["old"]
    assert store.list("jobs/") == []


def test_gc_removes_what_an_interrupted_older_gc_left(store, clock):
    job = Job(store, "old", clock=clock)
    job.save_blob("m", "one")
    run(job, range(5))
    store.delete("jobs/old/manifest")  # what the old order left when killed after one delete
    store.delete("jobs/old/manifest.prev")
    assert store.list("jobs/old/")
    assert jobs.clear(store, older_than=timedelta(hours=1), clock=clock) == ["old"]
    assert store.list("jobs/") == []


@pytest.mark.parametrize("how", ["request of the old job", "request written before requests named their job"])
def test_a_stale_cancel_request_does_not_cancel_a_new_job_of_the_same_id(store, clock, how):
    """Issue 18 (8): a cancel record left by an earlier job of the same id (gc interrupted, or
    the manifest removed by hand) cancelled the new job at once."""
    old = Job(store, "j", clock=clock)
    jobs.request(store, "j", "cancel", clock=clock)
    assert list(old.track(range(5), display=False)) == []
    assert old.status == "cancelled"
    if how != "request of the old job":
        body = json.loads(store.get("jobs/j/control").data)
        del body["job"]
        store.put("jobs/j/control", json.dumps(body).encode())
    store.delete("jobs/j/manifest")
    store.delete("jobs/j/manifest.prev")
    clock.advance(60)
    new = Job(store, "j", clock=clock)
    assert list(new.track(range(5), display=False)) == list(range(5))
    assert new.status == "completed"
    jobs.request(store, "j", "pause", clock=clock)  # requests for the new job still work
    assert jobs.control.read(store, "j", new.manifest.created).action == "pause"


def test_two_runs_without_a_lease_never_count_an_item_twice(store, clock):
    """Issue 18 (6): two tabs running one job without a lease reported 403 done of 400. The
    other run recorded the key this run was working on; adopting its work counted the key,
    and finishing the item counted it again."""
    keys = [f"file-{i}" for i in range(10)]
    a, b = Job(store, "j", clock=clock), Job(store, "j", clock=clock)
    it = b.track(keys, key=str, display=False)
    assert next(it) == "file-0"  # b works on file-0 ...
    assert run(a, keys, key=str) == keys  # ... while a does every item
    b.checkpoint()  # b's code checkpoints mid-item: it adopts a's work
    assert list(it) == []  # the rest were done by a
    info = jobs.list(store)[0]
    assert (info.done, info.total, info.status) == (10, 10, "completed")
    assert b.done == 10


def test_set_total_is_written_with_the_next_checkpoint_and_checked(store):
    job = Job(store, "train")
    job.set_total(36)
    job.checkpoint(done=12)
    again = Job(store, "train")
    assert (again.total, again.done) == (36, 12)
    for bad in (-1, True, "36", 3.5):
        with pytest.raises(ValueError, match="total must be an int >= 0 or None"):
            job.set_total(bad)
    assert job.total == 36, "a refused total changes nothing"
