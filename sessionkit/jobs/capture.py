"""What a save does on the caller's thread: capture the state, so the caller may change it
as soon as the save returns (the upload goes on in the background, chunks.py).

- An object (``save_blob``, ``save_state``): every numpy array and torch tensor in it
  (found in dicts, lists and tuples) is copied to host memory; the rest (the *skeleton*,
  each array replaced by ``{"__sessionkit_array__": i}``) is deep-copied.
- A file or folder: copied into a private staging folder (a copy, not a hard link:
  torch.save and most writers rewrite a file in place).

The host memory of one blob name's snapshots is kept in its ``HostBuffers``:

- **Unchanged arrays are shared, not copied.** Each array is compared, byte for byte,
  with the array at the same place of the name's last capture; when they are the same,
  the new snapshot holds that buffer instead of a copy. A compare reads memory, a copy
  also writes it (and into fresh memory faults a page per 4 KB): a generation of which
  90% is unchanged costs 10% of a snapshot in memory, not 100%. Only bytes count: a
  float's -0.0 and 0.0 differ, and a NaN equals the NaN with the same bits.
- **A changed array is copied into the last capture's buffer** at its place when no
  snapshot still holds it (the usual case: every weight of a model moved, and the last
  save is whole), else into a spare.
- **Spares**: buffers of sent snapshots, kept (at most one snapshot's worth) for the next
  capture to copy into: memory already touched costs a memcpy, where fresh memory costs
  a page fault per 4 KB as well (measured 7x slower for 256 MB).

A buffer becomes a spare (written into by a later capture) only once no snapshot holds it
(each holds a count on it, given back when it is sent or dropped) and it is not one of
the last capture's arrays (the next capture may share it).
"""

from __future__ import annotations

import copy
import os
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MARK = "__sessionkit_array__"
#: the containers a capture looks into for arrays (exactly these types: a subclass may
#: not rebuild from its items); torch's ``state_dict()`` is an OrderedDict
MAPPINGS = (dict, OrderedDict)


@dataclass
class Staged:
    """One save, captured: host copies of the arrays and the skeleton (``kind="object"``),
    or a private copy of a file or folder in ``staging`` (``kind="file"``/``"dir"``).
    ``arrays[i]`` is set to None once sent, so memory is given back as the upload goes."""

    kind: str
    fmt: str
    skeleton: Any = None
    arrays: list[Any] = field(default_factory=list)
    staging: Optional[str] = None
    path: Optional[str] = None
    nbytes: int = 0
    #: of ``nbytes``, the bytes this capture copied (the rest it shares with the last capture)
    copied: int = 0
    buffers: Optional["HostBuffers"] = None

    def release(self, i: int) -> None:
        """Array ``i`` is sent: its buffer goes to the spares (or back to the system)."""
        array, self.arrays[i] = self.arrays[i], None
        if array is not None and self.buffers is not None:
            self.buffers.give(array)

    def discard(self) -> None:
        for i in range(len(self.arrays)):
            self.release(i)
        self.arrays = []
        self.skeleton = None
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


