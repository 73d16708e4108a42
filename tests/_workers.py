"""Processes the tests start (``python tests/_workers.py COMMAND ARGS``).

Values written here carry their own SHA-256, so a reader can tell a whole value
from a torn one without trusting the store's own checksum.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time

import sessionkit
from sessionkit.demo import increment


def make_value(n: int, rng: random.Random) -> bytes:
    body = json.dumps({"n": n, "pad": "x" * rng.randrange(1, 400_000)}).encode()
    return hashlib.sha256(body).hexdigest().encode() + b"\n" + body


def check_value(data: bytes) -> int:
    """The value's counter if it is whole; raise AssertionError if it is torn."""
    digest, _, body = data.partition(b"\n")
    assert hashlib.sha256(body).hexdigest().encode() == digest, "torn or damaged value"
    return json.loads(body)["n"]


def count(url: str, times: str) -> None:
    store = sessionkit.open_store(url)
    conflicts = sum(increment(store, "counter") for _ in range(int(times)))
    print(json.dumps({"conflicts": conflicts}), flush=True)


def rewrite(url: str, until: str) -> None:
    """Write values n+1, n+2, ... up to ``until`` on key 'value', reporting each put."""
    store = sessionkit.open_store(url)
    rng = random.Random()
    record = store.get("value")
    n = check_value(record.data) if record else 0
    while n < int(until):
        n += 1
        store.put("value", make_value(n, rng))
        print(n, flush=True)


def read_loop(url: str, seconds: str) -> None:
    """Read 'value' over and over; print how many reads were whole and the counters seen."""
    store = sessionkit.open_store(url)
    end = time.monotonic() + float(seconds)
    reads, last, backwards = 0, 0, 0
    while time.monotonic() < end:
        record = store.get("value")
        if record is None:
            continue
        n = check_value(record.data)  # any torn read kills this process with a traceback
        backwards += n < last
        last = n
        reads += 1
    print(json.dumps({"reads": reads, "last": last, "backwards": backwards}), flush=True)


if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
