"""A loopback HTTP proxy that forwards every request to a real server (moto_server in the
tests) with the precondition headers ``If-None-Match`` and ``If-Match`` removed.

It stands for the S3-compatible services that accept those headers and ignore them
(Backblaze B2, older MinIO releases, some gateways): none of them can be reached from
the test machine, and what they do with a conditional PUT is exactly this, an ordinary
PUT. Everything else (bodies, signatures, status codes) passes through unchanged.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import urlsplit

STRIPPED = ("if-none-match", "if-match")
HOP_BY_HOP = ("connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade")


class PreconditionStrippingProxy:
    """``with PreconditionStrippingProxy("http://127.0.0.1:PORT") as proxy: proxy.url``;
    ``proxy.stripped`` counts the headers it removed."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.stripped = 0
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    def __enter__(self) -> "PreconditionStrippingProxy":
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self._read_body()
                headers = {}
                for name, value in self.headers.items():
                    low = name.lower()
                    if low in STRIPPED:
                        with proxy._lock:
                            proxy.stripped += 1
                    elif low not in HOP_BY_HOP and low != "content-length":
                        headers[name] = value
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                finally:
                    conn.close()
                self.send_response_only(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests read what the store says, not the proxy's log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "use the proxy in a with block"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
