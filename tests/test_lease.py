"""Leases on fake clocks: expiry on the observer's clock, deadlines, release, fencing, safety."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import sessionkit
from sessionkit import Job, Lease, LeaseLost
from sessionkit.clock import FakeClock
from sessionkit.errors import LeaseTimeout, StoreError
from sessionkit.jobs import list_jobs
from sessionkit.store import Store
from sessionkit.store.memory import MemoryStore

from support.scenarios import OffsetClock


class Network:
    """What the runtimes share: time, and the adversary's plan for the next requests."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[tuple[float, float]] = []
        self.meanwhile: list[tuple[int, object]] = []  # (runtime, action) to run mid-request
        self.busy: set[int] = set()  # runtimes waiting for an answer cannot act meanwhile
        self.lose_answers = 0  # the next N writes take effect, then their answer is lost


class SlowStore(Store):
    """Runtime ``owner``'s view of one shared store (``inner``). Each request takes time from
    the network's plan (before it takes effect, and before its answer arrives), and in
    between other runtimes may act (``meanwhile``), as they would while an answer is in flight."""

    def __init__(self, inner: Store, owner: int, net: Network) -> None:
        self.inner, self.owner, self.net, self.url = inner, owner, net, inner.url

    def _around(self, op):
        net = self.net
        before, after = net.delays.pop(0) if net.delays else (0.0, 0.0)
        net.clock.advance(before)
        net.busy.add(self.owner)
        try:
            return op()
        finally:
            while True:  # actions may make requests of their own, which run actions too
                entry = next((e for e in net.meanwhile if e[0] not in net.busy), None)
                if entry is None:
                    break
                net.meanwhile.remove(entry)
                entry[1]()
            net.clock.advance(after)
            net.busy.discard(self.owner)

    def get(self, key):
        return self._around(lambda: self.inner.get(key))

    def put(self, key, data, *, expect=None):
        version = self._around(lambda: self.inner.put(key, data, expect=expect))
        if self.net.lose_answers:
            # as a remote store does after a timeout or a retried 5xx: the write landed, the
            # caller only learns that it failed
            self.net.lose_answers -= 1
            raise StoreError(f"put {key!r}: the answer was lost (the write landed)", key=key)
        return version

    def delete(self, key, *, expect=None):
        return self._around(lambda: self.inner.delete(key, expect=expect))

    def list(self, prefix=""):
        return self.inner.list(prefix)


def lease(store, holder, clock, **kw):
    kw.setdefault("ttl", 10.0)
    kw.setdefault("renew_deadline", 6.0)
    kw.setdefault("retry_period", 2.0)
    return Lease(store, "primary", holder=holder, clock=clock, **kw)


@pytest.mark.parametrize("kw,match", [
    ({"ttl": 10, "renew_deadline": 10}, "ttl"),
    ({"ttl": 10, "renew_deadline": 5, "retry_period": 5}, "1.2"),
    ({"ttl": 10, "renew_deadline": 5, "retry_period": 0}, "retry_period"),
])
def test_durations_are_validated(kw, match):
    with pytest.raises(ValueError, match=match):
        Lease(MemoryStore(), "x", holder="a", **kw)


def test_defaults_follow_client_go_ratios():
    l = Lease(MemoryStore(), "x", holder="a", ttl=60)
    assert (l.ttl, l.renew_deadline, l.retry_period) == (60, 40, 8)


def test_holder_and_name_are_checked():
    with pytest.raises(ValueError, match="holder"):
        Lease(MemoryStore(), "x", holder="")
    with pytest.raises(ValueError, match="name"):
        Lease(MemoryStore(), "a/b", holder="h")


def test_first_acquire_gets_token_1_and_others_wait_for_expiry_on_their_own_clock():
    base = FakeClock()
    store = MemoryStore()
    a = lease(store, "a", OffsetClock(base))
    b = lease(store, "b", OffsetClock(base, mono_offset=5000))
    assert a.acquire() == 1 and a.held
    assert b.try_acquire() is None  # b first sees the record now
    base.advance(9.9)
    assert b.try_acquire() is None
    assert not a.held  # a gave up at its renew deadline (6 s), before b may take over
    base.advance(0.1)
    assert b.try_acquire() == 2 and b.held
    with pytest.raises(LeaseLost):
        a.renew()


