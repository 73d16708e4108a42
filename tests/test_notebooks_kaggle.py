"""The backup notebook run headless on Kaggle ("Save Version → Save & Run All"), as a user
sets it up: the primary runs in Colab on account A; the backup runs on Kaggle on account
B, whose saved Drive sign-in is a Kaggle secret attached to the notebook
(``CREDENTIALS = "kaggle-secret:NAME"``). No page is open: the backup says what it is
doing in log lines at a steady pace and ends by itself, when the job completes or when
its own session is about to end.

Each notebook runs headless (papermill) in a real kernel against the Drive emulator. The
primary's kernel has the stand-in google.colab (tests/colab_standin), the backup's the
stand-in kaggle_secrets (tests/kaggle_standin) and Kaggle's variables for a batch run
(``KAGGLE_KERNEL_RUN_TYPE=Batch``): CI can reach neither Colab nor Kaggle.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import nbformat
import pytest

from sessionkit import history

from conftest import drive_emulator
from support.colab import ColabAccount, finish, outputs, wait_for_store

papermill = pytest.importorskip("papermill")
pytest.importorskip("googleapiclient")
TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow
SECRET = "sessionkit-drive"
LINE = re.compile(r"^\d\d:\d\d:\d\d (backup|job) ", re.M)


class KaggleAccount(ColabAccount):
    """A Kaggle notebook signed in to Drive as ``email`` through a secret, run as a batch."""

    def __init__(self, emulator, tmp: Path, email: str) -> None:
        super().__init__(emulator, tmp, email)
        secrets = tmp / f"kaggle-secrets-{email.split('@')[0]}.json"
        secrets.write_text(json.dumps({SECRET: Path(self.credentials).read_text()}))
        env = dict(os.environ)
        for name in ("SESSIONKIT_GDRIVE_CREDENTIALS", "SESSIONKIT_HEADLESS"):
            env.pop(name, None)  # the sign-in comes from the secret; headless from Kaggle's variable
        env.update(PYTHONPATH=os.pathsep.join([str(TESTS / "kaggle_standin"), env.get("PYTHONPATH", "")]),
                   KAGGLE_KERNEL_RUN_TYPE="Batch", KAGGLE_USER_SECRETS_TOKEN="standin-session-token",
                   SESSIONKIT_KAGGLE_STANDIN_SECRETS=str(secrets), SESSIONKIT_LOG_EVERY="1")
        self.env = env


@pytest.fixture
def accounts(tmp_path):
    emulator = drive_emulator()
    tag = uuid.uuid4().hex[:6]
    return emulator, ColabAccount(emulator, tmp_path, f"colab-a-{tag}@example.com"), \
        KaggleAccount(emulator, tmp_path, f"kaggle-b-{tag}@example.com")


def no_widgets(path: Path) -> None:
    for cell in nbformat.read(path, as_version=4).cells:
        for o in cell.get("outputs", []):
            assert o.get("output_type") != "display_data", f"a view was displayed headless: {o.get('data', {})}"


def log_lines(path: Path) -> list[str]:
    return [line for line in outputs(path).splitlines() if LINE.match(line)]


def test_headless_kaggle_backup_takes_over_and_stops_when_the_job_completes(accounts, tmp_path):
    emulator, a, b = accounts
    job = f"kg-planned-{uuid.uuid4().hex[:6]}"
    # colab-free at 4000x: the primary's handover phase comes after about 11 s
    primary = a.run("primary", tmp_path / "primary.ipynb", JOB=job, TIME_SCALE=4000.0, LEASE_TTL=5.0,
                    ITEMS=800, ITEM_SECONDS=0.02)
    folder = wait_for_store(emulator, job, a.email, primary)
    emulator.share(folder, b.email)
    backup = b.run("backup", tmp_path / "backup.ipynb", STORE=f"gdrive://id/{folder}", JOB=job, RUNTIME="local",
                   TIME_SCALE=4000.0, LEASE_TTL=5.0, ITEMS=800, ITEM_SECONDS=0.02,
                   CREDENTIALS=f"kaggle-secret:{SECRET}")
    finish(primary, "the primary notebook")
    finish(backup, "the headless backup notebook")

    printed = outputs(tmp_path / "backup.ipynb")
    assert f"job {job}: completed, 800 done" in printed
    lines = log_lines(tmp_path / "backup.ipynb")
    assert lines[0].endswith(f"watching gdrive://id/{folder} for job {job}"), lines[:2]
    assert "a line every 1 s" in lines[0]
    watching = [line for line in lines if " backup " in line and "watching" in line]
    running = [line for line in lines if f" job {job}: running" in line]
    assert len(watching) >= 2 and len(running) >= 3, lines  # the state, over and over, not once
    assert lines[-1].split(" ", 1)[1].startswith(f"job {job}: completed 800/800"), lines[-3:]
    no_widgets(tmp_path / "backup.ipynb")
    handovers = history.handovers(history.load(b.store(folder)))
    assert len(handovers) == 1 and bool(handovers["planned"].iloc[0])


def test_headless_kaggle_backup_stops_watching_before_its_own_session_ends(accounts, tmp_path):
    emulator, a, b = accounts
    job = f"kg-own-end-{uuid.uuid4().hex[:6]}"
    # the primary has no limit and keeps its job; the backup is a 12 h Kaggle session at
    # 4000x, whose handover threshold (15 min left) comes after about 11 s
    primary = a.run("primary", tmp_path / "primary.ipynb", JOB=job, RUNTIME="local", TIME_SCALE=4000.0,
                    LEASE_TTL=5.0, ITEMS=1200, ITEM_SECONDS=0.02)
    folder = wait_for_store(emulator, job, a.email, primary)
    emulator.share(folder, b.email)
    backup = b.run("backup", tmp_path / "backup.ipynb", STORE=f"gdrive://id/{folder}", JOB=job, RUNTIME="kaggle",
                   TIME_SCALE=4000.0, LEASE_TTL=5.0, ITEMS=1200, ITEM_SECONDS=0.02,
                   CREDENTIALS=f"kaggle-secret:{SECRET}")
    finish(backup, "the headless backup notebook", timeout=120)
    printed = outputs(tmp_path / "backup.ipynb")
    assert "too little to take the job over: stopped watching" in printed, printed[-2000:]
    assert "stops watching when this runtime has 0:15:00 left" in printed
    assert len([line for line in log_lines(tmp_path / "backup.ipynb") if "watching" in line]) >= 3
    no_widgets(tmp_path / "backup.ipynb")
    finish(primary, "the primary notebook")  # it carries on alone and completes
    assert f"job {job}: completed, 1200 done" in outputs(tmp_path / "primary.ipynb")


def test_a_missing_kaggle_secret_stops_the_backup_with_what_to_do(accounts, tmp_path):
    emulator, a, b = accounts
    proc = b.run("backup", tmp_path / "backup.ipynb", STORE="gdrive://id/nothing", JOB="x", RUNTIME="kaggle",
                 CREDENTIALS="kaggle-secret:not-attached")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    failed = [o for c in nbformat.read(tmp_path / "backup.ipynb", as_version=4).cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert len(failed) == 1 and failed[0]["ename"] == "SignInError", failed
    assert failed[0]["evalue"].startswith("Kaggle gave no secret 'not-attached'") and "Add-ons" in failed[0]["evalue"]
    assert json.loads(Path(a.credentials).read_text())["refresh_token"] not in err
