"""moto_server with one request handled at a time: the stand-in for Amazon S3 in the tests.

Real S3 is not reachable from CI (no account, no network). moto_server speaks its REST
protocol, but its conditional PUT is not atomic: ``moto/s3/responses.py`` ``put_object``
(moto 5.x) compares ``If-Match`` / ``If-None-Match`` with the stored object and writes it
later, with no lock between, under a threaded werkzeug server. Two concurrent
compare-and-swaps on one key can then both pass the check, and one update is lost (seen
here: 399 of 400 increments from four processes). S3 documents the opposite: of
concurrent conditional writes to one key the first to finish wins and the others get
412 Precondition Failed or 409 ConditionalRequestConflict ("Add preconditions to S3
operations with conditional requests", Amazon S3 User Guide). Holding one lock around
each request makes moto's check-and-write atomic, as S3's is; the server still accepts
many connections (boto3 keeps them alive).

Run as ``python tests/support/moto_serial.py HOST PORT``.
"""

from __future__ import annotations

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.moto_server.threaded_moto_server import MotoRequestHandler
from werkzeug.serving import run_simple


class OneRequestAtATime:
    """WSGI middleware: the wrapped application runs, body included, under one lock."""

    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


def main(host: str, port: int) -> None:
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, OneRequestAtATime(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
