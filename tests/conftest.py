"""Shared fixtures. ``STORE_BACKENDS`` is where every backend plugs into the contract suite."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

import sessionkit
from sessionkit.store.memory import MemoryStore

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

_names = itertools.count()

_drive = None


DRIVE_USER = "alice@example.com"
DRIVE_LIST_LAG = 0.3  # seconds a new file stays out of search: real Drive's search lags


def drive_emulator():
    """The Drive v2 emulator for this test run (started once), with the environment a user
    would set: the emulator's endpoint, its CA certificate, saved user credentials. Search
    lags by DRIVE_LIST_LAG unless a test changes it (``emulator.reset()`` restores it)."""
    global _drive
    if _drive is None:
        import os
        import tempfile

        from drive_emulator import DriveEmulator

        folder = Path(tempfile.mkdtemp(prefix="drive-emulator-"))
        _drive = DriveEmulator(folder).start()
        os.environ["HTTPLIB2_CA_CERTS"] = str(_drive.cert)
        os.environ["SESSIONKIT_GDRIVE_ENDPOINT"] = _drive.endpoint
        os.environ["SESSIONKIT_GDRIVE_CREDENTIALS"] = str(_drive.user_credentials_file(DRIVE_USER))
        os.environ.pop("SESSIONKIT_GDRIVE_SERVICE_ACCOUNT", None)
    _drive.reset()
    _drive.list_lag = DRIVE_LIST_LAG
    return _drive


def gdrive_store(tmp: Path) -> sessionkit.Store:
    drive_emulator()
    return sessionkit.open_store(f"gdrive://sessionkit-tests/{next(_names)}-{tmp.name}")


REAL_DRIVE_HOW = ("set SESSIONKIT_REAL_DRIVE_CREDENTIALS to saved user credentials to run this "
                  "against real Google Drive (docs/gdrive.md, 'Checking it on your own Drive')")


def real_drive_store(tmp: Path) -> sessionkit.Store:
    """A new store in a real Drive account's My Drive, with the credentials the user named.
    It never goes through the emulator: Google's endpoint and the usual CA certificates."""
    import os

    credentials = os.environ.get("SESSIONKIT_REAL_DRIVE_CREDENTIALS")
    if not credentials:
        pytest.skip(REAL_DRIVE_HOW)
    import httplib2

    from sessionkit.store.gdrive import GDriveStore

    ca_certs = os.path.join(os.path.dirname(httplib2.__file__), "cacerts.txt")
    return GDriveStore(f"sessionkit-conformance/{next(_names)}-{tmp.name}", credentials_file=credentials,
                       endpoint="https://www.googleapis.com",
                       http=lambda: httplib2.Http(timeout=30, ca_certs=ca_certs))


# backend name -> factory(tmp_path) returning a fresh, empty store.
STORE_BACKENDS: dict[str, Callable[[Path], sessionkit.Store]] = {
    "local": lambda tmp: sessionkit.open_store(tmp / "store"),
    "memory": lambda tmp: sessionkit.open_store(f"memory://contract-{next(_names)}"),
    "memory-private": lambda tmp: MemoryStore(),
    "gdrive": gdrive_store,
}
if os.environ.get("SESSIONKIT_REAL_DRIVE_CREDENTIALS"):  # the contract on real Drive too
    STORE_BACKENDS["gdrive-real"] = real_drive_store


@pytest.fixture(params=sorted(STORE_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionkit.Store]:
    s = STORE_BACKENDS[request.param](tmp_path)
    yield s
    s.close()
