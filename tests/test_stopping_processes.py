"""A primary told to stop hands over at once: SIGTERM to a real process, and a Jupyter
kernel shut down mid-job. The lease is released, so the backup's takeover is planned (it
found the lease free), not an expiry after the ttl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sessionkit
from sessionkit import history
from sessionkit.sessions import list_sessions

from support.processes import expect_line, read_log, start, wait_for

pytestmark = pytest.mark.slow
TTL = 20.0  # long enough that an expiry could not pass for a release


def test_sigterm_to_a_primary_mid_job_hands_over_at_once(tmp_path):
    url, log = str(tmp_path / "s"), tmp_path / "items.log"
    backup = start("handover_backup", url, log, 300, 0.02, TTL, 1)
    expect_line(backup, "watching")
    primary = start("handover_primary", url, log, 300, 0.02, TTL, 1, 0)
    expect_line(primary, "holding")
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 40, "40 items done", proc=primary)
    primary.send_signal(signal.SIGTERM)
    primary.communicate(timeout=30)
    assert primary.returncode == -signal.SIGTERM, "the signal is passed on: the process ends"
    assert expect_line(backup, "holding")[1] == "2"
    out, err = backup.communicate(timeout=120)
    assert json.loads(out.splitlines()[-1]) == {"status": "completed", "done": 300}, err
    assert sorted(i for i, *_ in read_log(log)) == list(range(300)), "every item exactly once"
    ended = [s for s in list_sessions(url) if s.label == "A"]
    assert ended and ended[0].end_reason == "stopped (SIGTERM)"
    handover = history.handovers(history.load(url))
    assert list(handover["how"]) == ["released"], "taken over from a released lease, not an expired one"


def test_a_kernel_shut_down_mid_job_releases_its_lease(tmp_path):
    jupyter_client = pytest.importorskip("jupyter_client")
    url = str(tmp_path / "s")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel()
    client = km.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        client.execute(
            "import time\n"
            "from sessionkit.handover import Primary\n"
            f"primary = Primary({url!r}, 'work', runtime='local', ttl={TTL}, label='kernel')\n"
            "for item in primary.track(range(100000), display=False):\n"
            "    time.sleep(0.01)\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = sessionkit.jobs.list(url) if (tmp_path / "s").exists() else []
            if jobs and jobs[0].done >= 20:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the kernel's job did not start")
        km.shutdown_kernel(now=False)  # what a front end's "shut down" or "restart" sends
    finally:
        client.stop_channels()
    record = sessionkit.lease.read_lease(sessionkit.open_store(url), "primary")
    assert record.holder is None and record.token == 1, "released, not left to expire"
    job = sessionkit.Job(url, "work")
    assert job.status == "paused" and job.done >= 20
    ended = [s for s in list_sessions(url) if s.label == "kernel"]
    assert ended[0].end_reason.startswith("stopped (")


def test_a_papermill_primary_notebook_whose_kernel_is_shut_down_hands_over(tmp_path):
    """The primary notebook runs under papermill; its kernel is shut down as a Jupyter server
    does it: a shutdown request (through a second client on the kernel's connection file),
    then, as jupyter_client's KernelManager does after ``shutdown_wait_time`` (5 s) when the
    kernel is busy, SIGTERM. The backup notebook takes over from the released lease."""
    jupyter_client = pytest.importorskip("jupyter_client")
    from support.notebooks import outputs, start

    import nbformat

    store = tmp_path / "store"
    common = dict(STORE=store, JOB="shut", RUNTIME="local", LEASE_TTL=TTL, ITEMS=1500, ITEM_SECONDS=0.02)
    backup = start("backup", tmp_path / "backup.ipynb", PRIORITY=1, APPROVAL="auto", **common)
    primary = start("primary", tmp_path / "primary.ipynb", **common)
    kernel_pid = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and kernel_pid is None:
        if store.exists():
            jobs = sessionkit.jobs.list(str(store))
            primaries = [s for s in list_sessions(str(store)) if s.role == "primary" and s.job]
            if jobs and jobs[0].done >= 20 and primaries:
                kernel_pid = primaries[0].pid
        time.sleep(0.1)
    assert kernel_pid, "the primary notebook did not start its job"
    argv = Path(f"/proc/{kernel_pid}/cmdline").read_bytes().split(b"\0")
    connection_file = argv[argv.index(b"-f") + 1].decode()
    client = jupyter_client.BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    # No heartbeat channel: only the shutdown request is needed, and jupyter_client 7.4.9's
    # heartbeat thread (Colab's pin) re-created its socket for every missed beat of the dying
    # kernel until zmq ran out of sockets ("Too many open files", seen in CI).
    client.start_channels(hb=False)
    client.shutdown()  # what "Shut down kernel" / "Restart kernel" sends first
    client.stop_channels()
    waited = time.monotonic() + 5.0  # jupyter_client's shutdown_wait_time
    while time.monotonic() < waited and Path(f"/proc/{kernel_pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{kernel_pid}").exists():
        os.kill(kernel_pid, signal.SIGTERM)  # the kernel manager's next step for a busy kernel
    primary.communicate(timeout=60)
    out, err = backup.communicate(timeout=120)
    assert backup.returncode == 0, err[-2000:]
    assert "job shut: completed, 1500 done" in outputs(nbformat.read(tmp_path / "backup.ipynb", 4))
    handover = history.handovers(history.load(str(store)))
    assert list(handover["how"]) == ["released"], "the kernel released its lease on shutdown"


CHAINED = """
import os, signal, sys
from sessionkit import stopping

class Idle:  # a primary with no loop running: it stops at once, and the signal is passed on
    def stop_now(self, reason):
        print("stopped:", reason, flush=True)
        return True

idle = Idle()
stopping.install(idle)
ours = signal.getsignal(signal.SIGTERM)
calls = []

def framework_handler(signum, frame):  # as Lightning's: its own work, then the handler it found
    calls.append(signum)
    ours(signum, frame)

signal.signal(signal.SIGTERM, framework_handler)
os.kill(os.getpid(), signal.SIGTERM)
print("alive:", len(calls), stopping.requested(), flush=True)
"""


def test_sigterm_passed_on_to_a_handler_that_chains_ours_is_run_once_more_without_looping(tmp_path):
    """A framework's handler set after ours calls ours (Lightning's does). Passing the signal
    on runs the handler in place, which calls ours again: that must not pass it on again
    (it did, until the stack overflowed). The framework's handler then decides (Lightning
    ends fit with a SystemExit); here it lets the process go on."""
    proc = subprocess.run([sys.executable, "-c", CHAINED], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RecursionError" not in proc.stderr
    # the exit hook asks the (still installed) primary once more at the end
    assert proc.stdout.splitlines() == ["stopped: SIGTERM", "alive: 2 None", "stopped: exit"], proc.stdout
