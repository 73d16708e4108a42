"""A Google Drive API v2 emulator for sessionkit's tests.

No real Google Drive is reachable from CI (the machine has no network but package
registries), so this HTTPS server on 127.0.0.1 stands in for it. It implements the
part of Drive v2 the gdrive store uses, as the real service answers it:

- ``POST /token``: an OAuth 2 token endpoint for service-account JWT assertions;
- ``GET /drive/v2/files?q=...``: files.list with ``q`` on ``title``, ``parents``,
  ``trashed`` and ``mimeType`` (joined by ``and``), paging with ``pageToken``;
- ``GET /drive/v2/files/{id}`` (metadata) and ``?alt=media`` (content);
- ``POST /upload/drive/v2/files`` (``uploadType=media`` or ``multipart``) and
  ``POST /drive/v2/files`` (metadata only, e.g. folders): files.insert;
- ``PUT /upload/drive/v2/files/{id}``: files.update of content, honouring ``If-Match``
  (412 on a mismatch);
- ``DELETE /drive/v2/files/{id}``: files.delete, honouring ``If-Match``.

Etags change on every change; ``createdDate`` is assigned by the server. Requests
need a bearer token from ``/token``. Faults can be injected: 412, 403
``userRateLimitExceeded``, 429, 500, slow answers and dropped connections, one-shot
(``inject``) or at random (``random_faults``). Every request is counted.
"""

from __future__ import annotations

import email.parser
import email.policy
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
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

FOLDER = "application/vnd.google-apps.folder"


