"""The ready-made notebooks, executed headless by papermill in real Jupyter kernels."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

import sessionkit
from sessionkit import history
from sessionkit.sessions import list_sessions

from support.notebooks import NOTEBOOKS, make_images, outputs, start

papermill = pytest.importorskip("papermill")
pytestmark = pytest.mark.slow


def execute(name: str, out: Path, **parameters) -> dict:
    nb = papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                                    kernel_name="python3", progress_bar=False, log_output=False)
    return nb


def test_every_notebook_has_an_intro_install_cell_and_parameters():
    import nbformat

    for name in ("primary", "backup", "ingest", "history"):
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# sessionkit")
        assert "pip" in nb.cells[1].source and "upgrades nothing Colab ships" in nb.cells[1].source
        assert "never installs it" in nb.cells[1].source
        assert "parameters" in nb.cells[2].metadata.get("tags", [])
    assert "forbid using several accounts" in nbformat.read(NOTEBOOKS / "backup.ipynb", 4).cells[0].source


def test_the_built_notebooks_match_their_source(tmp_path):
    """notebooks/build.py is the source of the .ipynb files; they must not drift apart."""
    import nbformat

    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import build
    finally:
        sys.path.pop(0)
    for maker in (build.primary, build.backup, build.ingest, build.history):
        committed = nbformat.read(NOTEBOOKS / f"{maker.__name__}.ipynb", as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in maker().cells], maker.__name__


def test_primary_then_history(tmp_path):
    store = tmp_path / "store"
    nb = execute("primary", tmp_path / "primary.ipynb", STORE=str(store), JOB="nb-job", RUNTIME="local",
                 TIME_SCALE=720.0, ITEMS=30, ITEM_SECONDS=0.01)
    assert "job nb-job: completed, 30 done" in outputs(nb)
    shown = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "display_data"]
    html = " ".join(o["data"].get("text/html", "") for o in shown)
    assert "session ended: completed" in html  # the Countdown's final state (issue 12, 4)
    assert "completed: 30 done" in html  # HandoverStatus's
    assert "role" in html and "primary token 1" in html  # SessionBanner
    bars = [o["data"] for o in shown if "application/vnd.jupyter.widget-view+json" in o["data"]]  # JobProgress
    assert bars
    # issue 26 (3): where the widget's model is gone (a reload), the saved text is what shows
    assert all("HBox(" not in bar["text/plain"] for bar in bars), [bar["text/plain"] for bar in bars]
    assert any("completed" in bar["text/plain"] and "30" in bar["text/plain"] for bar in bars)

    out_dir = tmp_path / "plots"
    nb = execute("history", tmp_path / "history.ipynb", STORE=str(store), OUT_DIR=str(out_dir))
    assert sorted(os.listdir(out_dir)) == ["progress.png", "throughput.png", "timeline.png"]
    assert "events" in outputs(nb)
    # issue 12 (1): the figures showed as '<Figure size 1100x210 with 1 Axes>' in the notebook
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 3, [o.get("data", {}).get("text/plain") for c in nb.cells for o in c.get("outputs", [])]


def test_primary_kernel_killed_backup_notebook_finishes(tmp_path):
    store = tmp_path / "store"
    common = dict(STORE=store, JOB="shared", TIME_SCALE=720.0, LEASE_TTL=3.0, ITEMS=300, ITEM_SECONDS=0.02)
    backup = start("backup", tmp_path / "backup.ipynb", RUNTIME="local", PRIORITY=1, APPROVAL="auto", **common)
    primary = start("primary", tmp_path / "primary.ipynb", RUNTIME="local", **common)
    deadline = time.monotonic() + 60
    kernel_pid = None
    while time.monotonic() < deadline:
        if store.exists():
            jobs = sessionkit.jobs.list(str(store))
            primaries = [s for s in list_sessions(str(store)) if s.role == "primary" and s.job]
            if jobs and jobs[0].done >= 20 and primaries:
                kernel_pid = primaries[0].pid
                break
        time.sleep(0.2)
    assert kernel_pid, "the primary notebook did not start its job"
    os.kill(kernel_pid, signal.SIGKILL)  # the primary's runtime dies mid-job
    primary.communicate(timeout=60)
    out, err = backup.communicate(timeout=120)
    assert backup.returncode == 0, err[-2000:]
    import nbformat

    text = outputs(nbformat.read(tmp_path / "backup.ipynb", 4))
    assert "job shared: completed, 300 done" in text
    df = history.load(str(store))
    sessions = history.sessions(df)
    assert len(sessions) == 2
    takeover = history.handovers(df)
    assert len(takeover) == 1 and not takeover["planned"].iloc[0]


def test_ingest_notebook_twice(tmp_path):
    source = tmp_path / "images"
    expected = make_images(source)
    catalog = tmp_path / "catalog.sqlite"
    params = dict(STORE=str(tmp_path / "store"), SOURCE_DIR=str(source), PATTERN="*.png|*.jpg|*.jpeg",
                  CATALOG=str(catalog), JOB="ingest")
    first = outputs(execute("ingest", tmp_path / "ingest1.ipynb", **params))
    assert "5 files match" in first and "'catalogued': 4" in first and "'errors': 1" in first
    second = outputs(execute("ingest", tmp_path / "ingest2.ipynb", **params))
    assert "'catalogued': 0" in second
    db = sqlite3.connect(catalog)
    rows = db.execute("SELECT path, format, width, height, keywords FROM images ORDER BY path").fetchall()
    assert len(rows) == expected["images"] == len({r[0] for r in rows})
    fox = next(r for r in rows if r[0] == "fox.png")
    assert fox[1:4] == ("PNG", 64, 48)
    assert json.loads(fox[4]) == ["masterpiece", "a red fox", "snowy forest", "detailed"]
    errors = db.execute("SELECT path, error FROM errors").fetchall()
    assert [e[0] for e in errors] == ["broken.png"] and errors[0][1]


def code_cells(name: str, **parameters) -> list[str]:
    """The notebook's code cells after its install cell, with its parameters set."""
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][1:]
    cells[0] += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())  # as papermill injects them
    return cells