def test_renewals_keep_the_lease():
    base = FakeClock()
    store = MemoryStore()
    a, b = lease(store, "a", base), lease(store, "b", base)
    a.acquire()
    for _ in range(20):
        assert b.try_acquire() is None
        base.advance(2.0)
        assert a.renew() and a.held
    assert a.token == 1


def test_a_holder_that_cannot_renew_stops_by_itself_and_calls_on_lost():
    base = FakeClock()
    lost = []
    a = lease(MemoryStore(), "a", base, on_lost=lost.append)
    a.acquire()
    base.advance(6.0)
    assert not a.held
    with pytest.raises(LeaseLost, match="deadline"):
        a.renew()
    assert lost == [a]


def test_release_lets_a_waiting_backup_take_over_at_once_with_a_higher_token():
    base = FakeClock()
    store = MemoryStore()
    a, b = lease(store, "a", base), lease(store, "b", base)
    assert a.acquire() == 1
    assert b.try_acquire() is None
    a.release()
    assert not a.held
    assert b.try_acquire() == 2


def test_acquire_timeout():
    base = FakeClock()
    store = MemoryStore()
    lease(store, "a", base).acquire()
    b = lease(store, "b", base)
    with pytest.raises(LeaseTimeout, match="'a'"):
        b.acquire(timeout=5)
    assert b.acquire(timeout=30) == 2  # waits out the ttl on its fake clock


def test_wall_clock_skew_of_an_hour_does_not_change_takeover_time():
    base = FakeClock()
    store = MemoryStore()
    for skew in (-3600, 3600):
        a = Lease(store, f"skew{skew}", holder="a", ttl=10, clock=OffsetClock(base, wall_offset=skew))
        b = Lease(store, f"skew{skew}", holder="b", ttl=10, clock=OffsetClock(base, wall_offset=-skew))
        a.acquire()
        assert b.try_acquire() is None
        base.advance(9.99)
        assert b.try_acquire() is None
        base.advance(0.01)
        assert b.try_acquire() is not None


def test_lease_refuses_a_mounted_drive_store(tmp_path, monkeypatch):
    from sessionkit.store import local

    monkeypatch.setattr(local, "MOUNTED_DRIVE_ROOT", tmp_path)
    monkeypatch.setattr(local, "_warned_roots", {str(tmp_path / "s")})
    store = sessionkit.open_store(tmp_path / "s")
    with pytest.raises(sessionkit.SessionkitError, match="gdrive://"):
        Lease(store, "x", holder="a")
    Lease(store, "x", holder="a", allow_unsafe_mount=True)


def test_job_fencing_with_a_real_lease():
    base = FakeClock()
    store = MemoryStore()
    a, b = lease(store, "a", base), lease(store, "b", base)
    a.acquire()
    job_a = Job(store, "j", lease=a, clock=base)
    job_a.checkpoint()
    base.advance(7)  # a is past its renew deadline: it must not write, even before b acts
    with pytest.raises(LeaseLost):
        job_a.checkpoint()
    base.advance(3)
    b.acquire()
    Job(store, "j", lease=b, clock=base).checkpoint()
    assert [j.token for j in list_jobs(store) if j.id == "j"] == [2]


def test_a_stale_holder_cannot_release_a_lease_someone_else_took_over():
    base = FakeClock()
    store = MemoryStore()
    a, b, c = lease(store, "a", base), lease(store, "b", base), lease(store, "c", base)
    assert a.acquire() == 1
    b.try_acquire()
    base.advance(10)
    assert b.try_acquire() == 2
    assert a.try_acquire() is None  # a looks at the record b wrote ...
    a.release()  # ... and must not free it, nor turn its token back
    assert sessionkit.lease.read_lease(store, "primary").holder == "b"
    assert c.try_acquire() is None
    assert b.held


