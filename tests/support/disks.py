"""Disks for the fault tests: a tmpfs mount point and filling one up (the ``tmpfs`` fixture
in conftest.py mounts one)."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path


class Mount(type(Path())):  # type: ignore[misc]
    """A mount point; ``remount(ro=True)`` makes it read-only."""

    def remount(self, ro: bool) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if ro else 'rw'}", str(self)], check=True)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; return it (remove it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler
