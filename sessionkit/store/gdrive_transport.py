"""Requests to the Drive API v2 for the ``gdrive://`` store: one connection per thread,
retries, and what a failed request means.

- Rate limits (403 ``userRateLimitExceeded``/``rateLimitExceeded``, 429), 408, 5xx,
  timeouts and dropped connections are retried with truncated exponential backoff and
  jitter, ``retries`` times, then a ``StoreError`` names the key and says what happened.
  Any try (ours, or httplib2's own resend of a dropped request) **may have landed**.
- Every other answer (404, 409, 412, a 403 that is not a rate limit, ...) is ``Refused``:
  retrying cannot change it. ``settle`` lets a caller look, after any failed try, whether
  its request landed all the same (an insert under a pre-generated id), whatever the
  status said.
- Large files go up in a resumable upload session, a chunk a request (``send_resumable``).
- Smaller writes go up in one multipart request (``with_media``) whose body is built here,
  in the wire format googleapiclient writes (Drive's "multipart upload": a JSON metadata
  part, then the media part): googleapiclient builds it with the email package, which
  costs about 16 ms of CPU per MB holding the GIL, on the upload threads beside the loop.

``endpoint`` points the client elsewhere than Google, for the tests' emulator.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
import uuid
from typing import Any, Callable, Optional, Union

from ..backoff import Backoff
from ..errors import DriveRefused as Refused, StoreError
from .base import CHUNK_BYTES
from .gdrive_auth import SignIn

log = logging.getLogger("sessionkit.gdrive")
RATE_REASONS = ("userRateLimitExceeded", "rateLimitExceeded")
#: local files up to this size go up in one multipart request (Drive: "multipart upload ...
#: 5 MB or less"), larger ones in a resumable upload session
SIMPLE_UPLOAD_MAX = 5 * 1024 * 1024
OCTET = "application/octet-stream"


class LocalFile:
    """The content of a write that is a local file (``put_file``): streamed, never read whole."""

    def __init__(self, path: str) -> None:
        self.path = path


Content = Union[bytes, LocalFile]


class Transport:
    """How the store talks to Drive. ``stats`` counts requests by method, retries and errors."""

    def __init__(self, auth: SignIn, *, endpoint: Optional[str], http: Any, retries: int, backoff: float,
                 max_backoff: float, timeout: float) -> None:
        self.auth = auth
        self.endpoint = endpoint
        self.retries, self.timeout = retries, timeout
        self.backoff = Backoff(backoff, max_backoff)
        self.stats: dict[str, Any] = {"requests": 0, "retries": 0, "by_method": {}, "errors": {}}
        #: the store's folder link, for messages (set once the folder is known)
        self.link = "the store's folder"
        self._lock = threading.Lock()
        self._local = threading.local()  # httplib2 connections are not thread-safe
        self._http_factory = http

    def service(self) -> Any:
        """This thread's Drive v2 client (built on first use)."""
        service = getattr(self._local, "service", None)
        if service is None:
            import google_auth_httplib2
            import httplib2
            from googleapiclient.discovery import build

            http = self._http_factory() if callable(self._http_factory) else httplib2.Http(timeout=self.timeout)
            # 308 is "Resume Incomplete" in a resumable upload, not a redirect (httplib2 would
            # follow it; googleapiclient's own build_http removes it the same way)
            http.redirect_codes = set(http.redirect_codes) - {308}
            http = google_auth_httplib2.AuthorizedHttp(self.auth.credentials, http=http)
            options = {"api_endpoint": self.endpoint.rstrip("/") + "/drive/v2/"} if self.endpoint else None
            service = build("drive", "v2", http=http, client_options=options, static_discovery=True,
                            cache_discovery=False)
            self._local.service = service
        return service

    def call(self, what: str, key: str, make: Callable[[Any], Any], if_match: Optional[str] = None,
             settle: Optional[Callable[[], Optional[Any]]] = None) -> Any:
        """One request, retried on rate limits, 5xx, timeouts and dropped connections.

        Returns the parsed answer (bytes for media). Raises ``Refused`` for answers a retry
        cannot change and ``StoreError`` once the retries are spent. After any failed try,
        ``settle()`` (when given) says whether the request landed all the same: its answer
        (not None) is then the request's.
        """
        from googleapiclient.errors import HttpError

        attempt = 0
        while True:
            request = make(self.service())
            if if_match is not None:
                request.headers["If-Match"] = if_match
            if getattr(request, "resumable", None) is not None:
                return self.send_resumable(what, key, request, lambda: make(self.service()), if_match)
            self.count_request(what)
            try:
                return request.execute()
            except Exception as exc:  # sorted by transient: it raises what a retry cannot change
                try:
                    problem = self.transient(what, key, exc)
                except Refused:
                    landed = settle() if settle is not None else None
                    if landed is not None:
                        return landed
                    raise
                if not isinstance(exc, HttpError):
                    self._local.service = None  # a dropped connection: start a fresh one
            landed = settle() if settle is not None else None
            if landed is not None:
                return landed
            attempt += 1
            if attempt >= self.retries:
                raise StoreError(f"Google Drive: {what} {key!r} failed after {attempt} tries ({problem}). "
                                 f"A write may have landed all the same; the store stays consistent "
                                 f"either way. Check the network, or wait if Drive limits your rate.",
                                 key=key)
            self.pause(attempt)

    def pause(self, attempt: int) -> None:
        """Wait before the ``attempt``-th retry (counted in ``stats``)."""
        with self._lock:
            self.stats["retries"] += 1
        self.backoff.sleep(attempt)

    def transient(self, what: str, key: str, exc: Exception) -> str:
        """What went wrong, in words, if a retry may help (rate limits, 408, 5xx, timeouts,
        dropped connections); else raise: ``Refused`` for Drive's other answers, a
        ``StoreError`` for a refused sign-in, the exception itself if it is not Drive's."""
        from googleapiclient.errors import HttpError

        if isinstance(exc, HttpError):
            status, why = int(exc.resp.status), reason(exc)
            self.count_error(str(status))
            if not ((status == 403 and why in RATE_REASONS) or status in (408, 429) or status >= 500):
                raise Refused(status, why) from None
            return f"HTTP {status} {why}".strip()
        if type(exc).__name__ == "RefreshError":  # google.auth.exceptions: revoked or expired
            raise StoreError(f"Google Drive: {what} {key!r}: the sign-in ({self.auth.source}) "
                             f"was refused when refreshed; sign in again (in Colab run "
                             f"google.colab.auth.authenticate_user())", key=key) from None
        transport = isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError, OSError))
        if not transport and type(exc).__module__.split(".")[0] not in ("httplib2", "google_auth_httplib2",
                                                                        "google"):
            raise exc
        self.count_error(type(exc).__name__)
        return type(exc).__name__

    def count_request(self, what: str) -> None:
        with self._lock:
            self.stats["requests"] += 1
            self.stats["by_method"][what] = self.stats["by_method"].get(what, 0) + 1

    def count_error(self, name: str) -> None:
        with self._lock:
            self.stats["errors"][name] = self.stats["errors"].get(name, 0) + 1

    def send_resumable(self, what: str, key: str, request: Any, remake: Callable[[], Any],
                       if_match: Optional[str]) -> Any:
        """A resumable upload, a chunk a request. After a dropped connection, a timeout or a
        5xx, the next call asks the session how much it holds and sends from there
        (googleapiclient does that for a request in its error state); ``retries`` failures
        in a row without progress give up. A session Drive no longer knows (404/410 once it
        exists) starts again from the first byte. Returns the file's metadata."""
        from googleapiclient.errors import HttpError

        attempt, progress, restarts = 0, -1, 0
        while True:
            self.count_request(what)
            try:
                status, answer = request.next_chunk()
                if answer is not None:
                    return answer
                if status is not None and status.resumable_progress > progress:
                    progress, attempt = status.resumable_progress, 0
                continue
            except Exception as exc:  # sorted by transient: it raises what a retry cannot change
                code = int(exc.resp.status) if isinstance(exc, HttpError) else 0
                if code in (404, 410) and request.resumable_uri is not None and restarts < self.retries:
                    log.info("Google Drive: the upload session for %r is gone (HTTP %d); starting again",
                             key, code)
                    self.count_error(str(code))
                    restarts += 1
                    request = remake()
                    if if_match is not None:
                        request.headers["If-Match"] = if_match
                    progress = -1
                    continue
                problem = self.transient(what, key, exc)  # the request is in its error state
            attempt += 1
            if attempt >= self.retries:
                raise StoreError(f"Google Drive: uploading {key!r} failed after {attempt} tries without "
                                 f"progress ({problem}); nothing of it is a record yet. Check the network "
                                 f"and store it again.", key=key)
            self.pause(attempt)

    def refusal(self, what: str, key: str, exc: Refused) -> StoreError:
        """A refusal as a StoreError that says what to do."""
        if exc.status == 403 and exc.reason == "storageQuotaExceeded":
            remedy = (service_account_hint(self.link) if self.auth.service_account
                      else "the Drive of the account that writes is full: free space or buy storage")
        elif exc.status in (401, 403):
            remedy = (f"this account ({self.auth.source}) may not {what} it: share the folder "
                      f"{self.link} with it as Editor, or sign in as an account that may")
        elif exc.status == 404:
            remedy = "the file or folder is gone or not shared with this account"
        else:
            remedy = "see docs/gdrive.md"
        return StoreError(f"Google Drive: cannot {what} {key!r} ({exc}); {remedy}", key=key)