def test_the_renew_deadline_counts_from_when_the_renewal_began():
    """A renewal whose answer arrives late must not extend the holder's belief: another
    runtime may have seen the record change as soon as it did."""
    base = FakeClock()
    net = Network(base)
    name = f"late-{uuid.uuid4().hex}"
    a = lease(SlowStore(MemoryStore(name), 0, net), "a", base)
    b = lease(SlowStore(MemoryStore(name), 1, net), "b", base)
    a.acquire()
    net.delays = [(0.0, 5.0)]  # a's renewal lands at once; its answer takes 5 s
    net.meanwhile.append((1, b.try_acquire))  # b sees the renewed record right away
    a.renew()
    base.advance(5.0)  # 10 s after b saw the change: b may take over
    assert not a.held, "a's belief ended 6 s after its renewal began"
    assert b.try_acquire() == 2


def test_a_damaged_record_damaged_again_the_same_way_after_others_wrote_is_a_new_sighting():
    """Found by the LeaseSafety machine below: a saw the lease record damaged (it could not
    release it); b took it over a ttl later and holds it; the record is then damaged again
    with the very same bytes. a took those bytes for the damage it saw a ttl ago and took
    the lease over while b held it: two holders. A damaged record whose version moved has
    been written since: it counts as changed, however alike its bytes."""
    clock, store = FakeClock(), MemoryStore()
    a, b = lease(store, "a", clock), lease(store, "b", clock)
    garbage = b"\x00 not a record"
    assert a.try_acquire() == 1
    store.put("leases/primary", garbage)
    a.release()  # it cannot: the record is unreadable; a has seen these bytes now
    assert b.try_acquire() is None  # b sees the damage too, and waits a ttl for it
    clock.advance(10.5)
    assert b.try_acquire() == 2 and b.held
    store.put("leases/primary", garbage)  # damaged again, the same way
    assert a.try_acquire() is None and not a.held, "a took over a lease b holds"
    assert b.held


class LeaseSafety(RuleBasedStateMachine):
    """Three runtimes with their own clock origins and wall offsets, a store whose requests
    take adversarial time, and any interleaving of acquire, renew, release, fenced writes
    and the passing of time."""

    def __init__(self) -> None:
        super().__init__()
        self.base = FakeClock()
        self.net = Network(self.base)
        views = self.open_views()
        self.stores = [SlowStore(views[i], i, self.net) for i in range(3)]
        self.store = views[3]  # the test's own look at the shared records
        self.leases = [lease(self.stores[i], f"h{i}", OffsetClock(self.base, 1000.0 * i, 600.0 * (i - 1)))
                       for i in range(3)]
        self.issued: list[int] = []
        self.written_tokens: list[int] = []
        self.answers_lost = 0
        self.mark_intact = True  # until the adversary damages the high-water mark

    def open_views(self):
        """Four views of one new store: three runtimes' and the test's own."""
        name = f"safety-{uuid.uuid4().hex}"  # named memory stores live as long as the process
        return [MemoryStore(name) for _ in range(4)]

    @rule(delays=st.lists(st.tuples(st.floats(0, 8), st.floats(0, 8)), max_size=3))
    def network_is_slow(self, delays):
        self.net.delays = list(delays)

    @rule(i=st.integers(0, 2))
    def another_runtime_looks_meanwhile(self, i):
        """During the next request, after it took effect and before its answer arrives,
        runtime i tries to take the lease."""
        self.net.meanwhile.append((i, lambda: self.try_acquire(i)))

    @rule(seconds=st.sampled_from([0.1, 1.0, 2.0, 3.9, 4.0, 5.9, 6.0, 9.9, 10.0, 10.5, 12.0])
          | st.floats(0, 12))
    def time_passes(self, seconds):
        self.base.advance(seconds)

    @rule()
    def an_answer_is_lost(self):
        """The next write takes effect, but its writer gets an error instead of the answer."""
        self.net.lose_answers += 1
        self.answers_lost += 1

    @rule(i=st.integers(0, 2))
    def try_acquire(self, i):
        l = self.leases[i]
        was = l.token if l.held else None
        token = l.try_acquire()
        if token is not None and token != was:
            assert token not in self.issued, "a token is issued at most once"
            self.issued.append(token)

    @rule(i=st.integers(0, 2))
    def renew(self, i):
        l = self.leases[i]
        if l.token is not None:
            try:
                l.renew()
            except LeaseLost:
                assert l.token is None

    @rule(i=st.integers(0, 2))
    def release(self, i):
        self.leases[i].release()

    @rule(i=st.integers(0, 2))
    def fenced_write(self, i):
        """A holder (or a stale one) writes the job's manifest through the fencing check."""
        l = self.leases[i]
        try:
            job = Job(self.stores[i], "fenced", lease=l, clock=self.base)
            job.checkpoint()
        except LeaseLost:
            return
        except StoreError:
            self.check_stored_tokens_never_go_back()
            return
        stored = next(j.token for j in list_jobs(self.store) if j.id == "fenced")
        assert stored == l.token
        self.check_stored_tokens_never_go_back()

    def check_stored_tokens_never_go_back(self):
        record = self.store.get("jobs/fenced/manifest")
        if record is None:
            return
        stored = json.loads(record.data)["token"]
        assert not self.written_tokens or stored >= self.written_tokens[-1], "a stale write landed"
        self.written_tokens.append(stored)

    @invariant()
    def tokens_are_issued_once_each_in_sequence(self):
        # each acquisition writes previous + 1 by compare-and-swap. A token whose answer was
        # lost, or whose high-water mark was raised by an acquirer that then lost the race,
        # is never acted on, so the tokens acted on can skip one, but never repeat or go back.
        assert self.issued == sorted(set(self.issued))
        mark = self.store.get("lease-tokens/primary")
        if self.issued and self.mark_intact:
            assert mark is not None and json.loads(mark.data)["token"] >= self.issued[-1], \
                "the high-water mark is never below a token issued"

    @rule(how=st.sampled_from(["garbage", "removed"]), which=st.sampled_from(["lease", "mark"]))
    def a_record_is_damaged_or_moved_away(self, how, which):
        """The adversary damages (or a user moves away) one of the two records that hold the
        highest token; tokens must still never repeat, and at most one holder acts."""
        key = "leases/primary" if which == "lease" else "lease-tokens/primary"
        other = "lease-tokens/primary" if which == "lease" else "leases/primary"
        if self.store.get(other) is None or not self.intact(other):
            return  # losing both records restarts the tokens: documented, not tested
        if how == "garbage":
            self.store.put(key, b"\x00 not a record")
        else:
            self.store.delete(key)
        if which == "mark":
            self.mark_intact = False

    def intact(self, key):
        record = self.store.get(key)
        try:
            json.loads(record.data)
            return True
        except ValueError:
            return False

    @invariant()
    def at_most_one_holder_believes_it_holds(self):
        assert sum(l.held for l in self.leases) <= 1