class HostBuffers:
    """The host buffers of one blob name: the last capture's arrays (shared by the next
    capture where unchanged) and spares (module docstring)."""

    def __init__(self) -> None:
        self.limit = 0  # bytes of spares kept at most: one snapshot's worth
        self._held = 0
        self._free: dict[tuple[str, str, tuple[int, ...]], list[Any]] = {}
        self._latest: list[Any] = []
        self._latest_ids: set[int] = set()
        self._holders: dict[int, int] = {}  # id(buffer) -> snapshots that hold it
        self._lock = threading.Lock()
        #: one capture of a name at a time (saves of one name from two threads)
        self.capturing = threading.Lock()

    def latest(self, place: int) -> Any:
        """The last capture's array at ``place``, or None."""
        with self._lock:
            return self._latest[place] if place < len(self._latest) else None

    def set_latest(self, arrays: list[Any]) -> None:
        with self._lock:
            self._latest = list(arrays)
            self._latest_ids = {id(a) for a in arrays}

    def reclaim(self, place: int, like: Any) -> Any:
        """The last capture's array at ``place`` to copy ``like`` into, or None: its bytes
        changed (the caller compared them), so it is no longer needed as a baseline, and it
        is reused in place when no snapshot still holds it and its shape and type fit."""
        with self._lock:
            if place >= len(self._latest):
                return None
            buf = self._latest[place]
            if buf is None or self._holders.get(id(buf), 0) or _shape_key(buf) != _shape_key(like):
                return None
            self._latest[place] = None
            self._latest_ids.discard(id(buf))
            return buf

    def hold(self, buf: Any) -> None:
        with self._lock:
            self._holders[id(buf)] = self._holders.get(id(buf), 0) + 1

    def take(self, like: Any) -> Any:
        with self._lock:
            found = self._free.get(_shape_key(like))
            if not found:
                return None
            buf = found.pop()
            self._held -= nbytes(buf)
            return buf

    def give(self, buf: Any) -> None:
        """A snapshot is done with ``buf``: a spare, unless another holds it or the next
        capture may share it."""
        with self._lock:
            left = self._holders.pop(id(buf), 1) - 1
            if left > 0:
                self._holders[id(buf)] = left
                return
            if id(buf) in self._latest_ids:
                return  # kept as it is for the next capture; dropped when it no longer is latest
            size = nbytes(buf)
            if self._held + size <= self.limit:
                self._free.setdefault(_shape_key(buf), []).append(buf)
                self._held += size


def _shape_key(array: Any) -> tuple[str, str, tuple[int, ...]]:
    return type(array).__module__.split(".")[0], str(array.dtype), tuple(array.shape)


def _host_view(value: Any) -> Any:
    """``value`` as an array in host memory that a copy can be compared with (numpy array,
    CPU tensor, detached), or None: not an array, or one whose bytes cannot be read in place
    (a GPU or sparse tensor, a non-contiguous view: those are copied)."""
    np = sys.modules.get("numpy")
    if np is not None and type(value) is np.ndarray:  # not a subclass: a masked array's bytes are not its data
        return value if value.flags.c_contiguous else None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        host = value.detach()
        if (host.device.type == "cpu" and host.layout == torch.strided and host.is_contiguous()
                and not host.is_quantized and not host.is_conj() and not host.is_neg()):
            return host
    return None


def same_bytes(a: Any, b: Any) -> bool:
    """Whether two host arrays hold the same bytes (not the same values: -0.0 is not 0.0)."""
    import numpy as np

    x, y = raw(a), raw(b)
    if len(x) != len(y):
        return False
    word = np.uint64 if len(x) % 8 == 0 else np.uint8
    return bool(np.array_equal(np.frombuffer(x, dtype=word), np.frombuffer(y, dtype=word)))


def _array_copy(value: Any, buffers: Optional[HostBuffers], previous: Any = None, place: int = 0) -> Any:
    """A host copy of a numpy array or torch tensor, or None if ``value`` is neither: into
    the last capture's buffer at ``place`` when it changed and is free (``previous``: the
    usual case, a model whose every weight moved), else a spare that fits, else new memory."""
    np = sys.modules.get("numpy")

    def reuse(like: Any) -> Any:
        if buffers is None:
            return None
        if previous is not None:
            buf = buffers.reclaim(place, like)
            if buf is not None:
                return buf
        return buffers.take(like)

    if np is not None and isinstance(value, np.ndarray) and value.dtype != object and not value.dtype.fields:
        buf = reuse(value)
        if buf is not None:
            np.copyto(buf, value)
            return buf
        return np.array(value, copy=True, order="C")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        host = value.detach()
        buf = reuse(host) if not host.is_sparse else None
        if buf is not None:
            buf.copy_(host)
            return buf
        if host.device.type != "cpu":
            return host.to("cpu", copy=True).contiguous()
        return host.clone(memory_format=torch.contiguous_format)
    return None


