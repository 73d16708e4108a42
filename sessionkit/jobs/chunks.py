"""Blobs as content-addressed chunks: a generation costs only the bytes that changed.

A saved object, file or folder is stored as chunks under ``jobs/<id>/chunks/<sha256>``
and one small *index* chunk (JSON) that lists them; the manifest entry names the
index (``hash``) and every chunk (``chunks``), so the checkpointer knows which files
a generation names without reading anything. A chunk already in the store (the
folder's listing, taken once per save, or one this process sent) is not sent again:
a generation that shares tensors or file chunks with a kept one costs only what
changed, in bytes sent and in store size.

Layout (``layout: 1``):

- an object (``save_blob``, ``save_state``): every numpy array and torch tensor in it
  (found in dicts, lists and tuples) is stored as its raw bytes; the rest of the object
  (the *skeleton*, with each array replaced by ``{"__sessionkit_array__": i}``) is one
  chunk in the blob's format (``torch``: ``torch.save``, loaded ``weights_only``;
  ``pickle``; ``numpy``: a single array has no skeleton). An array of ``SMALL`` bytes or
  more starts a chunk of its own and is cut every ``CHUNK`` bytes, so an unchanged tensor
  is an unchanged chunk whatever changed around it; smaller arrays are packed together
  up to ``CHUNK`` (a model's biases and norms: one request, not hundreds);
- a file: its bytes cut every ``CHUNK`` bytes;
- a folder: each file as a file is, by relative path.

A read checks every chunk's SHA-256 and size. Entries written before chunks (no
``layout``) are whole blobs under ``jobs/<id>/blobs/<sha256>`` and still load (blobs.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..store import Store
from ..store.new_records import NewRecords
from .blobs import dump, into_folder, load
from .capture import MAPPINGS, MARK, Staged, describe, raw, same_mapping
from .sending import POOL, Sending

LAYOUT = 1
CHUNK = 16 * 1024 * 1024  # bytes of one data chunk: 16 requests carry 256 MB (Drive: ~2 files/s)
SMALL = 1024 * 1024  # arrays from this size get chunks of their own; smaller ones are packed
PARALLEL = 8  # chunks sent at once at most, and at most IN_FLIGHT_BYTES of them:
#: each send holds its bytes (and the client its request buffers) until it ends, so 16 MB
#: chunks go four at a time and the 4 MB chunks of a model's tensors eight. Each chunk
#: is a file on Drive, a round trip or two: with 150 ms of them, 256 MB of 4 MB tensors
#: went up at 23 MB/s four at a time and 27 MB/s eight at a time (50 MB/s link)
IN_FLIGHT_BYTES = 64 * 1024 * 1024
PIECE = 1024 * 1024  # a file's chunk is read this much at a time


def chunk_key(job_id: str, digest: str) -> str:
    return f"jobs/{job_id}/chunks/{digest}"


def chunk_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/chunks/"


def is_chunked(entry: dict[str, Any]) -> bool:
    return entry.get("layout") == LAYOUT


def named_files(entry: dict[str, Any]) -> set[str]:
    """The files under ``jobs/<id>/`` one manifest entry names (chunked or whole)."""
    if is_chunked(entry):
        return {f"chunks/{h}" for h in entry.get("chunks") or ()}
    if entry.get("format") == "dir":
        return {f"blobs/{f['hash']}" for f in (entry.get("files") or {}).values()}
    return {f"blobs/{entry['hash']}"}


# -- the background side: chunks out ---------------------------------------------


class Sender:
    """Sends chunks of one job, skipping those the store holds (``known``), ``PARALLEL`` at a
    time (a round trip per request would otherwise keep a remote link half idle), in order:
    ``add`` returns the chunk's place in ``results``, filled in as the sends end."""

    def __init__(self, records: NewRecords, job_id: str, known: set[str], touched: Callable[[str], None],
                 scratch: str) -> None:
        self.records, self.job_id, self.known = records, job_id, known
        self.sent_keys: list[str] = []  # what this sender put in ``records``, for ``forget``
        self.touched = touched  # told every chunk a save names (sent or found), before it is named
        self.scratch = scratch
        self.sent_bytes = 0
        self.results: list[Optional[list[Any]]] = []
        self._lock = threading.Lock()
        self._pending: "deque[tuple[Sending, int, Optional[Callable[[], None]], int]]" = deque()
        self._in_flight = 0  # bytes of the sends under way

    def add(self, data: "bytes | memoryview", then: Optional[Callable[[], None]] = None) -> int:
        """Send ``data`` as a chunk; ``then()`` runs once it is stored (frees its memory)."""
        return self._start(len(data), then, self._send, data)

    def _start(self, size: int, then: Optional[Callable[[], None]], fn: Callable[..., tuple[str, int]],
               *args: Any) -> int:
        """Wait for the oldest sends until this one fits (fewer than ``PARALLEL`` under way,
        ``IN_FLIGHT_BYTES`` with it; a lone send always fits), then start it: a send starts
        as it is added, so the wait comes first (after it was 5 at once, 16 MB each)."""
        while self._pending and (len(self._pending) >= PARALLEL or self._in_flight + size > IN_FLIGHT_BYTES):
            self._settle_oldest()
        place = len(self.results)
        self.results.append(None)
        self._in_flight += size
        self._pending.append((POOL.submit(fn, *args), place, then, size))
        return place

    def forget(self) -> None:
        """Take what this sender put out of ``known``: its batch was not published, so the
        next save sends it again."""
        with self._lock:
            self.known.difference_update(self.sent_keys)
            self.sent_keys.clear()

    def drain(self) -> list[list[Any]]:
        failure: Optional[BaseException] = None
        while self._pending:  # every send ends before this returns, the failed ones too
            try:
                self._settle_oldest()
            except BaseException as exc:  # the first is raised once all have ended
                failure = failure or exc
        if failure is not None:
            raise failure
        return [r for r in self.results if r is not None]

    def _settle_oldest(self) -> None:
        sending, place, then, size = self._pending.popleft()
        self._in_flight -= size
        self.results[place] = list(sending.result())
        if then is not None:
            then()

    def add_range(self, path: str, offset: int, length: int) -> int:
        """Send bytes ``offset``..``offset + length`` of the file at ``path`` as a chunk,
        read a piece at a time (a file's chunks never sit in memory whole)."""
        return self._start(length, None, self._send_range, path, offset, length)

    def _send(self, data: "bytes | memoryview") -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()

        def as_file(path: str) -> None:
            with open(path, "wb") as fh:
                fh.write(data)
        return self._store(digest, len(data), as_file, lambda: bytes(data))

    def _send_range(self, path: str, offset: int, length: int) -> tuple[str, int]:
        hashed = hashlib.sha256()

        def pieces() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                fh.seek(offset)
                left = length
                while left > 0:
                    piece = fh.read(min(PIECE, left))
                    if not piece:
                        raise ValueError(f"{path} became shorter while it was being saved")
                    left -= len(piece)
                    yield piece
        for piece in pieces():
            hashed.update(piece)

        def as_file(target: str) -> None:
            with open(target, "wb") as out:
                for piece in pieces():
                    out.write(piece)
        return self._store(hashed.hexdigest(), length, as_file, lambda: b"".join(pieces()))

    def _store(self, digest: str, size: int, as_file: Callable[[str], None],
               as_bytes: Callable[[], bytes]) -> tuple[str, int]:
        self.touched(digest)
        key = chunk_key(self.job_id, digest)
        with self._lock:
            if key in self.known:
                return digest, size
            self.known.add(key)  # an equal chunk in this save is sent once
        try:
            if size >= SMALL:
                # through put_file: the backends' resumable/multipart path, which goes on after
                # a dropped connection from what the service holds instead of from the start
                fd, path = tempfile.mkstemp(dir=self.scratch)
                os.close(fd)
                try:
                    as_file(path)
                    self.records.put_file(key, path)
                finally:
                    os.unlink(path)
            else:
                self.records.put(key, as_bytes())
        except BaseException:
            with self._lock:
                self.known.discard(key)
            raise
        with self._lock:
            self.sent_bytes += size
            self.sent_keys.append(key)
        return digest, size


