"""Large saved objects of a job (models, arrays), stored by content hash.

Formats: ``numpy`` (``np.save`` with ``allow_pickle=False``), ``torch``
(``torch.save``; loaded with ``weights_only=True``) and ``pickle`` for anything
else. Unpickling runs code chosen by whoever wrote the blob, so ``load_blob``
trusts the store as much as your own notebook: never load blobs from a store
others can write. Leases, manifests, state and events are JSON and are never
executed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import sys
import warnings
from typing import Any, Optional

from ..clock import Clock
from ..errors import BlobError, Conflict, SessionkitWarning
from ..store import ABSENT, Store

FORMATS = ("pickle", "numpy", "torch")
log = logging.getLogger("sessionkit.jobs")


def blob_key(job_id: str, digest: str) -> str:
    return f"jobs/{job_id}/blobs/{digest}"


def save(store: Store, job_id: str, obj: Any, fmt: Optional[str], clock: Clock) -> dict[str, Any]:
    """Store ``obj`` under its content hash (once: an equal blob is there already) and
    return the manifest entry that will name it."""
    fmt = choose_format(obj, fmt)
    data = dump(obj, fmt)
    hashed = digest(data)
    try:
        store.put(blob_key(job_id, hashed), data, expect=ABSENT)
    except Conflict:
        log.debug("blob %s of job %r is stored already", hashed, job_id)
    return {"hash": hashed, "format": fmt, "size": len(data), "at": clock.now().isoformat()}


def load_newest(store: Store, job_id: str, name: str, entries: "tuple[dict[str, Any], ...]") -> Any:
    """The newest loadable generation among ``entries``; an unreadable one is skipped with
    a warning naming its key."""
    problems = []
    for entry in entries:
        key = blob_key(job_id, entry["hash"])
        try:
            record = store.get(key)
            if record is None:
                raise LookupError("it is missing")
            if digest(record.data) != entry["hash"]:
                raise ValueError("its content does not match its hash")
            return load(record.data, entry.get("format", "pickle"))
        except Exception as exc:  # any failure to decode user data: try an older generation
            problems.append(f"{key}: {exc}")
            warnings.warn(f"job {job_id!r}: blob {name!r} at {key!r} cannot be loaded ({exc}); "
                          f"trying the previous generation", SessionkitWarning, stacklevel=3)
    raise BlobError(f"job {job_id!r}: no generation of blob {name!r} can be loaded: " + "; ".join(problems))


def _is_numpy(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, np.ndarray) and obj.dtype != object


def _is_torch(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return True
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def choose_format(obj: Any, fmt: Optional[str]) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown blob format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    if _is_numpy(obj):
        return "numpy"
    if _is_torch(obj):
        return "torch"
    return "pickle"


def dump(obj: Any, fmt: str) -> bytes:
    if fmt == "numpy":
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return buf.getvalue()
    if fmt == "torch":
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def load(data: bytes, fmt: str) -> Any:
    if fmt == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "torch":
        import torch

        return torch.load(io.BytesIO(data), weights_only=True)
    if fmt == "pickle":
        return pickle.loads(data)
    raise ValueError(f"unknown blob format {fmt!r} (written by a newer sessionkit?)")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
