"""Large saved objects of a job (models, arrays, files, checkpoint folders), by content hash.

Every blob is a file under ``jobs/<id>/blobs/<sha256>``, streamed to and from the store
a chunk at a time (``Store.put_file``/``get_file``), so a blob of any size costs a few
MB of memory. A blob becomes current only at the job's next checkpoint, which names
it in the manifest: until then, and if the upload fails half way, no reader sees it.
The last ``keep_blobs`` generations of each name are kept; a read checks the SHA-256
and size of what arrived and falls back to the previous generation if they differ.

Formats: ``numpy`` (``np.save`` with ``allow_pickle=False``), ``torch`` (tensors and
state_dicts: ``torch.save``, loaded with ``weights_only=True`` onto the CPU), ``file``
(a file's bytes), ``dir`` (a folder: one blob per file, the entry lists them) and
``pickle`` for anything else. Unpickling runs code chosen by whoever wrote the blob,
so a pickle blob trusts the store as much as your own notebook: never load one from a
store others can write. Leases, manifests, state and events are JSON and are never
executed; ``numpy`` and ``torch`` blobs are loaded without running stored code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

from ..clock import Clock
from ..errors import BlobError, SessionkitWarning
from ..store import Store
from ..store.base import CHUNK_BYTES

FORMATS = ("pickle", "numpy", "torch")
log = logging.getLogger("sessionkit.jobs")


def blob_key(job_id: str, digest: str) -> str:
    return f"jobs/{job_id}/blobs/{digest}"


def file_digest(path: "str | os.PathLike[str]") -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read a chunk at a time."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def put_path(store: Store, job_id: str, path: "str | os.PathLike[str]") -> tuple[str, int]:
    """Upload a file as a blob unless an equal one is stored already; (hash, size)."""
    hashed, size = file_digest(path)
    key = blob_key(job_id, hashed)
    if key in store.list(key):
        log.debug("blob %s of job %r is stored already", hashed, job_id)
    else:
        store.put_file(key, path)
    return hashed, size


def save(store: Store, job_id: str, obj: Any, fmt: Optional[str], clock: Clock) -> dict[str, Any]:
    """Store ``obj`` (dumped to a temporary file, never to memory) and return the
    manifest entry that will name it."""
    fmt = choose_format(obj, fmt)
    with tempfile.TemporaryDirectory(prefix="sessionkit-blob-") as tmp:
        path = os.path.join(tmp, "blob")
        dump(obj, fmt, path)
        return save_file(store, job_id, path, fmt, clock)


def save_file(store: Store, job_id: str, path: "str | os.PathLike[str]", fmt: str, clock: Clock) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"job {job_id!r}: cannot save {path} as a blob: it is not a file")
    hashed, size = put_path(store, job_id, path)
    return {"hash": hashed, "format": fmt, "size": size, "at": clock.now().isoformat()}


def save_dir(store: Store, job_id: str, folder: "str | os.PathLike[str]", clock: Clock) -> dict[str, Any]:
    """Store every file under ``folder`` (one blob each, equal files once); the entry lists
    them by relative path, and its hash is that of the listing."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"job {job_id!r}: cannot save {root} as a folder blob: it is not a folder")
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hashed, size = put_path(store, job_id, path)
        files[path.relative_to(root).as_posix()] = {"hash": hashed, "size": size}
    listing = json.dumps(files, sort_keys=True).encode()
    return {"hash": hashlib.sha256(listing).hexdigest(), "format": "dir", "files": files,
            "size": sum(f["size"] for f in files.values()), "at": clock.now().isoformat()}


def fetch(store: Store, job_id: str, hashed: str, size: Optional[int], path: "str | os.PathLike[str]") -> None:
    """Download blob ``hashed`` into ``path`` and check its hash and size (raises
    LookupError when it is missing, ValueError when it is not what was saved)."""
    key = blob_key(job_id, hashed)
    if store.get_file(key, path) is None:
        raise LookupError(f"{key} is missing")
    got, got_size = file_digest(path)
    if got != hashed or (size is not None and got_size != size):
        os.unlink(path)
        raise ValueError(f"{key}: its content does not match its hash (damaged)")


