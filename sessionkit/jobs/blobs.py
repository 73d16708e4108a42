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
import pickle
import sys
from typing import Any, Optional

FORMATS = ("pickle", "numpy", "torch")


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
