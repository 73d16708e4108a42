"""A Google Drive API v2 emulator for sessionkit's tests, with the real service's worst
documented behaviour switched on.

It stands in for Google Drive, which CI cannot reach (the machine has no network
but package registries). It is an HTTPS server on 127.0.0.1 that the real
googleapiclient, httplib2 and google-auth stack talks to. What it does, as the
real service does (sources in docs/gdrive.md):

- **search lags**: ``files.list`` does not show a file for ``list_lag`` seconds
  after it is inserted or renamed (kopia#90, apache/opendal#7390, rclone#2485);
  ``files.get`` by id is consistent;
- **latency**: ``latency`` seconds are added to every answer (a real round trip is
  100-400 ms), and the first answer on a new connection waits ``handshake_round_trips``
  (2) more: TCP's handshake and TLS 1.3's (RFC 8446: a full handshake takes one round
  trip) come before a request can be sent, which 127.0.0.1 does at once;
- **bandwidth**: with ``bandwidth`` set (bytes per second; None: no limit), every request
  body read and every answer body sent takes its size over that rate on one link shared
  by all requests (a transfer waits for the ones before it), as a runtime's uplink does;
- **accounts**: each user or service account has its own My Drive (``root``);
  a folder shared with an account (``share``) is readable and writable by it with
  everything below; only a file's owner may delete it (403 otherwise);
- **service accounts own no storage**: their inserts outside a shared drive answer
  403 ``storageQuotaExceeded``; shared drives (``add_shared_drive``) need
  ``supportsAllDrives=true`` on every request (404 without it);
- **trashed files** are still served by id, hidden from ``trashed = false`` lists;
- **etags follow modifiedDate** (millisecond precision, strictly increasing per file);
  ``If-Match`` is honoured on updates and deletes (412), and a malformed ``If-Match``
  answers 500;
- **ids**: ``files.generateIds``; an insert with an id that exists answers 409;
- **properties** on files, merged by key on update;
- **resumable uploads** (``uploadType=resumable``, for inserts and updates): the first
  request opens a session (``Location``), each ``PUT`` with ``Content-Range`` adds a
  chunk and answers 308 with the ``Range`` held, ``bytes */total`` asks for it, and the
  file exists only once the last byte is in; **ranged downloads** (``Range`` on
  ``alt=media``, 206);
- **tokens expire** after ``token_ttl`` seconds (401, then the client refreshes):
  ``POST /token`` takes refresh tokens (users), signed JWT assertions (service
  accounts) and authorization codes; ``GET /auth`` is the consent page of Google's
  installed-app sign-in, answered at once for the account in ``login_hint`` (the user
  who clicked Allow): a redirect to ``redirect_uri`` with a code (``sessionkit login``);
- **faults**, one-shot (``inject``) or at random (``random_faults``): ``412``,
  ``403rate``, ``429``, ``500``, ``slow``, ``hang`` (the answer waits until
  ``release_hang()`` or ``hang_seconds``, as a request stuck in a dead
  connection does), ``drop`` (nothing applied), and the
  ones real Drive is reported to do (Stack Overflow 18578768), where the request
  **is applied but the answer is an error or lost**: ``500-landed``,
  ``403rate-landed``, ``lost``; and ``drop-midchunk``: a chunk of a resumable upload of
  which the server keeps the first half (in 256 KiB units) before the connection
  drops, as a connection cut mid-transfer does. Every request is counted, by kind.

**Anomalies** (``anomalies``, a set of names, empty by default; each is off unless named):
what the real service is reported to do, or might do where nothing public shows what it
does (docs/gdrive.md's table has the sources). Those marked *at random* hit a request
with probability ``anomaly_rate`` (seeded, so a run repeats). They can be set from another
process too: ``POST /emulator/anomalies`` with ``{"anomalies": [...], "rate": 0.3}``
(``set_anomalies_remotely``).

- ``false-412``: a conditional update or delete whose ``If-Match`` is the current etag
  answers 412 and changes nothing, at random (draw.io's ``DriveClient.js`` ``saveFile``:
  "Google always returns 412");
- ``stale-etag-answer``: an update lands but its answer carries the etag the file had
  before, at random (draw.io: "Google returning the wrong etag after file save");
- ``etag-drift``: a file's etag (and modified date) changes with no content change just
  before a request that names it is served, at random (the modified date changes on
  sharing changes: Google Vault help);
- ``parent-etag-on-insert``: inserting a child changes its parent folder's etag;
- ``metadata-if-match-ignored``: a metadata-only update (no media) ignores ``If-Match``;
- ``delete-if-match-ignored``: a delete ignores ``If-Match``;
- ``duplicate-id-403`` / ``duplicate-id-500``: an insert with an id that exists answers
  403 ``forbidden`` / 500 ``backendError`` instead of 409.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

FOLDER = "application/vnd.google-apps.folder"
LANDED = ("500-landed", "403rate-landed", "lost")
ANOMALIES = ("false-412", "stale-etag-answer", "etag-drift", "parent-etag-on-insert", "metadata-if-match-ignored",
             "delete-if-match-ignored", "duplicate-id-403", "duplicate-id-500")
CONTROL_PATH = "/emulator/anomalies"
_GOOD_ETAG = re.compile(r'(W/)?"[^"]+"|\*')


def make_tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (with openssl), and its key."""
    cert, key = folder / "emulator.crt", folder / "emulator.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def make_service_account(folder: Path, token_uri: str, email: str = "sessionkit-test@emulator.iam.gserviceaccount.com") -> Path:
    """A service-account JSON with a fresh RSA key, whose tokens come from the emulator."""
    key = folder / f"sa-{email.split('@')[0]}.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    path = folder / f"service-account-{email.split('@')[0]}.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "emulator", "private_key_id": "k1",
        "private_key": key.read_text(), "client_email": email,
        "client_id": "1", "token_uri": token_uri, "auth_uri": token_uri}))
    return path


