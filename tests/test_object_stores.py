"""gs:// and s3:// against real-protocol servers on 127.0.0.1 (fake-gcs-server from its
PyPI wheel, moto_server from moto[server]), started by conftest. The store contract runs
on both through conftest.STORE_BACKENDS; these add processes, races, leases, a SIGKILLed
leased job, request counts, and a check that the servers honour the preconditions the
stores rely on."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

import sessionkit
from sessionkit import Conflict, Job
from sessionkit.clock import FakeClock
from sessionkit.store import ABSENT

from conftest import TEST_BUCKET, gcs_server, s3_server
from support.stores import heartbeat_costs, lease_and_fencing

WORKERS = str(Path(__file__).parent / "support" / "workers.py")
SERVERS = {"gs": gcs_server, "s3": s3_server}


@pytest.fixture(params=sorted(SERVERS))
def url(request):
    SERVERS[request.param]()
    return f"{request.param}://{TEST_BUCKET}/{uuid.uuid4().hex[:10]}"


def test_the_servers_honour_the_preconditions_the_stores_rely_on(url):
    """Create-only and compare-and-swap on update must be enforced by the server itself
    (gcp-storage-emulator ignores every precondition: it would fail here). Deletes are
    tombstone writes, so the stores do not rely on a precondition on DELETE (which
    fake-gcs-server ignores)."""
    store = sessionkit.open_store(url)
    name = store._name("probe")
    first = store._write(name, b"1", create_only=True, match=None, nonce=uuid.uuid4().hex, tombstone=False)
    with pytest.raises(sessionkit.store.objects._PreconditionFailed):
        store._write(name, b"2", create_only=True, match=None, nonce=uuid.uuid4().hex, tombstone=False)
    second = store._write(name, b"2", create_only=False, match=first, nonce=uuid.uuid4().hex, tombstone=False)
    with pytest.raises(sessionkit.store.objects._PreconditionFailed):
        store._write(name, b"3", create_only=False, match=first, nonce=uuid.uuid4().hex, tombstone=False)
    assert store._read(name).version == second


@pytest.mark.slow
def test_four_processes_100_cas_increments_each_end_exact(url):
    procs = [subprocess.Popen([sys.executable, WORKERS, "drive_count", url, "100"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy()) for _ in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    assert json.loads(sessionkit.open_store(url).get("counter").data)["value"] == 400
    assert sum(json.loads(o)["conflicts"] for o, _ in outs) > 0, "the processes did race"


def test_eight_threads_racing_a_create_have_one_winner(url):
    stores = [sessionkit.open_store(url) for _ in range(8)]
    start = threading.Barrier(8)
    results: list[bool] = []

    def create(store, i):
        start.wait()
        try:
            store.put("lock", str(i).encode(), expect=ABSENT)
            results.append(True)
        except Conflict:
            results.append(False)

    threads = [threading.Thread(target=create, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_leases_and_fencing(url):
    lease_and_fencing(sessionkit.open_store(url))


def test_one_request_per_heartbeat_and_per_position_checkpoint(url):
    from sessionkit.jobs.checkpoint import PREV_EVERY

    store = sessionkit.open_store(url)
    assert heartbeat_costs(store) == [1] * 5
    job = Job(store, "j", clock=FakeClock(), checkpoint_every=1e9, checkpoint_items=10)
    it = job.track(range(1000), display=False)
    for _ in range(11):
        next(it)
    costs = []
    for _ in range(PREV_EVERY):
        before = store.stats["requests"]
        for _ in range(10):
            next(it)
        costs.append(store.stats["requests"] - before)
    assert sorted(costs) == [1] * (PREV_EVERY - 1) + [2], costs  # every 10th keeps manifest.prev


def logged_lines(log: Path) -> int:
    """Lines in the worker's item log; 0 before the worker has created it."""
    try:
        return len(log.read_text().splitlines())
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_a_sigkilled_leased_job_loses_nothing(url, tmp_path):
    """A Primary (lease ttl 2 s) is SIGKILLed five times at random progress; each new one
    takes the lease over with the next token and resumes; every item is done."""
    import time

    log = tmp_path / "items.log"
    rng = random.Random(3)
    kills, tokens = 0, []
    while True:
        proc = subprocess.Popen([sys.executable, WORKERS, "handover_primary", url, str(log), "400", "0.002", "2",
                                 "1", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stdout.readline().split()
        assert line and line[0] == "holding", proc.stderr.read()
        tokens.append(int(line[1]))
        target = logged_lines(log) + rng.randint(20, 60)
        while proc.poll() is None and kills < 5 and logged_lines(log) < target:
            time.sleep(0.005)
        if proc.poll() is None and kills < 5:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            assert json.loads(out.splitlines()[-1])["status"] == "completed", err
            break
        assert proc.returncode == -signal.SIGKILL, err
    assert kills == 5 and tokens == list(range(1, 7)), tokens
    assert {int(line.split()[0]) for line in log.read_text().splitlines()} == set(range(400))


def test_a_write_whose_answer_was_lost_is_not_a_false_conflict(url):
    """The write reaches the server, then the connection drops before the answer (a real
    ConnectionError, raised after the real request): the retry meets 412, finds its own
    nonce there, and succeeds instead of reporting a conflict."""
    store = sessionkit.open_store(url)
    version = store.put("k", b"1")
    real_write = store._write
    lost = []

    def answer_lost_once(name, data, **kw):
        result = real_write(name, data, **kw)
        if not lost:
            lost.append(result)
            raise ConnectionError("connection reset before the answer arrived")
        return result

    store._write = answer_lost_once
    store.backoff = 0.01
    new = store.put("k", b"2", expect=version)
    assert lost and store.get("k") == sessionkit.store.Record(b"2", new)
    assert store.stats["retries"] == 1
    lost.clear()
    assert store.delete("k", expect=new) is True and store.get("k") is None  # a lost tombstone answer too


@pytest.mark.parametrize("scheme,module,extra", [("gs", "google.cloud", r"\[gcs\]"), ("s3", "boto3", r"\[s3\]")])
def test_without_the_client_library_the_error_names_the_extra(monkeypatch, scheme, module, extra):
    import builtins

    real = builtins.__import__

    def missing(name, *args, **kw):
        if name == module or name.startswith(module + "."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", missing)
    with pytest.raises(sessionkit.errors.StoreError, match=f"sessionkit-runtime{extra}"):
        sessionkit.open_store(f"{scheme}://bucket/prefix")


def test_sessions_jobs_and_history_work_unchanged(url):
    from sessionkit import history
    from sessionkit.handover import Primary

    primary = Primary(url, "job", runtime="local", clock=FakeClock(), ttl=600, label="A")
    assert list(primary.track(range(30), display=False)) == list(range(30))
    events = history.load(url)
    assert len(history.sessions(events)) == 1 and history.jobs(events)["done"].iloc[-1] == 30


def test_what_each_operation_costs_as_docs_stores_md_says(url):
    store = sessionkit.open_store(url)

    def cost(op):
        before = store.stats["requests"]
        op()
        return store.stats["requests"] - before

    reads = 2 if url.startswith("gs://") else 1  # GCS: metadata, then that generation
    assert cost(lambda: store.put("k", b"x", expect=ABSENT)) == 1
    assert cost(lambda: store.get("k")) == reads
    version = store.get("k").version
    assert cost(lambda: store.delete("k", expect=version)) == 1


def test_a_service_that_ignores_preconditions_is_refused_on_first_open():
    """Through a proxy that drops If-None-Match and If-Match (as Backblaze B2, older MinIO
    and some gateways ignore them), open_store refuses the s3:// store, naming the endpoint
    and both conditions, before a lease or a job can run; through moto directly it opens."""
    from sessionkit.handover import Primary

    from support.precondition_proxy import PreconditionStrippingProxy

    upstream = s3_server()
    url = f"s3://{TEST_BUCKET}/{uuid.uuid4().hex[:10]}"
    with PreconditionStrippingProxy(upstream) as proxy:
        os.environ["AWS_ENDPOINT_URL"] = proxy.url
        try:
            with pytest.raises(sessionkit.errors.StoreError) as refused:
                sessionkit.open_store(url)
            with pytest.raises(sessionkit.errors.StoreError, match="does not enforce"):
                Primary(url, "job", runtime="local", clock=FakeClock(), ttl=600)
            stripped = proxy.stripped
        finally:
            os.environ["AWS_ENDPOINT_URL"] = upstream
    message = str(refused.value)
    assert proxy.url in message and url in message
    assert "create-only writes (If-None-Match: *" in message and "conditional writes (If-Match" in message
    assert f"sessionkit doctor {url}" in message
    assert stripped >= 4  # the headers did reach the proxy, which dropped them
    store = sessionkit.open_store(url)  # moto enforces both: the same store opens
    assert store.list() == []  # and nothing of a lease or a job was written through the proxy
    store.put("k", b"1", expect=ABSENT)
    with pytest.raises(Conflict):
        store.put("k", b"2", expect=ABSENT)


def opens_cost(url: str, **env: str) -> int:
    """Requests an open_store of ``url`` makes in a new process (with ``env`` set)."""
    code = "import json, sys, sessionkit; print(sessionkit.open_store(sys.argv[1]).stats['requests'])"
    return int(subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True,
                              env=dict(os.environ, **env)).stdout)


def test_the_first_open_check_costs_five_requests_once_then_one_read(url):
    """First open: read the record (none), create it, the two checks (refused), write it.
    Later opens in a new process read the record (GCS: metadata, then content); in this
    process they cost nothing."""
    first = sessionkit.open_store(url)
    assert first.stats["by_method"] == {"read": 1, "check": 4} and first.stats["requests"] == 5
    assert sessionkit.open_store(url).stats["requests"] == 0
    assert opens_cost(url) == (2 if url.startswith("gs://") else 1)
    assert first.list() == []  # the record is no key of the store


def test_openers_racing_on_a_new_store_all_pass_the_check(url):
    """Six openers check a new store at once (the check open_store makes; the stores are
    made first because boto3 clients are not made safely in threads): racing creates of
    the record are refused as a check is, every one passes, and the record says so after."""
    stores = [sessionkit.open_store(url, check=False) for _ in range(6)]
    from concurrent.futures import ThreadPoolExecutor

    start = threading.Barrier(6)

    def check(store):
        start.wait()
        store.check_service()  # raises StoreError if refused

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(check, stores))
    assert opens_cost(url) == (2 if url.startswith("gs://") else 1)  # the record says it passed


def test_the_record_names_its_endpoint_another_endpoint_is_checked_again(url):
    """The same server reached as localhost instead of 127.0.0.1 is another endpoint: its
    first open checks again (the record read, the two checks, the record: 4 requests),
    then the record names both."""
    sessionkit.open_store(url)
    variable = "STORAGE_EMULATOR_HOST" if url.startswith("gs://") else "AWS_ENDPOINT_URL"
    other = os.environ[variable].replace("127.0.0.1", "localhost")
    read = 2 if url.startswith("gs://") else 1
    assert opens_cost(url, **{variable: other}) == read + 3
    assert opens_cost(url, **{variable: other}) == read
    assert opens_cost(url) == read


def test_a_store_checked_on_a_good_endpoint_is_still_refused_through_a_bad_one():
    from support.precondition_proxy import PreconditionStrippingProxy

    upstream = s3_server()
    url = f"s3://{TEST_BUCKET}/{uuid.uuid4().hex[:10]}"
    sessionkit.open_store(url)  # checked and remembered for moto's endpoint
    with PreconditionStrippingProxy(upstream) as proxy:
        res = subprocess.run([sys.executable, "-c", "import sys, sessionkit; sessionkit.open_store(sys.argv[1])",
                              url], capture_output=True, text=True, env=dict(os.environ, AWS_ENDPOINT_URL=proxy.url))
    assert res.returncode != 0 and f"the service at {proxy.url} does not enforce" in res.stderr
