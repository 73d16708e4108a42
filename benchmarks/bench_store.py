"""Local folder store: put and get latency against the bare file-system calls.

The baseline is what any durable atomic write costs: write a temp file, fsync,
rename, fsync the folder. The store adds a lock, a header read and a checksum.
"""

from __future__ import annotations

import os
import tempfile

from sessionkit.store.local import LocalStore

from .report import Bar, Section, median_time


def _raw_put(folder: str, data: bytes) -> None:
    tmp = os.path.join(folder, "raw.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(folder, "raw"))
    fd = os.open(folder, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def _raw_get(folder: str) -> bytes:
    with open(os.path.join(folder, "raw"), "rb") as fh:
        return fh.read()


def run() -> Section:
    section = Section(
        "Local store: put and get",
        "Median of repeated calls. Baseline: a bare durable write (temp file, fsync, "
        "rename, fsync of the folder) and a bare read of the same bytes, in the same run.",
    )
    table = section.table("size", "raw put", "store put", "ratio", "raw get", "store get", "ratio")
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(os.path.join(tmp, "store"))
        for label, size, repeat in [("1 KB", 1024, 300), ("1 MB", 1 << 20, 60), ("10 MB", 10 << 20, 10)]:
            data = os.urandom(size)
            raw_put = median_time(lambda: _raw_put(tmp, data), repeat)
            put = median_time(lambda: store.put("bench/value", data), repeat)
            raw_get = median_time(lambda: _raw_get(tmp), repeat)
            get = median_time(lambda: store.get("bench/value"), repeat)
            table.append([
                label, f"{raw_put * 1e3:.2f} ms", f"{put * 1e3:.2f} ms", f"{put / raw_put:.2f}",
                f"{raw_get * 1e3:.3f} ms", f"{get * 1e3:.3f} ms", f"{get / raw_get:.2f}",
            ])
            if size == 1024:
                section.bars.append(Bar("1 KB put vs bare durable write", put / raw_put, "x", 2.0))
    return section
