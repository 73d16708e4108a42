"""Stand-in for ``google.colab.runtime`` (see the package docstring)."""

from __future__ import annotations

import os


def unassign() -> None:
    """Colab ends the VM; the stand-in leaves a file saying it was asked to."""
    with open(os.environ["SESSIONKIT_COLAB_STANDIN_UNASSIGNED"], "w", encoding="utf-8") as f:
        f.write("unassigned\n")
