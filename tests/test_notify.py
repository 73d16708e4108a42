"""Notifications: callbacks, and webhooks against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sessionkit import Job, notify
from sessionkit.clock import FakeClock
from sessionkit.events import EventLog
from sessionkit.store.memory import MemoryStore


class Hook:
    """A webhook endpoint on 127.0.0.1 that records bodies; it can fail its first
    ``failures`` requests with 500, and hold answers until ``release`` is set."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.failures = failures
        self.release = threading.Event()
        self.release.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                hook.release.wait(10)
                if hook.failures > 0:
                    hook.failures -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.bodies.append(body)
                hook.paths.append(self.path)
                self.send_response(204)
                self.end_headers()

            def do_GET(self):  # a dead-man's switch ping
                hook.paths.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def fail_a_job(store):
    job = Job(store, "j", clock=FakeClock())
    with pytest.raises(RuntimeError):
        with job:
            for _ in job.track(range(3), display=False):
                raise RuntimeError("out of memory")


def test_subscribe_calls_back_for_matching_kinds():
    got = []
    listener = notify.subscribe(["job.failed"], got.append)
    try:
        fail_a_job(MemoryStore())
    finally:
        notify.unsubscribe(listener)
    assert [e["data"]["to"] for e in got] == ["failed"]


def test_json_webhook_gets_completed_and_failed_jobs(hook):
    n = notify.WebhookNotifier(hook.url + "/hook", kinds=["job.completed", "job.failed"], backoff=0.01)
    try:
        store = MemoryStore()
        list(Job(store, "ok").track(range(3), display=False))
        fail_a_job(store)
        assert n.flush(10)
    finally:
        n.close()
    assert [b["data"]["to"] for b in hook.bodies] == ["completed", "failed"]
    assert hook.bodies[1]["data"]["error"]["message"] == "out of memory"


@pytest.mark.parametrize("fmt,check", [
    ("slack", lambda b: b["text"].startswith("*Job failed*: job j failed") and "out of memory" in b["text"]),
    ("discord", lambda b: b["content"].startswith("**Job failed**")),
    ("ntfy", lambda b: b["topic"] == "mytopic" and b["title"] == "Job failed" and "out of memory" in b["message"]),
])
def test_payload_shapes(hook, fmt, check):
    url = hook.url + ("/mytopic" if fmt == "ntfy" else "/x")
    n = notify.WebhookNotifier(url, format=fmt, kinds=["job.failed"], backoff=0.01)
    try:
        fail_a_job(MemoryStore())
        assert n.flush(10)
    finally:
        n.close()
    assert len(hook.bodies) == 1 and check(hook.bodies[0])
    assert hook.paths == (["/"] if fmt == "ntfy" else ["/x"])


def test_a_failing_endpoint_is_retried_until_it_recovers():
    hook = Hook(failures=3)
    try:
        n = notify.WebhookNotifier(hook.url, kinds=["job.failed"], retries=5, backoff=0.01)
        fail_a_job(MemoryStore())
        assert n.flush(20)
        n.close()
        assert len(hook.bodies) == 1 and n.sent == 1 and n.failed == 0
    finally:
        hook.close()


def test_a_dead_endpoint_gives_up_and_counts():
    hook = Hook(failures=100)
    try:
        n = notify.WebhookNotifier(hook.url, kinds=["job.failed"], retries=2, backoff=0.01)
        fail_a_job(MemoryStore())
        assert n.flush(20)
        n.close()
        assert n.sent == 0 and n.failed == 1
    finally:
        hook.close()


def test_sending_never_blocks_the_emitter(hook):
    hook.release.clear()  # the endpoint holds every answer until released
    n = notify.WebhookNotifier(hook.url, kinds=["*"], backoff=0.01)
    try:
        log = EventLog(MemoryStore())
        for i in range(50):
            log.emit("job.status", job="j", to="completed")  # returns although nothing was answered
        assert hook.bodies == []
    finally:
        hook.release.set()
        assert n.flush(20)
        n.close()
    assert len(hook.bodies) == 50


def test_webhook_arguments_are_checked():
    with pytest.raises(ValueError, match="http"):
        notify.WebhookNotifier("ftp://x")
    with pytest.raises(ValueError, match="format"):
        notify.WebhookNotifier("http://127.0.0.1:9/", format="teams")
    with pytest.raises(ValueError, match="topic"):
        notify.WebhookNotifier("http://127.0.0.1:9/", format="ntfy")


def test_a_job_that_stops_finishing_items_is_marked_stalled_and_the_webhook_hears_it(hook):
    from sessionkit.handover import Primary
    from sessionkit.sessions import read_session

    clock = FakeClock()
    store = MemoryStore()
    sender = notify.WebhookNotifier(hook.url, kinds=["job.stalled"], backoff=0.01)
    primary = Primary(store, "j", runtime="local", clock=clock, ttl=7200)
    try:
        for item in primary.track(range(30), display=False):
            clock.advance(2.0)  # a mean item time of 2 s: stall_after is max(300 s, 20 s)
            if item == 10:
                clock.advance(297)  # this item hangs (299 s since the last one finished) ...
                primary.session.beat()  # ... while the heartbeat thread keeps beating
                assert not primary.stalled, "not before 5 minutes"
                clock.advance(2)
                primary.session.beat()
                assert primary.stalled and read_session(store, primary.session.id).stalled is True
            if item == 12:
                primary.session.beat()  # items finish again
                assert not primary.stalled and read_session(store, primary.session.id).stalled is False
        assert sender.flush(timeout=10)
    finally:
        sender.close()
        primary.close()
    assert [b["kind"] for b in hook.bodies] == ["job.stalled"]
    assert hook.bodies[0]["data"]["idle_s"] >= 300
    title, message = notify.message_for(hook.bodies[0])
    assert title == "Job stalled" and "finished no item" in message


def test_a_dead_mans_switch_is_pinged_on_every_heartbeat(hook):
    import time

    from sessionkit import Session

    session = Session(MemoryStore(), "primary", runtime="local", clock=FakeClock(), start=False,
                      ping_url=hook.url + "/ping/abc")
    for _ in range(3):
        session.beat()
    deadline = time.monotonic() + 10  # pings go out on their own threads
    while hook.paths.count("/ping/abc") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hook.paths.count("/ping/abc") == 3
    with pytest.raises(ValueError, match="ping_url"):
        Session(MemoryStore(), "primary", ping_url="ftp://x", start=False)