def service_account_hint(where: str) -> str:
    return (f"{where}: a service account owns no Drive storage, so it can only write in a shared "
            f"drive (Google: 'Service Accounts do not have storage quota'). Put the store in a "
            f"shared drive and add the service account as a member, or sign in as a user "
            f"(SESSIONKIT_GDRIVE_CREDENTIALS; in Colab google.colab.auth.authenticate_user()).")


def media(data: Optional[Content]) -> Any:
    """The media of a write: bytes in one request; a local file over 5 MB in a resumable
    upload of ``CHUNK_BYTES`` a request, read from the file as it goes (MediaFileUpload
    closes the file when the request is dropped)."""
    from googleapiclient.http import MediaFileUpload, MediaInMemoryUpload

    if data is None:
        return None

    class ChunkedFile(MediaFileUpload):  # type: ignore[misc]
        def has_stream(self) -> bool:
            # Each chunk as bytes, not a stream slice: httplib2 resends a request on a dropped
            # connection by itself, and a stream it has read sends nothing the second time
            # (the server then waits for the body until the request times out; measured 20 s).
            return False

    if isinstance(data, LocalFile):
        if os.path.getsize(data.path) > SIMPLE_UPLOAD_MAX:
            return ChunkedFile(data.path, mimetype=OCTET, chunksize=CHUNK_BYTES,
                               resumable=True)
        with open(data.path, "rb") as fh:
            data = fh.read()
    return MediaInMemoryUpload(data, mimetype=OCTET, resumable=False)


