"""``job.state``: the small JSON values a job keeps with its progress, checked before a write."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["frozen_state"]


def frozen_state(job_id: str, state: Any) -> dict[str, Any]:
    """A copy of ``job.state`` that the writer can encode while the loop goes on; refused
    (nothing written) unless it is JSON that comes back exactly as it is."""
    problem = None
    if not isinstance(state, dict):
        problem = f"job.state must be a dict, not {type(state).__name__}"
    else:
        try:
            copy = json.loads(json.dumps(state))
        except (TypeError, ValueError):
            bad = [repr(k) for k, v in state.items() if not _round_trips(v)] or ["a key"]
            problem = f"job.state must hold JSON values (numbers, strings, lists, dicts with str keys); " \
                      f"{', '.join(bad)} is not"
        else:
            if copy != state:
                bad = [repr(k) for k, v in state.items() if not isinstance(k, str) or not _round_trips(v)]
                problem = (f"job.state would not come back as it is ({', '.join(bad) or 'a key'}): use "
                           f"str keys, and lists rather than tuples")
    if problem is not None:
        raise TypeError(f"job {job_id!r}: {problem}. Store other objects with job.save_blob(name, obj). "
                        f"Nothing was written.")
    return copy


def _round_trips(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError):
        return False