def make_tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (with openssl), and its key."""
    cert, key = folder / "emulator.crt", folder / "emulator.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def make_service_account(folder: Path, token_uri: str) -> Path:
    """A service-account JSON with a fresh RSA key, whose tokens come from the emulator."""
    key = folder / "sa.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", str(key)], check=True, capture_output=True)
    path = folder / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "emulator", "private_key_id": "k1",
        "private_key": key.read_text(), "client_email": "sessionkit-test@emulator.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": token_uri, "auth_uri": token_uri}))
    return path


class DriveEmulator:
    """Start with ``DriveEmulator(tmp_dir).start()``; ``endpoint`` is its base URL."""

    def __init__(self, folder: Path) -> None:
        self.cert, self.key = make_tls_files(folder)
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._etags = itertools.count(1)
        self.files: dict[str, dict[str, Any]] = {"root": self._meta("root", "My Drive", [], FOLDER)}
        self.tokens: set[str] = set()
        self.requests = 0
        self.by_kind: dict[str, int] = {}
        self._queued: list[str] = []
        self._random: Optional[tuple[float, list[str], random.Random]] = None
        self.faults_served = 0
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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

    def start(self) -> "DriveEmulator":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- faults -----------------------------------------------------------------

    def inject(self, *kinds: str) -> None:
        """Answer the next requests with these faults, in order: 412, 403rate, 429, 500,
        slow, drop."""
        with self.lock:
            self._queued.extend(kinds)

    def random_faults(self, rate: float, kinds: list[str], seed: int = 0) -> None:
        """Answer each Drive request with a random fault of ``kinds`` with probability ``rate``."""
        with self.lock:
            self._random = (rate, list(kinds), random.Random(seed)) if rate > 0 else None

    def _fault(self) -> Optional[str]:
        with self.lock:
            if self._queued:
                return self._queued.pop(0)
            if self._random is not None:
                rate, kinds, rng = self._random
                if rng.random() < rate:
                    return rng.choice(kinds)
        return None

    # -- helpers --------------------------------------------------------------------

    def _meta(self, file_id: str, title: str, parents: list[str], mime: str) -> dict[str, Any]:
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        return {"kind": "drive#file", "id": file_id, "title": title, "mimeType": mime, "parents":
                [{"kind": "drive#parentReference", "id": p} for p in parents], "createdDate": now,
                "modifiedDate": now, "etag": f'"e{next(self._etags)}"',
                "labels": {"trashed": False}, "md5Checksum": hashlib.md5(b"").hexdigest(), "fileSize": "0",
                "_content": b""}

    @staticmethod
    def _public(meta: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in meta.items() if not k.startswith("_")}

    def _touch(self, meta: dict[str, Any], content: Optional[bytes] = None) -> None:
        if content is not None:
            meta["_content"] = content
            meta["md5Checksum"] = hashlib.md5(content).hexdigest()
            meta["fileSize"] = str(len(content))
        meta["etag"] = f'"e{next(self._etags)}"'
        meta["modifiedDate"] = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")

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

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any = None, headers: Optional[dict] = None,
              raw: Optional[bytes] = None) -> None:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _error(self, h: BaseHTTPRequestHandler, status: int, reason: str, message: str) -> None:
        domain = "usageLimits" if "RateLimit" in reason else "global"
        self._send(h, status, {"error": {"errors": [{"domain": domain, "reason": reason, "message": message}],
                                         "code": status, "message": message}})

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        url = urllib.parse.urlparse(h.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        if path == "/token" and method == "POST":
            form = dict(urllib.parse.parse_qsl(body.decode()))
            if form.get("assertion", "").count(".") != 2:
                return self._error(h, 400, "invalid_grant", "a signed JWT assertion is required")
            token = f"emu-{next(self._ids)}"
            with self.lock:
                self.tokens.add(token)
            return self._send(h, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
        with self.lock:
            self.requests += 1
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return self._error(h, 401, "authError", "Invalid Credentials")
        fault = self._fault()
        if fault is not None:
            self.faults_served += 1
            if fault == "drop":
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
            if fault == "slow":
                time.sleep(1.5)
            elif fault == "403rate":
                return self._error(h, 403, "userRateLimitExceeded", "User Rate Limit Exceeded")
            elif fault == "429":
                return self._error(h, 429, "rateLimitExceeded", "Too Many Requests")
            elif fault == "500":
                return self._error(h, 500, "backendError", "Backend Error")
            elif fault == "412":
                return self._error(h, 412, "conditionNotMet", "Precondition Failed")
        try:
            self._route(h, method, path, query, body)
        except ValueError as exc:
            self._error(h, 400, "invalid", str(exc))

    def _count(self, kind: str) -> None:
        with self.lock:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def _route(self, h: BaseHTTPRequestHandler, method: str, path: str, query: dict, body: bytes) -> None:
        m = re.fullmatch(r"/(upload/)?drive/v2/files(?:/([^/]+))?", path)
        if not m:
            return self._error(h, 404, "notFound", f"no such endpoint {path}")
        upload, file_id = bool(m.group(1)), m.group(2)
        with self.lock:
            if method == "GET" and file_id is None:
                self._count("list")
                items = [self._public(f) for f in self.files.values() if f["id"] != "root"
                         and self._matches(f, query.get("q", ""))]
                items.sort(key=lambda f: f["createdDate"])
                start = int(query.get("pageToken") or 0)
                size = int(query.get("maxResults") or 100)
                page = items[start:start + size]
                result = {"kind": "drive#fileList", "items": page}
                if start + size < len(items):
                    result["nextPageToken"] = str(start + size)
                return self._send(h, 200, result)
            meta = self.files.get(file_id) if file_id else None
            if file_id and (meta is None or meta["labels"]["trashed"]):
                return self._error(h, 404, "notFound", f"File not found: {file_id}")
            if_match = h.headers.get("If-Match")
            if method in ("PUT", "DELETE") and if_match and if_match != meta["etag"]:
                return self._error(h, 412, "conditionNotMet", "Precondition Failed")
            if method == "GET":
                self._count("get-media" if query.get("alt") == "media" else "get")
                if query.get("alt") == "media":
                    return self._send(h, 200, raw=meta["_content"], headers={"ETag": meta["etag"]})
                return self._send(h, 200, self._public(meta))
            if method == "DELETE":
                self._count("delete")
                del self.files[file_id]
                return self._send(h, 204)
            meta_in, content = self._parse_upload(h, query, body) if upload else (json.loads(body or b"{}"), None)
            if method == "POST":
                self._count("insert")
                parents = [p["id"] for p in meta_in.get("parents", [])] or ["root"]
                new_id = f"f{next(self._ids)}"
                created = self._meta(new_id, meta_in.get("title", "Untitled"), parents,
                                     meta_in.get("mimeType", "application/octet-stream"))
                self._touch(created, content if content is not None else b"")
                self.files[new_id] = created
                return self._send(h, 200, self._public(created))
            self._count("update")
            if "title" in meta_in:
                meta["title"] = meta_in["title"]
            self._touch(meta, content)
            return self._send(h, 200, self._public(meta))

    @staticmethod
    def _parse_upload(h: BaseHTTPRequestHandler, query: dict, body: bytes) -> tuple[dict, Optional[bytes]]:
        kind = query.get("uploadType", "media")
        if kind == "media":
            return {}, body
        if kind != "multipart":
            raise ValueError(f"uploadType {kind!r} is not emulated")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        parts = list(message.iter_parts())
        meta = json.loads(parts[0].get_payload(decode=True) or b"{}")
        content = parts[1].get_payload(decode=True) if len(parts) > 1 else b""
        return meta, content


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)