LeaseSafety.TestCase.settings = settings(max_examples=600, stateful_step_count=30, deadline=None)
test_lease_safety = LeaseSafety.TestCase


class LeaseSafetyOnDrive(LeaseSafety):
    """The same machine with each runtime's own gdrive:// store (own caches) on the Drive
    emulator, search lag on: what holds on a memory store must hold on Drive."""

    def open_views(self):
        pytest.importorskip("googleapiclient")
        from conftest import drive_emulator
        from sessionkit.store.gdrive import GDriveStore

        drive_emulator()
        first = GDriveStore(f"lease-safety/{uuid.uuid4().hex[:8]}", backoff=0.01)
        return [first] + [GDriveStore(folder_id=first.folder_id, backoff=0.01) for _ in range(3)]


LeaseSafetyOnDrive.TestCase.settings = settings(max_examples=120, stateful_step_count=25, deadline=None)
test_lease_safety_on_drive = LeaseSafetyOnDrive.TestCase


def test_a_job_stops_working_once_its_lease_is_past_the_deadline():
    base = FakeClock()
    a = lease(MemoryStore(), "a", base)
    a.acquire()
    job = Job(a.store, "w", lease=a, clock=base, checkpoint_items=1000)
    seen = []
    with pytest.raises(LeaseLost):
        for x in job.track(range(100), display=False):
            seen.append(x)
            base.advance(1.0)  # no renewals: the deadline (6 s) passes during item 5
    assert seen == [0, 1, 2, 3, 4, 5]


def test_lease_lost_says_what_happened():
    base = FakeClock()
    a = lease(MemoryStore(), "a", base)
    a.acquire()
    base.advance(7)  # past a's renew deadline, and nobody newer exists
    with pytest.raises(LeaseLost) as info:
        a.renew()
    text = str(info.value)
    assert "could not renew in time" in text and "no newer holder" in text and "took over" not in text


