"""Stand-in for ``google.colab.runtime`` (see the package docstring)."""

from __future__ import annotations

import os

from google.colab import errors as _errors


def unassign() -> None:
    """Colab ends the VM; the stand-in leaves a file saying it was asked to. Without the
    file's name it fails as the real one does where no runtime service is found."""
    path = os.environ.get("SESSIONKIT_COLAB_STANDIN_UNASSIGNED")
    if not path:
        raise _errors.RuntimeManagementError("Unable to find the runtime management service.")
    with open(path, "w", encoding="utf-8") as f:
        f.write("unassigned\n")