def _file_chunks(sender: Sender, path: str) -> list[int]:
    size = os.path.getsize(path)
    return [sender.add_range(path, start, min(CHUNK, size - start)) for start in range(0, size, CHUNK)]


def _object_chunks(sender: Sender, staged: Staged) -> tuple[list[dict[str, Any]], list[int]]:
    places: list[int] = []
    pack: list[bytes] = []
    packed = 0

    def flush_pack() -> None:
        nonlocal pack, packed
        if pack:
            places.append(sender.add(b"".join(pack)))
        pack, packed = [], 0

    def freer(i: int) -> Callable[[], None]:
        def free() -> None:
            staged.release(i)  # sent: its memory goes back now, not at the end
        return free

    described = []
    for i, array in enumerate(staged.arrays):
        described.append(describe(array))
        data = raw(array)
        if len(data) >= SMALL:
            flush_pack()
            starts = range(0, len(data), CHUNK)
            for start in starts:
                last = start == starts[-1]
                places.append(sender.add(data[start:start + CHUNK], freer(i) if last else None))
        else:
            pack.append(bytes(data))
            packed += len(data)
            del data
            staged.release(i)
            if packed >= CHUNK:
                flush_pack()
        del array
    flush_pack()
    return described, places


def send(store: Store, job_id: str, staged: Staged, known: set[str], touched: Callable[[str], None],
         at: str) -> tuple[dict[str, Any], int]:
    """Store ``staged`` as chunks and its index, all in one batch of new records published
    together (``store.new_records()``: on Drive two catalog changes, not one per chunk); the
    manifest entry naming them, and the bytes actually sent (chunks the store held are not)."""
    # mkdtemp, not TemporaryDirectory: its finalizer removes the folder at interpreter exit,
    # while the exit hook lets the last saves go up
    scratch = tempfile.mkdtemp(prefix="sessionkit-chunk-")
    records = store.new_records()
    sender = Sender(records, job_id, known, touched, scratch)
    try:
        try:
            index = _send_chunks(sender, staged, scratch)
            encoded = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
            place = sender.add(encoded)  # the index last: it names the rest
            sender.drain()
            digest = sender.results[place][0]  # type: ignore[index]
        except BaseException:
            sender.forget()
            records.abandon()  # nothing was published: what went up is removed
            raise
        try:
            records.publish()
        except BaseException:
            sender.forget()  # it may have landed: the store's sweep or the job's settles it
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    names = {digest} | set(_index_chunks(index))
    entry = {"hash": digest, "format": staged.fmt, "size": staged.nbytes, "layout": LAYOUT,
             "chunks": sorted(names), "at": at}
    return entry, sender.sent_bytes