def fetch_dir(store: Store, job_id: str, entry: dict[str, Any], folder: "str | os.PathLike[str]") -> Path:
    """Download a folder blob into ``folder``, replacing what is there only once every file
    arrived and checked."""
    return into_folder(folder, entry.get("files") or {},
                       lambda meta, dest: fetch(store, job_id, meta["hash"], meta.get("size"), dest))


def into_folder(folder: "str | os.PathLike[str]", files: dict[str, Any],
                write: Callable[[Any, Path], None]) -> Path:
    """``write(meta, path)`` each of ``files`` (relative path -> what to write) into a
    partial folder beside ``folder``, then put it in place of ``folder``."""
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        for rel, meta in files.items():
            dest = (partial / rel).resolve()
            if partial.resolve() not in dest.parents:
                raise ValueError(f"the folder blob names a file outside itself ({rel!r})")
            dest.parent.mkdir(parents=True, exist_ok=True)
            write(meta, dest)
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return target


def newest(job_id: str, name: str, entries: "tuple[dict[str, Any], ...]", attempt: Callable[[dict[str, Any]], Any]) -> Any:
    """``attempt(entry)`` for the newest generation it succeeds on; each failure is a
    warning naming the generation, and when all fail a BlobError lists why."""
    problems = []
    for entry in entries:
        try:
            return attempt(entry)
        except Exception as exc:  # any failure to fetch or decode user data: try an older generation
            problems.append(f"{entry.get('hash', '?')[:12]}: {exc}")
            warnings.warn(f"job {job_id!r}: blob {name!r} (generation {entry.get('hash', '?')[:12]}) cannot be "
                          f"loaded ({exc}); trying the previous generation", SessionkitWarning, stacklevel=4)
    raise BlobError(f"job {job_id!r}: no generation of blob {name!r} can be loaded: " + "; ".join(problems))


def load_newest(store: Store, job_id: str, name: str, entries: "tuple[dict[str, Any], ...]") -> Any:
    """The object of the newest loadable generation among ``entries``."""
    def attempt(entry: dict[str, Any]) -> Any:
        fmt = entry.get("format", "pickle")
        with tempfile.TemporaryDirectory(prefix="sessionkit-blob-") as tmp:
            path = os.path.join(tmp, "blob")
            fetch(store, job_id, entry["hash"], entry.get("size"), path)
            return load(path, fmt)
    return newest(job_id, name, entries, attempt)


def _is_numpy(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray) and obj.dtype != object


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_torch(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if isinstance(obj, torch.Tensor):
        return True
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def choose_format(obj: Any, fmt: Optional[str]) -> str:
    if _is_torch_module(obj) and fmt != "pickle":
        raise TypeError(f"a whole {type(obj).__name__} module cannot be saved as a blob that loads safely "
                        f"(torch.load(weights_only=True) refuses modules): save its weights, "
                        f"job.save_blob(name, model.state_dict()), or model, optimizer and RNG together "
                        f"with job.save_state(model=model, optimizer=optimizer)")
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown blob format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    if _is_numpy(obj):
        return "numpy"
    if _is_torch(obj):
        return "torch"
    return "pickle"


def dump(obj: Any, fmt: str, path: str) -> None:
    if fmt == "numpy":
        import numpy as np

        with open(path, "wb") as fh:
            np.save(fh, obj, allow_pickle=False)
    elif fmt == "torch":
        import torch

        torch.save(obj, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)


def load(path: str, fmt: str) -> Any:
    if fmt == "numpy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if fmt == "torch":
        import torch

        return torch.load(path, weights_only=True, map_location="cpu")
    if fmt == "pickle":
        with open(path, "rb") as fh:
            return pickle.load(fh)
    raise ValueError(f"unknown blob format {fmt!r} (written by a newer sessionkit?)")
