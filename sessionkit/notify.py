"""Notifications: callbacks for event kinds, and webhooks (Slack, Discord, ntfy, plain JSON).

``subscribe(kinds, callback)`` calls ``callback(event)`` for each matching event
emitted in this process. ``WebhookNotifier(url, format=...)`` POSTs a message for
the events people want to hear about (a session dropped, a handover, an approval
needed, a job completed or failed). Nothing here blocks the job loop: events go
into a bounded queue and a worker thread sends them, retrying with exponential
backoff and jitter. Payloads (documented in docs/notify.md):

- ``json``: the event as sessionkit writes it;
- ``slack``: ``{"text": message}`` (Slack incoming webhooks);
- ``discord``: ``{"content": message}`` (Discord webhooks);
- ``ntfy``: ``{"topic", "title", "message", "tags"}`` posted to the server's root URL
  (ntfy's JSON publishing); the topic is the URL's path.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from typing import Any, Callable, Iterable, Optional

from .backoff import Backoff
from . import events

__all__ = ["subscribe", "unsubscribe", "WebhookNotifier", "DEFAULT_KINDS", "message_for"]

log = logging.getLogger("sessionkit.notify")

#: What a person wants to hear about by default.
DEFAULT_KINDS = ("session.dropped", "handover.completed", "approval.requested", "job.completed",
                 "job.failed", "job.stalled")


def _kind(event: dict[str, Any]) -> str:
    """The kind used for matching: job.status events become job.<new status>."""
    if event.get("kind") == "job.status":
        return f"job.{(event.get('data') or {}).get('to')}"
    return str(event.get("kind"))


def subscribe(kinds: Iterable[str], callback: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    """Call ``callback(event)`` on the emitting thread for events of ``kinds`` (``"*"``: all;
    ``job.completed``/``job.failed``/... match job.status events). Returns the listener,
    for ``unsubscribe``. Keep callbacks quick; for slow work use a WebhookNotifier."""
    wanted = set(kinds)

    def listener(event: dict[str, Any]) -> None:
        if "*" in wanted or event.get("kind") in wanted or _kind(event) in wanted:
            callback(event)

    events.add_listener(listener)
    return listener


def unsubscribe(listener: Callable[[dict[str, Any]], None]) -> None:
    events.remove_listener(listener)


def message_for(event: dict[str, Any]) -> tuple[str, str]:
    """(title, message) a person reads."""
    data = event.get("data") or {}
    who = event.get("label") or str(event.get("session") or event.get("writer") or "")[:8]
    kind = _kind(event)
    if kind == "session.dropped":
        return "Session dropped", (f"{data.get('label') or str(data.get('dropped'))[:8]} ({data.get('role')}) "
                                   f"stopped sending heartbeats {data.get('silent_s', 0):.0f} s ago")
    if kind == "handover.completed":
        how = "planned handover" if data.get("planned") else "takeover after the primary stopped"
        return "Handover", f"{who} is primary now for job {data.get('job')} ({how}, token {data.get('token')})"
    if kind == "approval.requested":
        return "Approval needed", (f"backup {who} waits for approval: sessionkit approve STORE "
                                   f"{data.get('request')}")
    if kind == "job.stalled":
        return "Job stalled", (f"job {data.get('job')} on {who} has finished no item for "
                               f"{data.get('idle_s', 0):.0f} s (stall_after {data.get('stall_after_s', 0):.0f} s); "
                               f"its runtime still answers")
    if kind.startswith("job."):
        error = data.get("error") or {}
        detail = f": {error.get('message')}" if isinstance(error, dict) and error.get("message") else ""
        return f"Job {data.get('to')}", f"job {data.get('job')} {data.get('to')} on {who}{detail}"
    return kind, json.dumps(data, default=str)[:500]


class WebhookNotifier:
    """POST a message for each event of ``kinds`` to ``url``, from a worker thread.

    ``format``: json, slack, discord or ntfy. ``retries`` tries per message with
    exponential backoff (``backoff`` × 2^n seconds, with jitter, at most ``max_backoff``);
    then the message is dropped and logged. At most ``queue_size`` messages wait; beyond
    that the oldest is dropped, so a dead endpoint never grows memory or blocks the job.
    """

    FORMATS = ("json", "slack", "discord", "ntfy")

    def __init__(self, url: str, *, format: str = "json", kinds: Iterable[str] = DEFAULT_KINDS,
                 retries: int = 5, backoff: float = 0.5, max_backoff: float = 30.0, timeout: float = 10.0,
                 queue_size: int = 1000, headers: Optional[dict[str, str]] = None) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"webhook url must be http:// or https://, got {url!r}")
        if format not in self.FORMATS:
            raise ValueError(f"webhook format must be one of {', '.join(self.FORMATS)}, got {format!r}")
        if format == "ntfy" and not parsed.path.strip("/"):
            raise ValueError("an ntfy url names the topic: https://ntfy.sh/<topic>")
        self.url, self.format = url, format
        self.retries, self.backoff, self.max_backoff, self.timeout = retries, backoff, max_backoff, timeout
        self._backoff = Backoff(backoff, max_backoff)
        self.headers = dict(headers or {})
        self.sent = 0
        self.failed = 0
        self._queue: "queue.Queue[Optional[dict[str, Any]]]" = queue.Queue(maxsize=queue_size)
        self._listener = subscribe(kinds, self._enqueue)
        self._worker = threading.Thread(target=self._run, name="sessionkit-webhook", daemon=True)
        self._worker.start()
        _open_webhooks.add(self)

    def _enqueue(self, event: dict[str, Any]) -> None:
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    log.warning("webhook queue full: dropped %s", dropped and dropped.get("kind"))
                except queue.Empty:
                    continue

    def payload(self, event: dict[str, Any]) -> bytes:
        title, message = message_for(event)
        if self.format == "slack":
            body: Any = {"text": f"*{title}*: {message}"}
        elif self.format == "discord":
            body = {"content": f"**{title}**: {message}"}
        elif self.format == "ntfy":
            body = {"topic": urllib.parse.urlparse(self.url).path.strip("/"), "title": title,
                    "message": message, "tags": ["sessionkit"]}
        else:
            body = event
        return json.dumps(body, default=str).encode()

    def _target(self) -> str:
        if self.format == "ntfy":  # JSON publishing goes to the server root
            parsed = urllib.parse.urlparse(self.url)
            return f"{parsed.scheme}://{parsed.netloc}/"
        return self.url

    def _send(self, event: dict[str, Any]) -> bool:
        data = self.payload(event)
        for attempt in range(self.retries):
            request = urllib.request.Request(self._target(), data=data, method="POST",
                                             headers={"Content-Type": "application/json", **self.headers})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    if 200 <= answer.status < 300:
                        return True
                    reason = f"HTTP {answer.status}"
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    log.warning("webhook refused %s (%s): not retried", event.get("kind"), reason)
                    return False
            except (urllib.error.URLError, OSError) as exc:
                reason = str(getattr(exc, "reason", exc))
            if attempt + 1 < self.retries:
                self._backoff.sleep(attempt + 1)
        log.warning("webhook gave up on %s after %d tries (%s)", event.get("kind"), self.retries, reason)
        return False

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                if self._send(event):
                    self.sent += 1
                else:
                    self.failed += 1
            finally:
                self._queue.task_done()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queued message was sent or given up; True if done in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop listening; send what is queued, then stop the worker."""
        _open_webhooks.discard(self)
        unsubscribe(self._listener)
        self._queue.put(None)
        self._worker.join(timeout=self.timeout * self.retries + 5)


_open_webhooks: "weakref.WeakSet[WebhookNotifier]" = weakref.WeakSet()


def is_open(notifier: WebhookNotifier) -> bool:
    """True until ``notifier.close()``."""
    return notifier in _open_webhooks


def flush_all(timeout: float = 30.0) -> bool:
    """Wait until every open webhook has sent (or given up on) what is queued, at most
    ``timeout`` seconds in all; True if all were done in time (before a runtime is released)."""
    deadline = time.monotonic() + timeout
    return all([hook.flush(max(0.0, deadline - time.monotonic())) for hook in list(_open_webhooks)])