def _send_chunks(sender: Sender, staged: Staged, scratch: str) -> dict[str, Any]:
    """Send the chunks of ``staged``; the index naming them (every send ended, even on a failure)."""
    index: dict[str, Any] = {"layout": LAYOUT, "kind": staged.kind, "format": staged.fmt}
    try:
        if staged.kind == "object":
            described, places = _object_chunks(sender, staged)
            skeleton = None
            if not (isinstance(staged.skeleton, dict) and set(staged.skeleton) == {MARK}):
                path = os.path.join(scratch, "skeleton")
                dump(staged.skeleton, staged.fmt, path)
                with open(path, "rb") as fh:
                    skeleton = sender.add(fh.read())
            sender.drain()
            index.update(arrays=described, chunks=[sender.results[p] for p in places],
                         skeleton=None if skeleton is None else sender.results[skeleton])
        elif staged.kind == "file":
            places = _file_chunks(sender, str(staged.path))
            sender.drain()
            index.update(size=staged.nbytes, chunks=[sender.results[p] for p in places])
        else:
            root = Path(str(staged.path))
            files = {p.relative_to(root).as_posix(): (p.stat().st_size, _file_chunks(sender, str(p)))
                     for p in sorted(q for q in root.rglob("*") if q.is_file())}
            sender.drain()
            index["files"] = {rel: {"size": size, "chunks": [sender.results[p] for p in places]}
                              for rel, (size, places) in files.items()}
    finally:
        sender.drain()
    return index