def capture_object(obj: Any, fmt: str, buffers: Optional[HostBuffers] = None) -> Staged:
    """Copy every array of ``obj`` to host memory (or share the last capture's, where its
    bytes are unchanged) and keep the rest as a skeleton (a deep copy, so the caller may
    change ``obj`` as soon as this returns). Arrays sent are handed back to ``buffers``."""
    if buffers is None:
        return _capture_object(obj, fmt, None)
    with buffers.capturing:
        staged = _capture_object(obj, fmt, buffers)
        for array in staged.arrays:
            buffers.hold(array)
        buffers.set_latest(staged.arrays)
        buffers.limit = staged.nbytes  # one snapshot's worth is kept between saves, no more
    return staged


def _capture_object(obj: Any, fmt: str, buffers: Optional[HostBuffers]) -> Staged:
    arrays: list[Any] = []
    copied = 0

    def walk(value: Any) -> Any:
        nonlocal copied
        host = _host_view(value)
        previous = buffers.latest(len(arrays)) if buffers is not None and host is not None else None
        if previous is not None and _shape_key(previous) == _shape_key(host) and same_bytes(previous, host):
            arrays.append(previous)
            return {MARK: len(arrays) - 1}
        made = _array_copy(value, buffers, previous if host is not None else None, len(arrays))
        if made is not None:
            arrays.append(made)
            copied += nbytes(made)
            return {MARK: len(arrays) - 1}
        if type(value) in MAPPINGS:
            return same_mapping(value, ((k, walk(v)) for k, v in value.items()))
        if type(value) in (list, tuple):
            return type(value)(walk(v) for v in value)
        return value

    skeleton = walk(obj)
    if not (isinstance(skeleton, dict) and set(skeleton) == {MARK}):
        skeleton = copy.deepcopy(skeleton)
    total = sum(nbytes(a) for a in arrays)
    return Staged("object", fmt, skeleton=skeleton, arrays=arrays, nbytes=total, copied=copied, buffers=buffers)


def same_mapping(like: Any, items: Any) -> Any:
    """A mapping of ``like``'s type holding ``items``; an OrderedDict keeps its attributes
    (torch's ``state_dict()`` carries the modules' versions in ``_metadata``)."""
    if type(like) is dict:
        return dict(items)
    made = type(like)(items)
    made.__dict__.update(copy.deepcopy(vars(like)))
    return made


def capture_path(path: "str | os.PathLike[str]", kind: str) -> Staged:
    """Copy a file or folder into a private staging folder: the caller (a framework
    writing its next checkpoint at the same path) may change it as soon as this returns.
    A copy, not a hard link: torch.save and most writers rewrite a file in place."""
    staging = tempfile.mkdtemp(prefix="sessionkit-save-")
    target = os.path.join(staging, "data")
    try:
        if kind == "file":
            shutil.copyfile(path, target)
            size = os.path.getsize(target)
        else:
            shutil.copytree(path, target)
            size = sum(p.stat().st_size for p in Path(target).rglob("*") if p.is_file())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Staged(kind, "file" if kind == "file" else "dir", staging=staging, path=target, nbytes=size, copied=size)


def nbytes(array: Any) -> int:
    return int(array.nbytes) if hasattr(array, "nbytes") else int(array.numel() * array.element_size())


def raw(array: Any) -> memoryview:
    """The bytes of a contiguous host array, without a copy."""
    if hasattr(array, "dtype") and type(array).__module__.startswith("numpy"):
        return memoryview(array.reshape(-1).view("uint8"))
    import torch

    return memoryview(array.reshape(-1).view(torch.uint8).numpy())


def describe(array: Any) -> dict[str, Any]:
    if type(array).__module__.startswith("numpy"):
        return {"kind": "numpy", "dtype": array.dtype.str, "shape": list(array.shape), "nbytes": nbytes(array)}
    return {"kind": "torch", "dtype": str(array.dtype).replace("torch.", ""), "shape": list(array.shape),
            "nbytes": nbytes(array)}


__all__ = ["MAPPINGS", "MARK", "HostBuffers", "Staged", "capture_object", "capture_path", "describe", "nbytes", "raw", "same_bytes", "same_mapping"]