class _Captured:
    """Where an answer goes when a fault replaces it (the request was applied)."""

    def __init__(self) -> None:
        self.status = 0
        self.body: Any = None


class DriveEmulator:
    """Start with ``DriveEmulator(tmp_dir).start()``; ``endpoint`` is its base URL."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cert, self.key = make_tls_files(folder)
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.files: dict[str, dict[str, Any]] = {}
        self.generated: set[str] = set()
        self.accounts: dict[str, dict[str, Any]] = {}  # email -> {"root": id, "service": bool}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> email
        self.auth_codes: dict[str, tuple[str, str]] = {}  # authorization code -> (email, redirect_uri)
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (email, expires at)
        self.shared: dict[str, set[str]] = {}  # file id -> emails it is shared with (Editor)
        self.drives: dict[str, set[str]] = {}  # shared drive id -> member emails
        self.list_lag = 0.0
        self.latency = 0.0
        self.handshake_round_trips = 2  # round trips (``latency`` each) a new connection costs
        self.connections = 0  # connections that sent a request, ever
        self.bandwidth: Optional[float] = None  # bytes per second over one shared link; None: no limit
        self._link_free_at = 0.0  # time.monotonic() when the link has sent what it was given
        self.sessions: dict[str, dict[str, Any]] = {}  # resumable upload sessions by id
        self._chunk_faults: dict[int, list[str]] = {}  # chunk number -> faults for its next tries
        self.token_ttl = 3600.0
        self.requests = 0
        self.by_kind: dict[str, int] = {}
        self.statuses: dict[int, int] = {}  # answers sent, by HTTP status
        self.journal: list[str] = []  # the kind of every request answered, in order
        self._queued: list[Optional[str]] = []
        self._random: Optional[tuple[float, list[str], random.Random]] = None
        self.faults_served = 0
        self.hang_seconds = 30.0
        self.hanging = threading.Event()  # set while a ``hang`` fault holds a request
        self._release = threading.Event()
        #: the reported or possible behaviours of real Drive switched on (module docstring)
        self.anomalies: set[str] = set()
        self.anomaly_rate = 0.3
        self._anomaly_rng = random.Random(25)
        self.anomalies_served: dict[str, int] = {}
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add 40 ms to every answer (latency is injected on purpose
            # with ``latency`` instead)
            disable_nagle_algorithm = True
            answered = False  # one handler per connection: has it answered a request yet?

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                emulator._handle(self, "GET")

            def do_POST(self) -> None:
                emulator._handle(self, "POST")

            def do_PUT(self) -> None:
                emulator._handle(self, "PUT")

            def do_PATCH(self) -> None:
                emulator._handle(self, "PUT")

            def do_DELETE(self) -> None:
                emulator._handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.endpoint = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.token_uri = self.endpoint + "/token"

    def start(self) -> "DriveEmulator":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- accounts, sharing, shared drives -----------------------------------------

    def _account(self, email: str, service: bool = False) -> dict[str, Any]:
        with self.lock:
            if email not in self.accounts:
                root = f"root-{next(self._ids)}"
                self.files[root] = self._new_meta(root, "My Drive", [], FOLDER, email)
                self.accounts[email] = {"root": root, "service": service}
            return self.accounts[email]

    def add_user(self, email: str) -> dict[str, str]:
        """A user account; returns its saved credentials (google-auth ``authorized_user``)."""
        self._account(email)
        refresh = f"refresh-{email}-{next(self._ids)}"
        with self.lock:
            self.refresh_tokens[refresh] = email
        return {"type": "authorized_user", "client_id": "emulator-client", "client_secret": "emulator-secret",
                "refresh_token": refresh, "token_uri": self.token_uri}

    def user_credentials_file(self, email: str) -> Path:
        path = self.folder / f"user-{email.split('@')[0]}-{next(self._ids)}.json"
        path.write_text(json.dumps(self.add_user(email)))
        return path

    def service_account_file(self, email: str) -> Path:
        self._account(email, service=True)
        return make_service_account(self.folder, self.token_uri, email)

    def share(self, file_id: str, email: str) -> None:
        """Share a file or folder (and all below it) with ``email`` as Editor."""
        self._account(email)
        with self.lock:
            self.shared.setdefault(file_id, set()).add(email)

    def add_shared_drive(self, name: str, members: list[str]) -> str:
        """A shared drive; returns its id, which is also the id of its root folder."""
        with self.lock:
            drive_id = f"drive-{next(self._ids)}"
            meta = self._new_meta(drive_id, name, [], FOLDER, None)
            meta["driveId"] = drive_id
            self.files[drive_id] = meta
            self.drives[drive_id] = set(members)
            return drive_id

    def trash(self, file_id: str) -> None:
        """Move a file to the trash, as a person in Drive's web page would."""
        with self.lock:
            meta = self.files[file_id]
            meta["labels"]["trashed"] = True
            self._touch(meta)

    def by_title(self, title: str) -> list[dict[str, Any]]:
        """Every file of that title (for tests to look at what is stored)."""
        with self.lock:
            return [self._public(f, None) for f in self.files.values() if f["title"] == title]

    # -- faults -----------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every access token handed out so far expires now (clients must refresh)."""
        with self.lock:
            self.tokens = {t: (email, 0.0) for t, (email, _) in self.tokens.items()}

    def inject(self, *kinds: Optional[str]) -> None:
        """Answer the next requests with these faults, in order (see the module docstring);
        ``None`` lets a request through, so ``inject(None, None, "lost")`` hits the third."""
        with self.lock:
            self._queued.extend(kinds)

    def fail_chunk(self, number: int, *kinds: str) -> None:
        """Answer the tries of the ``number``-th data chunk (from 0) of the next resumable
        upload with these faults, one a try (httplib2 resends once by itself, so two drops
        reach the client)."""
        with self.lock:
            self._chunk_faults[number] = list(kinds)

    def _chunk_fault(self, query: dict, headers: Any) -> Optional[str]:
        if not query.get("upload_id") or headers.get("Content-Range", "").startswith("bytes */"):
            return None
        with self.lock:
            session = self.sessions.get(query["upload_id"])
            faults = self._chunk_faults.get(session["chunks"]) if session is not None else None
            return faults.pop(0) if faults else None

    def release_hang(self) -> None:
        """Let a ``hang`` fault's request go on now."""
        self._release.set()

    def random_faults(self, rate: float, kinds: list[str], seed: int = 0) -> None:
        """Answer each Drive request with a random fault of ``kinds`` with probability ``rate``."""
        with self.lock:
            self._random = (rate, list(kinds), random.Random(seed)) if rate > 0 else None

    def set_anomalies(self, *names: str, rate: Optional[float] = None) -> None:
        """Switch on exactly these anomalies (none: all off); ``rate`` for the random ones."""
        unknown = sorted(set(names) - set(ANOMALIES))
        if unknown:
            raise ValueError(f"unknown anomalies {unknown}; known: {', '.join(ANOMALIES)}")
        if rate is not None and not 0 <= rate <= 1:
            raise ValueError(f"rate is a probability from 0 to 1, got {rate}")
        with self.lock:
            self.anomalies = set(names)
            if rate is not None:
                self.anomaly_rate = rate

    def _anomaly(self, name: str, at_random: bool = True) -> bool:
        """Whether the anomaly ``name`` hits this request (counted in ``anomalies_served``)."""
        with self.lock:
            if name not in self.anomalies or (at_random and self._anomaly_rng.random() >= self.anomaly_rate):
                return False
            self.anomalies_served[name] = self.anomalies_served.get(name, 0) + 1
            return True

    def _control(self, h: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        if method == "POST":
            try:
                asked = json.loads(body or b"{}")
                self.set_anomalies(*asked.get("anomalies", []), rate=asked.get("rate"))
                if "bandwidth" in asked:
                    self.set_bandwidth(asked["bandwidth"])
            except (ValueError, TypeError, AttributeError) as exc:
                return self._error(h, 400, "invalid", str(exc))
        with self.lock:
            state = {"anomalies": sorted(self.anomalies), "rate": self.anomaly_rate,
                     "served": dict(self.anomalies_served), "bandwidth": self.bandwidth}
        return self._send(h, 200, state)

    def set_bandwidth(self, bandwidth: Optional[float]) -> None:
        """Limit uploads and downloads to ``bandwidth`` bytes per second (None: no limit)."""
        if bandwidth is not None and (isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float))
                                      or bandwidth <= 0):
            raise ValueError(f"bandwidth must be bytes per second > 0, or None for no limit; got {bandwidth!r}")
        with self.lock:
            self.bandwidth = None if bandwidth is None else float(bandwidth)

    def reset(self) -> None:
        """No faults, no anomalies, no lag, no latency (between tests)."""
        with self.lock:
            self.anomalies = set()
            self.anomaly_rate = 0.3
            self._queued.clear()
            self._chunk_faults.clear()
            self._random = None
            self.list_lag = self.latency = 0.0
            self.bandwidth = None
            self.token_ttl = 3600.0
            self._release = threading.Event()

    def _fault(self) -> Optional[str]:
        with self.lock:
            if self._queued:
                return self._queued.pop(0)
            if self._random is not None:
                rate, kinds, rng = self._random
                if rng.random() < rate:
                    return rng.choice(kinds)
        return None

    # -- files --------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.now(timezone.utc)

    @staticmethod
    def _iso(moment: datetime) -> str:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _new_meta(self, file_id: str, title: str, parents: list[str], mime: str,
                  owner: Optional[str]) -> dict[str, Any]:
        now = self._now()
        meta = {"kind": "drive#file", "id": file_id, "title": title, "mimeType": mime,
                "parents": [{"kind": "drive#parentReference", "id": p} for p in parents],
                "createdDate": self._iso(now), "labels": {"trashed": False}, "properties": [],
                "md5Checksum": hashlib.md5(b"").hexdigest(), "fileSize": "0",
                "_content": b"", "_owner": owner, "_modified": now - timedelta(milliseconds=1),
                "_listed_at": time.monotonic() + self.list_lag}
        self._touch(meta)
        return meta

    def _touch(self, meta: dict[str, Any], content: Optional[bytes] = None) -> None:
        if content is not None:
            meta["_content"] = content
            meta["md5Checksum"] = hashlib.md5(content).hexdigest()
            meta["fileSize"] = str(len(content))
        modified = max(self._now(), meta["_modified"] + timedelta(milliseconds=1))
        meta["_modified"] = modified
        meta["modifiedDate"] = self._iso(modified)
        # as on real Drive v2, the etag follows the modification time
        meta["etag"] = '"' + hashlib.md5(f"{meta['id']}/{meta['modifiedDate']}".encode()).hexdigest()[:22] + '"'

    def _drive_of(self, meta: dict[str, Any]) -> Optional[str]:
        return meta.get("driveId")

    def _ancestors(self, meta: dict[str, Any]) -> list[dict[str, Any]]:
        chain, seen = [meta], {meta["id"]}
        while chain[-1]["parents"]:
            parent = self.files.get(chain[-1]["parents"][0]["id"])
            if parent is None or parent["id"] in seen:
                break
            chain.append(parent)
            seen.add(parent["id"])
        return chain

    def _can_access(self, email: str, meta: dict[str, Any], all_drives: bool) -> bool:
        drive = self._drive_of(meta)
        if drive is not None:
            return all_drives and email in self.drives.get(drive, set())
        # the owner of the file or of any folder above it, or anyone it is shared with
        return any(m["_owner"] == email or email in self.shared.get(m["id"], set())
                   for m in self._ancestors(meta))

    def _public(self, meta: dict[str, Any], email: Optional[str]) -> dict[str, Any]:
        out = {k: v for k, v in meta.items() if not k.startswith("_")}
        owner = meta["_owner"]
        out["owners"] = [{"emailAddress": owner}] if owner else []
        out["ownedByMe"] = owner is not None and owner == email
        out["capabilities"] = {"canDelete": self._can_delete(email, meta) if email else False}
        return out

    def _can_delete(self, email: str, meta: dict[str, Any]) -> bool:
        drive = self._drive_of(meta)
        if drive is not None:
            return email in self.drives.get(drive, set())
        return meta["_owner"] == email

    def _matches(self, meta: dict[str, Any], q: str) -> bool:
        for clause in re.split(r"\s+and\s+", q.strip()) if q.strip() else []:
            clause = clause.strip()
            m = re.fullmatch(r"'((?:[^'\\]|\\.)*)'\s+in\s+parents", clause)
            if m:
                if _unescape(m.group(1)) not in [p["id"] for p in meta["parents"]]:
                    return False
                continue
            m = re.fullmatch(r"(title|mimeType)\s*(=|!=)\s*'((?:[^'\\]|\\.)*)'", clause)
            if m:
                equal = meta[m.group(1)] == _unescape(m.group(3))
                if equal != (m.group(2) == "="):
                    return False
                continue
            m = re.fullmatch(r"trashed\s*=\s*(true|false)", clause)
            if m:
                if meta["labels"]["trashed"] != (m.group(1) == "true"):
                    return False
                continue
            raise ValueError(f"unsupported query clause {clause!r}")
        return True

    # -- the protocol --------------------------------------------------------------

    def _send(self, h: Any, status: int, body: Any = None, headers: Optional[dict] = None,
              raw: Optional[bytes] = None) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if isinstance(h, _Captured):
            h.status, h.body = status, body
            return
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        self._pace(len(data))
        h.wfile.write(data)

    def _pace(self, size: int) -> None:
        """Hold a transfer of ``size`` bytes for as long as the shared link takes to carry it
        (after the transfers before it), when ``bandwidth`` is set."""
        rate = self.bandwidth
        if not rate or size <= 0:
            return
        with self.lock:
            start = max(time.monotonic(), self._link_free_at)
            self._link_free_at = start + size / rate
            until = self._link_free_at
        time.sleep(max(0.0, until - time.monotonic()))

    def _error(self, h: Any, status: int, reason: str, message: str) -> None:
        domain = "usageLimits" if "RateLimit" in reason else "global"
        self._send(h, status, {"error": {"errors": [{"domain": domain, "reason": reason, "message": message}],
                                         "code": status, "message": message}})

    @staticmethod
    def _drop(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError as exc:  # already closed by the client: nothing more to drop
            h.log_message("drop: %r", exc)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self._pace(len(body))
        url = urllib.parse.urlparse(h.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        first = not h.answered
        h.answered = True
        if first:
            with self.lock:
                self.connections += 1
        if self.latency:
            time.sleep(self.latency * (1 + (self.handshake_round_trips if first else 0)))
        if url.path == "/token" and method == "POST":
            return self._token(h, body)
        if url.path == "/auth" and method == "GET":
            return self._authorize(h, query)
        if url.path == CONTROL_PATH:
            return self._control(h, method, body)
        with self.lock:
            self.requests += 1
        auth = h.headers.get("Authorization", "")
        with self.lock:
            email, expires = self.tokens.get(auth[7:], (None, 0.0)) if auth.startswith("Bearer ") else (None, 0.0)
        if email is None or time.monotonic() >= expires:
            return self._error(h, 401, "authError", "Invalid Credentials")
        fault = self._fault() or self._chunk_fault(query, h.headers)
        if fault is not None:
            self.faults_served += 1
            if fault == "drop":
                return self._drop(h)
            if fault == "drop-midchunk":
                self._keep_half(query, h.headers, body)
                return self._drop(h)
            if fault == "slow":
                time.sleep(1.5)
            elif fault == "hang":
                self.hanging.set()
                self._release.wait(self.hang_seconds)
                self.hanging.clear()
            elif fault == "403rate":
                return self._error(h, 403, "userRateLimitExceeded", "User Rate Limit Exceeded")
            elif fault == "429":
                return self._error(h, 429, "rateLimitExceeded", "Too Many Requests")
            elif fault == "500":
                return self._error(h, 500, "backendError", "Backend Error")
            elif fault == "412":
                return self._error(h, 412, "conditionNotMet", "Precondition Failed")
            elif fault in LANDED:
                self._apply(_Captured(), method, url.path, query, body, h.headers, email)
                if fault == "lost":
                    return self._drop(h)
                if fault == "403rate-landed":
                    return self._error(h, 403, "userRateLimitExceeded", "User Rate Limit Exceeded")
                return self._error(h, 500, "backendError", "Backend Error")
        self._apply(h, method, url.path, query, body, h.headers, email)

    def _apply(self, h: Any, method: str, path: str, query: dict, body: bytes, headers: Any, email: str) -> None:
        try:
            self._route(h, method, path, query, body, headers, email)
        except ValueError as exc:
            self._error(h, 400, "invalid", str(exc))

    def _authorize(self, h: BaseHTTPRequestHandler, query: dict) -> None:
        """The consent page, allowed at once for ``login_hint``: redirect with a code."""
        email, redirect = query.get("login_hint"), query.get("redirect_uri")
        if not email or not redirect or query.get("response_type") != "code":
            return self._error(h, 400, "invalid_request", "login_hint, redirect_uri and response_type=code")
        self._account(email)
        code = f"code-{next(self._ids)}"
        with self.lock:
            self.auth_codes[code] = (email, redirect)
        h.send_response(302)
        h.send_header("Location", redirect + ("&" if "?" in redirect else "?")
                      + urllib.parse.urlencode({"code": code, "state": query.get("state", ""),
                                                "scope": query.get("scope", "")}))
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _token(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        email = None
        if form.get("grant_type") == "authorization_code":
            with self.lock:
                email, redirect = self.auth_codes.pop(form.get("code", ""), (None, None))
            if email is None or redirect != form.get("redirect_uri"):
                return self._error(h, 400, "invalid_grant", "Bad Request")
            refresh = f"refresh-{email}-{next(self._ids)}"
            token = f"emu-{next(self._ids)}"
            with self.lock:
                self.refresh_tokens[refresh] = email
                self.tokens[token] = (email, time.monotonic() + self.token_ttl)
            return self._send(h, 200, {"access_token": token, "expires_in": int(self.token_ttl),
                                       "token_type": "Bearer", "refresh_token": refresh,
                                       "scope": "https://www.googleapis.com/auth/drive"})
        if form.get("grant_type") == "refresh_token":
            with self.lock:
                email = self.refresh_tokens.get(form.get("refresh_token", ""))
        elif form.get("assertion", "").count(".") == 2:
            payload = form["assertion"].split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            email = claims.get("iss")
            self._account(email, service=True)
        if email is None:
            return self._error(h, 400, "invalid_grant", "Bad Request")
        token = f"emu-{next(self._ids)}"
        with self.lock:
            self.tokens[token] = (email, time.monotonic() + self.token_ttl)
        return self._send(h, 200, {"access_token": token, "expires_in": int(self.token_ttl),
                                   "token_type": "Bearer"})

    def _count(self, kind: str) -> None:
        with self.lock:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            self.journal.append(kind)

    def _route(self, h: Any, method: str, path: str, query: dict, body: bytes, headers: Any, email: str) -> None:
        all_drives = query.get("supportsAllDrives") == "true"
        if path == "/drive/v2/files/generateIds" and method == "GET":
            self._count("generateIds")
            with self.lock:
                ids = [f"g{next(self._ids)}x{random.getrandbits(40):010x}" for _ in
                       range(int(query.get("maxResults") or 10))]
                self.generated.update(ids)
            return self._send(h, 200, {"kind": "drive#generatedIds", "space": "drive", "ids": ids})
        m = re.fullmatch(r"/(upload/)?drive/v2/files(?:/([^/]+))?", path)
        if not m:
            return self._error(h, 404, "notFound", f"no such endpoint {path}")
        upload, file_id = bool(m.group(1)), m.group(2)
        if upload and query.get("upload_id"):
            return self._session_put(h, query["upload_id"], headers, body, email)
        with self.lock:
            account = self.accounts[email]
            if file_id == "root":
                file_id = account["root"]
            if method == "GET" and file_id is None:
                self._count("list")
                now = time.monotonic()
                q = query.get("q", "").replace("'root' in parents", f"'{account['root']}' in parents")
                items = [self._public(f, email) for f in self.files.values()
                         if not f["id"].startswith(("root-", "drive-")) and f["_listed_at"] <= now
                         and self._can_access(email, f, all_drives) and self._matches(f, q)]
                items.sort(key=lambda f: f["createdDate"])
                start = int(query.get("pageToken") or 0)
                size = int(query.get("maxResults") or 100)
                result: dict[str, Any] = {"kind": "drive#fileList", "items": items[start:start + size]}
                if start + size < len(items):
                    result["nextPageToken"] = str(start + size)
                return self._send(h, 200, result)
            meta = self.files.get(file_id) if file_id else None
            if file_id and (meta is None or not self._can_access(email, meta, all_drives)):
                return self._error(h, 404, "notFound", f"File not found: {file_id}")
            if meta is not None and self._anomaly("etag-drift"):
                self._touch(meta)  # e.g. a sharing change: a new modified date, the same content
            if_match = headers.get("If-Match")
            ignored = (method == "DELETE" and self._anomaly("delete-if-match-ignored", at_random=False)) or \
                (method == "PUT" and not upload and self._anomaly("metadata-if-match-ignored", at_random=False))
            if method in ("PUT", "DELETE") and if_match is not None and not ignored:
                if not _GOOD_ETAG.fullmatch(if_match):
                    return self._error(h, 500, "internalError", "Internal Error")
                if if_match != "*" and if_match != meta["etag"]:
                    return self._error(h, 412, "conditionNotMet", "Precondition Failed")
                if self._anomaly("false-412"):
                    return self._error(h, 412, "conditionNotMet", "Precondition Failed")
            if method == "GET":
                self._count("get-media" if query.get("alt") == "media" else "get")
                if query.get("alt") == "media":
                    return self._send_media(h, meta["_content"], headers.get("Range"))
                return self._send(h, 200, self._public(meta, email))
            if method == "DELETE":
                self._count("delete")
                if not self._can_delete(email, meta):
                    return self._error(h, 403, "insufficientFilePermissions",
                                       "The user does not have sufficient permissions for this file.")
                del self.files[file_id]
                return self._send(h, 204)
            if upload and query.get("uploadType") == "resumable":
                return self._open_session(h, method, file_id, json.loads(body or b"{}"), headers, email,
                                          all_drives)
            meta_in, content = self._parse_upload(headers, query, body) if upload else (json.loads(body or b"{}"), None)
            if method == "POST":
                return self._insert(h, meta_in, content, email, account, all_drives)
            return self._update(h, meta, meta_in, content, email)

    def _update(self, h: Any, meta: dict, meta_in: dict, content: Optional[bytes], email: str) -> None:
        with self.lock:
            self._count("update")
            if "title" in meta_in and meta_in["title"] != meta["title"]:
                meta["title"] = meta_in["title"]
                meta["_listed_at"] = time.monotonic() + self.list_lag
            if "properties" in meta_in:
                merged = {p["key"]: p for p in meta["properties"]}
                merged.update({p["key"]: {"key": p["key"], "value": p.get("value"),
                                          "visibility": p.get("visibility", "PRIVATE")} for p in meta_in["properties"]})
                meta["properties"] = list(merged.values())
            before = meta["etag"]
            self._touch(meta, content)
            answer = self._public(meta, email)
            if self._anomaly("stale-etag-answer"):
                answer["etag"] = before  # applied, but the answer names the etag before it
            return self._send(h, 200, answer)

    def _insert(self, h: Any, meta_in: dict, content: Optional[bytes], email: str, account: dict,
                all_drives: bool) -> None:
        self._count("insert")
        parents = [p["id"] for p in meta_in.get("parents", [])] or [account["root"]]
        parents = [account["root"] if p == "root" else p for p in parents]
        parent = self.files.get(parents[0])
        if parent is None or not self._can_access(email, parent, all_drives):
            return self._error(h, 404, "notFound", f"File not found: {parents[0]}")
        drive = self._drive_of(parent)
        if account["service"] and drive is None:
            return self._error(h, 403, "storageQuotaExceeded",
                               "Service Accounts do not have storage quota. Leverage shared drives, or "
                               "use OAuth delegation instead.")
        new_id = meta_in.get("id")
        if new_id is not None:
            if new_id in self.files:
                if self._anomaly("duplicate-id-500", at_random=False):
                    return self._error(h, 500, "backendError", "Backend Error")
                if self._anomaly("duplicate-id-403", at_random=False):
                    return self._error(h, 403, "forbidden", "Forbidden")
                return self._error(h, 409, "duplicate", "A file already exists with the provided ID.")
            if new_id not in self.generated:
                return self._error(h, 400, "invalid", "The provided file ID is not usable.")
        else:
            new_id = f"f{next(self._ids)}"
        created = self._new_meta(new_id, meta_in.get("title", "Untitled"), parents,
                                 meta_in.get("mimeType", "application/octet-stream"),
                                 None if drive else email)
        if drive:
            created["driveId"] = drive
        created["properties"] = [{"key": p["key"], "value": p.get("value"), "visibility": p.get("visibility",
                                  "PRIVATE")} for p in meta_in.get("properties", [])]
        self._touch(created, content if content is not None else b"")
        self.files[new_id] = created
        if self._anomaly("parent-etag-on-insert", at_random=False):
            self._touch(parent)
        return self._send(h, 200, self._public(created, email))

    # -- resumable uploads and ranged downloads -----------------------------------

    def _open_session(self, h: Any, method: str, file_id: Optional[str], meta_in: dict, headers: Any,
                      email: str, all_drives: bool) -> None:
        self._count("upload-session")
        total = headers.get("X-Upload-Content-Length")
        session = f"s{next(self._ids)}x{random.getrandbits(40):010x}"
        with self.lock:
            self.sessions[session] = {"file_id": file_id, "meta_in": meta_in, "data": bytearray(),
                                      "total": int(total) if total is not None else None, "email": email,
                                      "all_drives": all_drives, "answer": None, "chunks": 0}
        where = f"{self.endpoint}/upload/drive/v2/files{'/' + file_id if file_id else ''}" \
                f"?uploadType=resumable&upload_id={session}"
        return self._send(h, 200, {}, headers={"Location": where})

    def _keep_half(self, query: dict, headers: Any, body: bytes) -> None:
        """A chunk cut mid-transfer: the server keeps the whole 256 KiB units of its first half."""
        m = re.fullmatch(r"bytes (\d+)-\d+/.*", headers.get("Content-Range", ""))
        with self.lock:
            session = self.sessions.get(query.get("upload_id", ""))
            if session is None or session["answer"] is not None or m is None:
                return
            start, held = int(m.group(1)), session["data"]
            kept = body[:(len(body) // 2) // (256 * 1024) * (256 * 1024)]
            if start <= len(held) < start + len(kept):
                held += kept[len(held) - start:]

    def _session_put(self, h: Any, session_id: str, headers: Any, body: bytes, email: str) -> None:
        with self.lock:
            self._count("upload-status" if headers.get("Content-Range", "").startswith("bytes */") else "upload-chunk")
            session = self.sessions.get(session_id)
            if session is None or session["email"] != email:
                return self._error(h, 404, "notFound", f"No upload session {session_id}")
            if session["answer"] is not None:  # complete: asked again after a lost answer
                return self._send(h, 200, self._public(self.files[session["answer"]], email))
            m = re.fullmatch(r"bytes (\*|(\d+)-(\d+))/(\d+|\*)", headers.get("Content-Range", ""))
            if m is None:
                return self._error(h, 400, "invalid", "Content-Range is missing or malformed")
            held = session["data"]
            if m.group(2) is not None:
                session["chunks"] += 1
                start = int(m.group(2))
                if start > len(held):  # a gap: say what is held (the client goes on from there)
                    return self._send_incomplete(h, len(held))
                held += body[len(held) - start:]
            if m.group(4) != "*":
                session["total"] = int(m.group(4))
            if session["total"] is None or len(held) < session["total"]:
                return self._send_incomplete(h, len(held))
            content = bytes(held[:session["total"]])
            captured = _Captured()
            meta_in, file_id = session["meta_in"], session["file_id"]
            if file_id is None:
                self._insert(captured, meta_in, content, email, self.accounts[email], session["all_drives"])
                file_id = captured.body.get("id") if captured.status == 200 else None
            else:
                meta = self.files.get(file_id)
                if meta is None:
                    return self._error(h, 404, "notFound", f"File not found: {file_id}")
                self._update(captured, meta, meta_in, content, email)
            if captured.status != 200 or file_id is None:
                del self.sessions[session_id]
                return self._send(h, captured.status, captured.body)
            session["answer"], session["data"] = file_id, bytearray()
            return self._send(h, 200, self._public(self.files[file_id], email))

    def _send_incomplete(self, h: Any, held: int) -> None:
        """308 Resume Incomplete, with the bytes held (none: no Range header)."""
        return self._send(h, 308, None, headers={"Range": f"bytes=0-{held - 1}"} if held else {})

    def _send_media(self, h: Any, content: bytes, ranged: Optional[str]) -> None:
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", ranged or "")
        if m is None:
            return self._send(h, 200, raw=content)
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(content) - 1, len(content) - 1)
        if start >= len(content):
            return self._send(h, 416, None, headers={"Content-Range": f"bytes */{len(content)}"})
        return self._send(h, 206, raw=content[start:end + 1],
                          headers={"Content-Range": f"bytes {start}-{end}/{len(content)}"})

    @staticmethod
    def _parse_upload(headers: Any, query: dict, body: bytes) -> tuple[dict, Optional[bytes]]:
        kind = query.get("uploadType", "media")
        if kind == "media":
            return {}, body
        if kind != "multipart":
            raise ValueError(f"uploadType {kind!r} is not emulated")
        parts = _multipart_parts(headers["Content-Type"], body)
        meta = json.loads(parts[0] or b"{}")
        content = parts[1] if len(parts) > 1 else b""
        return meta, content


def _multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    """The decoded parts of a ``multipart/related`` body (RFC 2046: a part ends at the line
    break before the next delimiter; CRLF or the bare LF googleapiclient's generator writes),
    split on the bytes, not through the email package, which took seconds of the emulator's
    CPU for a 4 MB part (its cost, not Drive's, showed up in the client's upload rate)."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        raise ValueError(f"no boundary in {content_type!r}")
    delimiter = b"--" + found.group(1).encode()
    parts = []
    for piece in body.split(delimiter)[1:]:
        if piece.startswith(b"--"):
            break  # the close delimiter
        piece = piece[2:] if piece.startswith(b"\r\n") else piece[1:] if piece.startswith(b"\n") else piece
        crlf, lf = piece.find(b"\r\n\r\n"), piece.find(b"\n\n")
        if crlf != -1 and (lf == -1 or crlf < lf):
            head, content = piece[:crlf], piece[crlf + 4:]
        elif lf != -1:
            head, content = piece[:lf], piece[lf + 2:]
        else:
            head, content = piece, b""
        content = content[:-2] if content.endswith(b"\r\n") else content[:-1] if content.endswith(b"\n") else content
        if re.search(rb"(?im)^content-transfer-encoding:\s*base64", head):
            content = base64.b64decode(content)
        parts.append(content)
    return parts


def set_anomalies_remotely(endpoint: str, anomalies: list[str], rate: Optional[float] = None,
                           ca_file: Optional[str] = None, **link: Optional[float]) -> dict[str, Any]:
    """Switch anomalies on a running emulator from another process (its endpoint and CA
    certificate as the environment gives them: SESSIONKIT_GDRIVE_ENDPOINT, HTTPLIB2_CA_CERTS).
    ``bandwidth=`` (bytes per second, or None) sets the link's limit too; left out, it stays."""
    import os
    import urllib.request

    unknown = set(link) - {"bandwidth"}
    if unknown:
        raise TypeError(f"unknown emulator setting(s): {', '.join(sorted(unknown))}")
    body: dict[str, Any] = {"anomalies": list(anomalies), **link}
    if rate is not None:
        body["rate"] = rate
    context = ssl.create_default_context(cafile=ca_file or os.environ.get("HTTPLIB2_CA_CERTS"))
    request = urllib.request.Request(endpoint.rstrip("/") + CONTROL_PATH, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        return json.loads(answer.read())


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