def run_code(client, code: str, timeout: float = 120, interrupt_when=None, km=None) -> tuple[str, list]:
    """Execute ``code`` in the kernel; its printed text and error messages. ``interrupt_when``:
    a callable checked while it runs; once true the kernel gets SIGINT (the stop button)."""
    msg_id = client.execute(code)
    text, errors, interrupted = [], [], False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if interrupt_when is not None and not interrupted and interrupt_when():
            km.interrupt_kernel()
            interrupted = True
        try:
            msg = client.get_iopub_msg(timeout=0.2)
        except Exception:  # queue.Empty: nothing yet
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text.append(content["text"])
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(text), errors
    raise AssertionError(f"the cell did not finish within {timeout} s: {''.join(text)[-500:]}")


def test_rerunning_the_start_cell_reuses_this_kernels_primary_and_an_interrupt_is_one_line(tmp_path):
    """Issue 12 (3): running the start cell again in the same kernel waited for ever on the
    lease this kernel itself held, with no message. (7): an interrupt printed a whole
    KeyboardInterrupt traceback although the job paused cleanly."""
    jupyter_client = pytest.importorskip("jupyter_client")
    url = str(tmp_path / "store")
    params, start_cell, work_cell, run_cell = code_cells(
        "primary", STORE=url, JOB="nb-job", RUNTIME="local", TIME_SCALE=1.0, LEASE_TTL=60.0, ITEMS=100000,
        ITEM_SECONDS=0.01, RELEASE_RUNTIME=False, CONFIG=None)[:4]
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel()
    client = km.client()
    client.start_channels(hb=False)
    try:
        client.wait_for_ready(timeout=60)
        for cell in (params, start_cell, work_cell):
            _, errors = run_code(client, cell)
            assert not errors, errors

        def twenty_done() -> bool:
            jobs = sessionkit.jobs.list(url)
            return bool(jobs) and jobs[0].done >= 20

        text, errors = run_code(client, run_cell, interrupt_when=twenty_done, km=km)
        assert errors == [], "an interrupt shows one line, not a traceback"
        assert "interrupted: job 'nb-job' is paused with" in text, text
        assert "run the cell again to resume" in text

        text, errors = run_code(client, start_cell, timeout=120)  # waited for ever before
        assert not errors, errors
        assert "this kernel's primary for job 'nb-job' still holds the lease (token 1): using it again" in text
        record = sessionkit.lease.read_lease(sessionkit.open_store(url), "primary")
        assert record.token == 1 and record.holder is not None, "no second acquisition, no handover"
    finally:
        km.shutdown_kernel(now=True)
        client.stop_channels()