def reason(exc: Any) -> str:
    """The ``reason`` of a Drive error answer ('' when it has none)."""
    try:
        body = json.loads(exc.content)
        return body["error"]["errors"][0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def with_media(method: Callable[..., Any], data: Optional[Content], *, body: dict[str, Any], **kw: Any) -> Any:
    """``method(body=body, media_body=..., **kw)`` (a ``files().insert`` or ``update``) with
    ``data`` as its media: resumable above ``SIMPLE_UPLOAD_MAX`` as ``media`` says, else one
    multipart request whose body is built here (module docstring). googleapiclient builds
    the request around an empty media part (the URL with ``uploadType=multipart``, the
    headers), then its body is replaced by the same two parts with the content in."""
    from googleapiclient.http import MediaInMemoryUpload

    if data is None or (isinstance(data, LocalFile) and os.path.getsize(data.path) > SIMPLE_UPLOAD_MAX):
        return method(body=body, media_body=media(data), **kw)
    request = method(body=body, media_body=MediaInMemoryUpload(b"", mimetype=OCTET, resumable=False), **kw)
    boundary, request.body = multipart_body(json.dumps(body), data)
    request.body_size = len(request.body)
    request.headers["content-type"] = f'multipart/related; boundary="{boundary}"'
    request.headers.pop("content-length", None)
    return request


def multipart_body(metadata: str, data: Content) -> tuple[str, bytearray]:
    """The boundary and body of a multipart upload of ``metadata`` (JSON) and ``data``: one
    buffer the content is copied (or a local file read) into once. Each chunk in flight
    held three copies before (the file read, googleapiclient's ``getbytes`` slice, the
    join): with eight 4 MB chunks in flight, 64 MB of a save's peak memory."""
    boundary = "sessionkit-" + uuid.uuid4().hex  # the same length every time

    def head(b: str) -> bytes:
        return (f"--{b}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n"
                f"--{b}\r\nContent-Type: {OCTET}\r\nContent-Transfer-Encoding: binary\r\n\r\n").encode()
    start = len(head(boundary))
    size = os.path.getsize(data.path) if isinstance(data, LocalFile) else len(data)
    end = start + size
    out = bytearray(end + len(f"\r\n--{boundary}--"))
    if isinstance(data, LocalFile):
        with open(data.path, "rb") as fh:
            view = memoryview(out)[start:end]
            got = 0
            while got < size:
                n = fh.readinto(view[got:])
                if not n:
                    raise OSError(f"{data.path} became shorter while it was being uploaded")
                got += n
            view.release()
    else:
        out[start:end] = data
    while out.find(boundary.encode(), start, end) != -1:  # never in practice: 128 random bits
        boundary = "sessionkit-" + uuid.uuid4().hex
    out[:start] = head(boundary)
    out[end:] = f"\r\n--{boundary}--".encode()
    return boundary, out