def _index_chunks(index: dict[str, Any]) -> Iterator[str]:
    for h, _ in index.get("chunks") or ():
        yield h
    if index.get("skeleton"):
        yield index["skeleton"][0]
    for meta in (index.get("files") or {}).values():
        for h, _ in meta["chunks"]:
            yield h


# -- reading back ----------------------------------------------------------------


def _fetch(store: Store, job_id: str, digest: str, size: Optional[int]) -> bytes:
    key = chunk_key(job_id, digest)
    record = store.get(key)
    if record is None:
        raise LookupError(f"{key} is missing")
    data = record.data
    if hashlib.sha256(data).hexdigest() != digest or (size is not None and len(data) != size):
        raise ValueError(f"{key}: its content does not match its hash (damaged)")
    return data


def read_index(store: Store, job_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    index = json.loads(_fetch(store, job_id, entry["hash"], None))
    if not isinstance(index, dict) or index.get("layout") != LAYOUT:
        raise ValueError(f"{chunk_key(job_id, entry['hash'])} is not a chunk index this sessionkit reads")
    return index


def load_object(store: Store, job_id: str, entry: dict[str, Any]) -> Any:
    index = read_index(store, job_id, entry)
    stream = io.BytesIO()
    for h, size in index["chunks"]:
        stream.write(_fetch(store, job_id, h, size))
    buf = stream.getbuffer()
    arrays, offset = [], 0
    for meta in index["arrays"]:
        arrays.append(_rebuild(meta, buf[offset:offset + meta["nbytes"]]))
        offset += meta["nbytes"]
    if index.get("skeleton") is None:
        return arrays[0]
    h, size = index["skeleton"]
    with tempfile.TemporaryDirectory(prefix="sessionkit-blob-") as tmp:
        path = os.path.join(tmp, "skeleton")
        with open(path, "wb") as fh:
            fh.write(_fetch(store, job_id, h, size))
        skeleton = load(path, index["format"])
    return _fill(skeleton, arrays)


def _rebuild(meta: dict[str, Any], raw: memoryview) -> Any:
    if meta["kind"] == "numpy":
        import numpy as np

        return np.frombuffer(bytearray(raw), dtype=np.dtype(meta["dtype"])).reshape(meta["shape"])
    import torch

    dtype = getattr(torch, meta["dtype"])
    if not len(raw):
        return torch.empty(meta["shape"], dtype=dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(meta["shape"])


def _fill(value: Any, arrays: list[Any]) -> Any:
    """The skeleton with its arrays put back: into the containers a capture looked into,
    exactly (any other object, a namedtuple or a defaultdict, comes back as it was saved)."""
    if type(value) in MAPPINGS:
        if type(value) is dict and set(value) == {MARK} and isinstance(value[MARK], int):
            return arrays[value[MARK]]
        return same_mapping(value, ((k, _fill(v, arrays)) for k, v in value.items()))
    if type(value) in (list, tuple):
        return type(value)(_fill(v, arrays) for v in value)
    return value


def _write_file(store: Store, job_id: str, meta: dict[str, Any], path: "str | os.PathLike[str]") -> None:
    with open(path, "wb") as fh:
        for h, size in meta["chunks"]:
            fh.write(_fetch(store, job_id, h, size))
        fh.flush()
        os.fsync(fh.fileno())


def fetch_file(store: Store, job_id: str, entry: dict[str, Any], path: "str | os.PathLike[str]") -> None:
    """Write a chunked file blob to ``path``, replaced only once every chunk arrived and checked."""
    index = read_index(store, job_id, entry)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        _write_file(store, job_id, index, partial)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()


def fetch_dir(store: Store, job_id: str, entry: dict[str, Any], folder: "str | os.PathLike[str]") -> Path:
    """Download a chunked folder blob into ``folder``, replacing what is there only once every
    file arrived and checked."""
    index = read_index(store, job_id, entry)
    return into_folder(folder, index.get("files") or {}, lambda meta, dest: _write_file(store, job_id, meta, dest))


__all__ = ["CHUNK", "LAYOUT", "SMALL", "chunk_key", "chunk_prefix", "fetch_dir", "fetch_file", "is_chunked", "load_object", "named_files", "send"]
