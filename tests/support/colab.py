"""What the Colab and Kaggle notebook tests share: a Colab account's kernel environment
(with the stand-in ``google.colab`` of tests/colab_standin signed in to the Drive
emulator), a notebook's outputs, and waiting for the store a primary notebook creates."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sessionkit.store.gdrive import GDriveStore

TESTS = Path(__file__).resolve().parent.parent
NOTEBOOKS = TESTS.parent / "notebooks"


class ColabAccount:
    """What a Colab runtime signed in as ``email`` has: its environment, for a kernel."""

    def __init__(self, emulator, tmp: Path, email: str) -> None:
        self.email = email
        self.credentials = emulator.user_credentials_file(email)
        self.unassigned = tmp / f"unassigned-{email.split('@')[0]}"
        ipython = tmp / f"ipython-{email.split('@')[0]}"
        startup = ipython / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-colab.py").write_text("import google.colab  # as in every Colab kernel\n")
        env = dict(os.environ)
        env.pop("SESSIONKIT_GDRIVE_CREDENTIALS", None)  # a Colab user signs in through Colab
        env.update(PYTHONPATH=os.pathsep.join([str(TESTS / "colab_standin"), env.get("PYTHONPATH", "")]),
                   IPYTHONDIR=str(ipython), SESSIONKIT_COLAB_STANDIN_USER=str(self.credentials),
                   SESSIONKIT_COLAB_STANDIN_UNASSIGNED=str(self.unassigned))
        self.env = env

    def store(self, folder_id: str) -> "GDriveStore":
        from sessionkit.store.gdrive import GDriveStore

        return GDriveStore(folder_id=folder_id, credentials_file=str(self.credentials), backoff=0.05)

    def run(self, name: str, out: Path, **parameters) -> subprocess.Popen:
        args = [sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(out), "--log-level",
                "ERROR", "-k", "python3"]
        for key, value in parameters.items():
            args += ["-p", key, str(value)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)


def outputs(path: Path) -> str:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.append(o.get("data", {}).get("text/plain", ""))
            parts.append(o.get("data", {}).get("text/html", ""))
    return html.unescape("\n".join(parts))


def wait_for_store(emulator, job: str, owner: str, proc: subprocess.Popen, within: float = 120) -> str:
    """The folder id of the store the primary created for ``job`` in ``owner``'s My Drive."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for f in emulator.by_title(job):
            if f["owners"] and f["owners"][0]["emailAddress"] == owner and \
                    any(p["key"] == "sessionkitCatalog" for p in f["properties"]):
                return f["id"]
        if proc.poll() is not None:
            pytest.fail(f"the primary notebook ended early: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail("the primary notebook created no Drive store")


def finish(proc: subprocess.Popen, what: str, timeout: float = 240) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"{what} did not finish: {err[-3000:]}")
    assert proc.returncode == 0, f"{what}: {err[-3000:]}"
