"""``sessionkit doctor`` and ``sessionkit.doctor.doctor`` on real stores: a local folder,
memory://, the Drive emulator, moto_server's S3, and moto_server behind a proxy that
strips the precondition headers (a service that ignores them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import sessionkit
from sessionkit.clock import FakeClock
from sessionkit.doctor import HOLDS, NOT_HOLDS, Check, doctor
from sessionkit.store.memory import MemoryStore

from conftest import TEST_BUCKET, drive_emulator, gcs_server, s3_server
from support.precondition_proxy import PreconditionStrippingProxy

GENERIC = ["create-only", "stale CAS", "stale delete", "read-after-write", "listing lag", "round trip", "upload"]
NEEDED = {"create-only", "stale CAS", "stale delete", "read-after-write", "upload"}


def run(*args: str, env: "dict[str, str] | None" = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sessionkit", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def assert_all_hold(report) -> None:
    """Every generic check holds; a backend's own ones (Drive's unproven behaviours) follow
    them and are not needed."""
    generic = report.checks[:len(GENERIC)]
    assert [c.name for c in generic] == GENERIC
    assert {c.name for c in report.checks if c.needed} == NEEDED
    assert all(c.verdict == HOLDS for c in generic), report.table()
    assert report.ok and report.leftover == ()
    figures = {(c.name, f.name): f for c in report.checks for f in c.figures}
    assert figures[("round trip", "put")].unit == "ms" and figures[("round trip", "put")].value > 0
    assert figures[("upload", "up")].unit == "MB/s" and figures[("upload", "up")].value > 0
    assert figures[("listing lag", "lag")].unit == "s"


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_on_a_local_store_every_check_holds_and_nothing_stays(tmp_path):
    store = sessionkit.open_store(tmp_path / "store")
    store.put("mine", b"kept")
    res = run("doctor", str(tmp_path / "store"), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert set(data) == {"store", "ok", "prefix", "leftover", "seconds", "checks"}
    assert data["ok"] is True and data["prefix"].startswith("doctor/")
    assert [(c["name"], c["verdict"], c["needed"]) for c in data["checks"]] == [
        (name, "holds", name in NEEDED) for name in GENERIC]
    assert all(set(c) == {"name", "verdict", "needed", "detail", "figures"} for c in data["checks"])
    assert store.list() == ["mine"] and store.get("mine").data == b"kept"
    assert files_under(tmp_path / "store") == ["mine.skv"]  # no file of the doctor's stays


def test_the_table_on_a_terminal(tmp_path):
    res = run("doctor", str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"sessionkit doctor: {sessionkit.open_store(tmp_path).url}"
    assert lines[1].split() == ["check", "verdict", "needed", "measured", "detail"]
    for name, line in zip(GENERIC, lines[2:9]):
        assert line.strip().startswith(name) and " holds " in line
    assert "fit: every check the store needs holds" in lines[9]


def test_on_memory_every_check_holds():
    store = sessionkit.open_store(f"memory://doctor-{uuid.uuid4().hex[:8]}")
    assert_all_hold(doctor(store))
    assert store.list() == []


def test_on_the_drive_emulator_every_check_holds():
    pytest.importorskip("googleapiclient")
    drive_emulator()
    store = sessionkit.open_store(f"gdrive://checkup-tests/{uuid.uuid4().hex[:8]}")
    report = doctor(store)
    assert_all_hold(report)
    assert store.list() == []


@pytest.mark.parametrize("scheme,server", [("s3", s3_server), ("gs", gcs_server)])
def test_on_moto_s3_and_fake_gcs_server_every_check_holds(scheme, server):
    server()
    store = sessionkit.open_store(f"{scheme}://{TEST_BUCKET}/{uuid.uuid4().hex[:10]}")
    assert_all_hold(doctor(store))
    assert store.list() == []


def test_on_a_service_that_ignores_preconditions_it_says_so_and_exits_1():
    """moto_server behind a proxy that drops If-None-Match and If-Match: what Backblaze B2,
    older MinIO and some gateways do. open_store would refuse it; the doctor says why."""
    upstream = s3_server()
    url = f"s3://{TEST_BUCKET}/{uuid.uuid4().hex[:10]}"
    with PreconditionStrippingProxy(upstream) as proxy:
        env = dict(os.environ, AWS_ENDPOINT_URL=proxy.url)
        res = run("doctor", url, "--json", env=env)
        table = run("doctor", url, env=env)
        assert proxy.stripped > 0
    assert res.returncode == 1, res.stderr
    verdicts = {c["name"]: c["verdict"] for c in json.loads(res.stdout)["checks"]}
    assert verdicts == {"create-only": NOT_HOLDS, "stale CAS": NOT_HOLDS, "stale delete": NOT_HOLDS,
                        "read-after-write": HOLDS, "listing lag": HOLDS, "round trip": HOLDS, "upload": HOLDS}
    assert json.loads(res.stdout)["ok"] is False
    assert table.returncode == 1
    assert "NOT FIT: 3 check(s) the store needs do not hold: create-only, stale CAS, stale delete" in table.stdout
    assert sessionkit.open_store(url).list() == []  # through moto directly: the doctor removed its keys


class EventuallyListed(MemoryStore):
    """A store whose listing shows a new key only ``lag`` seconds (of ``clock``) after its
    first write, as Drive's search does and S3's listing did before December 2020. A real
    service with a lag of tens of seconds cannot be had on the test machine."""

    def __init__(self, clock: FakeClock, lag: float) -> None:
        super().__init__()
        self.clock, self.lag = clock, lag
        self.born: dict[str, float] = {}

    def put(self, key, data, *, expect=None):
        version = super().put(key, data, expect=expect)
        self.born.setdefault(key, self.clock.monotonic())
        return version

    def list(self, prefix=""):
        now = self.clock.monotonic()
        return [k for k in super().list(prefix) if now - self.born[k] >= self.lag]


def lag_check(report) -> Check:
    return next(c for c in report.checks if c.name == "listing lag")


def test_listing_lag_is_measured_within_the_bounded_wait():
    clock = FakeClock()
    report = doctor(EventuallyListed(clock, lag=2.0), clock=clock, list_wait=10)
    check = lag_check(report)
    assert check.verdict == HOLDS and not check.needed
    assert 2.0 <= check.figures[0].value <= 3.0  # polled at a growing pause of at most 1 s


def test_a_listing_that_lags_past_the_wait_does_not_hold_but_the_store_stays_fit():
    clock = FakeClock()
    store = EventuallyListed(clock, lag=120.0)
    report = doctor(store, clock=clock, list_wait=5)
    check = lag_check(report)
    assert check.verdict == NOT_HOLDS and "within 5 s" in check.detail
    assert check.figures[0].value >= 5
    assert report.ok  # sessionkit does not rely on prompt listings
    assert super(EventuallyListed, store).list() == []


def test_an_interrupted_run_removes_what_it_wrote():
    class InterruptedClock(FakeClock):
        """Ctrl-C while the doctor waits for a key to be listed."""

        def sleep(self, seconds):
            raise KeyboardInterrupt

    clock = InterruptedClock()
    store = EventuallyListed(clock, lag=60.0)
    with pytest.raises(KeyboardInterrupt):
        doctor(store, clock=clock)
    assert store.born and all(k.startswith("doctor/") for k in store.born)
    assert super(EventuallyListed, store).list() == []


class WithOwnChecks(MemoryStore):
    """A backend with checks of its own (as Drive has for its unproven behaviours)."""

    def __init__(self, verdict: str) -> None:
        super().__init__()
        self.verdict = verdict

    def doctor_checks(self):
        key = "doctor/own-check"
        self.put(key, b"x")
        self.delete(key)
        return [Check("own behaviour", self.verdict, "what the backend saw", True)]


@pytest.mark.parametrize("verdict,status", [(HOLDS, 0), (NOT_HOLDS, 1), ("could not tell", 0)])
def test_a_backends_own_checks_join_the_report_and_the_exit_status(verdict, status, capsys):
    from sessionkit.cli import main

    store = WithOwnChecks(verdict)
    sessionkit.register_scheme("doctor-own", lambda url: store, clobber=True)
    assert main(["doctor", "doctor-own://x"]) == status
    out = capsys.readouterr().out
    assert "own behaviour" in out.splitlines()[9] and verdict in out.splitlines()[9]
    assert store.list() == []


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="list_wait"):
        doctor(MemoryStore(), list_wait=0)
    with pytest.raises(ValueError, match="upload_mb.*MB"):
        doctor(MemoryStore(), upload_mb=-1)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Check("x", "fine", "", True)


@pytest.mark.parametrize("anomaly", [None, "delete-if-match-ignored"])
def test_the_doctor_asks_drive_its_unproven_behaviours(anomaly):
    """The Drive store's own checks join the report: each unproven behaviour answered (the
    verdict follows the emulator's switch), none needed (the store is correct either way)."""
    from sessionkit.doctor import doctor
    from sessionkit.store.gdrive_probe import BEHAVIOURS

    emulator = drive_emulator()
    if anomaly:
        emulator.set_anomalies(anomaly)
    store = sessionkit.open_store(f"gdrive://checkup-tests/{uuid.uuid4().hex[:8]}")
    report = doctor(store, list_wait=5, samples=1, upload_mb=1)
    own = {c.name: c for c in report.checks if c.name in BEHAVIOURS}
    assert set(own) == set(BEHAVIOURS) and not any(c.needed for c in own.values())
    verdicts = {c.verdict for name, c in own.items() if "DELETE" in name or "delete" in name}
    assert verdicts == ({"does not hold"} if anomaly else {"holds"}), own
    assert report.ok, "a store correct either way stays fit"