def test_a_fenced_writer_is_told_a_newer_token_exists():
    class Holder:  # the smallest lease a job needs: its token
        def __init__(self, token):
            self.token = token

    store = MemoryStore()
    Job(store, "j", lease=Holder(1)).checkpoint()
    stale = Job(store, "j", lease=Holder(1))
    Job(store, "j", lease=Holder(2)).checkpoint()
    with pytest.raises(LeaseLost) as info:
        stale.checkpoint()
    text = str(info.value)
    assert "holds token 1, the store has token 2" in text and "another runtime took over" in text


@pytest.mark.parametrize("damage", ["garbage", "removed", "restored from an old copy"])
def test_tokens_never_repeat_when_the_lease_record_is_damaged_or_moved_away(damage):
    """Issue 18 (7): moving a damaged lease record away, as its error advises, let token 1 be
    issued again to a new holder while the dead holder's token was also 1."""
    base, store = FakeClock(), MemoryStore()
    a = lease(store, "a", OffsetClock(base))
    old = store.get("leases/primary")
    a.acquire()
    a.release()
    assert a.acquire() == 2  # a holds token 2 ...
    b = lease(store, "b", OffsetClock(base, mono_offset=777))
    if damage == "garbage":
        store.put("leases/primary", b"\x00 not a lease")
    elif damage == "removed":
        store.delete("leases/primary")
    else:
        store.put("leases/primary", store.get("leases/primary").data.replace(b'"token": 2', b'"token": 1'))
    assert b.try_acquire() is None, "a may still be alive: b waits until the record lay still for ttl"
    if damage == "garbage":
        assert a.renew() is False  # it cannot read its record: it retries until its deadline
        base.advance(6)
        with pytest.raises(LeaseLost, match="deadline"):
            a.renew()
    else:  # ... and stops as soon as it sees its record gone or replaced
        with pytest.raises(LeaseLost, match="removed" if damage == "removed" else "older copy"):
            a.renew()
    base.advance(10)
    token = b.try_acquire()
    assert token == 3, f"after {damage}, the next token is above every token issued (got {token})"
    assert not a.held and b.held


def test_tokens_never_repeat_when_the_high_water_mark_is_lost():
    base, store = FakeClock(), MemoryStore()
    a = lease(store, "a", OffsetClock(base))
    a.acquire()
    a.release()
    store.delete("lease-tokens/primary")
    assert lease(store, "b", OffsetClock(base)).try_acquire() == 2  # the lease record still knows 1
    assert json.loads(store.get("lease-tokens/primary").data)["token"] == 2  # written anew


def test_a_first_acquisition_whose_answers_were_lost_is_not_held_up():
    """Raising the mark landed but its answer was lost: no record names anyone yet, and the
    mark names this holder, so it is not mistaken for a removed record (no ttl wait)."""
    base = FakeClock()
    net = Network(base)
    store = SlowStore(MemoryStore(), 0, net)
    a = lease(store, "a", OffsetClock(base))
    net.lose_answers = 1
    assert a.try_acquire() is None
    assert a.try_acquire() == 2


def test_a_record_written_and_removed_between_two_looks_is_not_taken_as_long_missing():
    """Found by the safety machine (replayed here step by step): h1 saw no lease record and
    lost the race to h0 (token 1); h0 took it anew after its own expiry (token 3) and the
    record was then moved away. To h1 the record was 'missing' at both its looks, so it took
    the lease while h0 held it. Every acquisition raises the mark first, so h1 now counts the
    record as missing only since the mark changed, and waits a ttl."""
    machine = LeaseSafety()
    machine.another_runtime_looks_meanwhile(i=0)
    machine.try_acquire(i=1)
    machine.time_passes(seconds=0.1)
    machine.time_passes(seconds=9.9)
    machine.try_acquire(i=0)
    assert machine.leases[0].held
    machine.a_record_is_damaged_or_moved_away(how="removed", which="lease")
    machine.try_acquire(i=1)
    machine.at_most_one_holder_believes_it_holds()
    machine.tokens_are_issued_once_each_in_sequence()
    machine.teardown()
