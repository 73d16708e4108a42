"""The full state of a hand-written training loop, as one ``torch`` blob.

``capture`` takes the ``state_dict()`` of each object (model, optimizer, scheduler,
grad scaler, ...), the state of every random number generator a loop draws from
(Python's ``random``, numpy's global one, torch's CPU one and each CUDA device's when
there is one) and the caller's ``extra`` plain values (step, epoch, data position).
All of it is tensors and plain Python values, so ``torch.load(weights_only=True)``
loads it back without running stored code. ``restore`` puts each part back.
"""

from __future__ import annotations

import random
import sys
from typing import Any, Optional

from ..errors import BlobError

FORMAT = "sessionkit.training-state/1"


def capture(objects: dict[str, Any], extra: Optional[dict[str, Any]]) -> dict[str, Any]:

    states = {}
    for name, obj in objects.items():
        if not callable(getattr(obj, "state_dict", None)) or not callable(getattr(obj, "load_state_dict", None)):
            raise TypeError(f"save_state({name}=...): a {type(obj).__name__} has no state_dict()/load_state_dict(); "
                            f"pass models, optimizers, schedulers and scalers by name, and plain values in extra=")
        states[name] = obj.state_dict()
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"save_state(extra=...) must be a dict of plain values, not {type(extra).__name__}")
    return {"format": FORMAT, "objects": states, "rng": rng_state(), "extra": dict(extra or {})}


def restore(saved: Any, objects: dict[str, Any], *, job: str) -> dict[str, Any]:
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise BlobError(f"job {job!r}: the saved state is not one job.save_state wrote")
    stored = saved["objects"]
    missing = sorted(set(objects) - set(stored))
    if missing:
        raise BlobError(f"job {job!r}: the saved state has no {', '.join(missing)} (it has "
                        f"{', '.join(sorted(stored)) or 'nothing'}); load what was saved, under the same names")
    for name, obj in objects.items():
        obj.load_state_dict(stored[name])
    set_rng_state(saved["rng"])
    return dict(saved["extra"])


def rng_state() -> dict[str, Any]:
    """Every global random number generator's state, as tensors and plain values."""
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                          "has_gauss": int(has_gauss), "cached": float(cached)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        s = state["numpy"]
        np.random.set_state((s["kind"], s["keys"].numpy().astype("uint32"), s["pos"], s["has_gauss"], s["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
