"""Writes the ready-made notebooks from the cell texts below: ``python notebooks/build.py``.

The .ipynb files are committed; edit this file and run it rather than editing them by hand.
Cells stay thin: the logic lives in sessionkit (sessionkit.notebook, sessionkit.ingest).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

INSTALL = '''# Install sessionkit if this runtime does not have it yet. In Colab this upgrades
# nothing Colab ships: sessionkit only needs versions Colab already has.
import importlib.util, subprocess, sys
if importlib.util.find_spec("sessionkit") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "sessionkit"])'''

RUN_ANYWHERE = """**Run it** in Colab (Runtime → Run all), in Jupyter, or headless with papermill
(`papermill {name}.ipynb out.ipynb -p STORE /path/to/store`)."""

STORE_NOTE = """`STORE` is where the progress lives. A local folder works for one machine. For a
backup on another machine both need a store they share with real compare-and-swap;
a mounted Google Drive (`/content/drive`) is **not** such a store: it syncs late and
sessionkit refuses to put a lease there."""

TERMS = """**Colab's terms forbid using several accounts to get around its usage limits.**
Run the backup only on a runtime you may legitimately use: a second runtime of your
own account, Kaggle, a local Jupyter or a VM. sessionkit never creates, rotates or
hides accounts."""

WORK = '''# Your work goes here: replace the built-in demo workload (ITEMS items that take
# ITEM_SECONDS each) with your items and what to do with each one.
items = notebook.demo_items(ITEMS)
work = notebook.demo_work(ITEM_SECONDS)'''


def primary() -> nbformat.NotebookNode:
    return _notebook("primary", [
        new_markdown_cell(f"""# sessionkit: primary

Runs a job whose progress is checkpointed to `STORE`, shows how long this runtime
has left (Colab free runtimes last at most 12 hours; idle ones are cut sooner),
and hands the job over to a backup when its time runs short. Run the cell again
after a crash or a new runtime: the job resumes where it stopped.

{STORE_NOTE}

{RUN_ANYWHERE.format(name="primary")}"""),
        new_code_cell(INSTALL),
        _parameters('''STORE = "sessionkit-state"   # folder or store URL
JOB = "my-job"               # the job's name in the store
RUNTIME = "colab-free"       # colab-free, colab-pro-plus, kaggle or local
TIME_SCALE = 1.0             # 1.0 = real time, 720 runs a 12 h runtime in a minute
LEASE_TTL = 60.0             # seconds a dead primary's lease lasts before a backup takes over
ITEMS = 100                  # the demo workload: ITEMS items ...
ITEM_SECONDS = 1.0           # ... of ITEM_SECONDS each'''),
        new_code_cell('''from sessionkit import notebook

primary = notebook.start_primary(STORE, JOB, runtime=RUNTIME, time_scale=TIME_SCALE,
                                 lease_ttl=LEASE_TTL, label="primary")'''),
        new_code_cell(WORK),
        new_code_cell('''notebook.run(primary, items, work)
print(f"job {primary.job.id}: {primary.job.status}, {primary.job.done} done"
      + (" (handed over to the backup)" if primary.handed_over else ""))'''),
    ])


def backup() -> nbformat.NotebookNode:
    return _notebook("backup", [
        new_markdown_cell(f"""# sessionkit: backup

Watches the primary through `STORE` and takes its job over: when the primary asks
(its runtime is about to end) or when it stops answering (its lease expires).
Never two primaries at once: every checkpoint carries a fencing token.

{TERMS}

{STORE_NOTE}

{RUN_ANYWHERE.format(name="backup")}"""),
        new_code_cell(INSTALL),
        _parameters('''STORE = "sessionkit-state"
JOB = "my-job"               # the job this backup expects to take over
RUNTIME = "kaggle"           # this runtime's kind
TIME_SCALE = 1.0
LEASE_TTL = 60.0
ITEMS = 100
ITEM_SECONDS = 1.0
PRIORITY = 1                 # lower goes first when several backups watch
APPROVAL = "auto"            # "required": wait for `sessionkit approve STORE REQUEST`'''),
        new_code_cell('''from sessionkit import notebook

primary = notebook.start_backup(STORE, job=JOB, runtime=RUNTIME, time_scale=TIME_SCALE,
                                lease_ttl=LEASE_TTL, priority=PRIORITY, approval=APPROVAL,
                                label="backup")'''),
        new_code_cell(WORK),
        new_code_cell('''if primary is not None:
    notebook.run(primary, items, work)
    print(f"job {primary.job.id}: {primary.job.status}, {primary.job.done} done")'''),
    ])


def ingest() -> nbformat.NotebookNode:
    return _notebook("ingest", [
        new_markdown_cell(f"""# sessionkit: ingest a folder of images

Catalogues every file under `SOURCE_DIR` matching `PATTERN` into the SQLite
database `CATALOG`: path, size, modification time, SHA-256, width and height, PNG
text chunks (such as Stable Diffusion's `parameters`) and the prompt's keywords.
Stages: scan → process → commit, with a preview before the commit. Cut off at any
point, it resumes when run again; run twice, it adds nothing twice. Files that
cannot be read are recorded in the `errors` table and never stop the run.

{RUN_ANYWHERE.format(name="ingest")}"""),
        new_code_cell(INSTALL),
        _parameters('''STORE = "sessionkit-state"
SOURCE_DIR = "images"
PATTERN = "*.png|*.jpg|*.jpeg"
CATALOG = "catalog.sqlite"
JOB = "ingest"               # None restores the active or most recent job'''),
        new_code_cell('''from sessionkit.ingest import Ingest

ingest = Ingest(STORE, SOURCE_DIR, PATTERN, CATALOG, job_id=JOB)
files = ingest.scan()
print(f"{len(files)} files match {PATTERN!r} under {SOURCE_DIR}")'''),
        new_code_cell('''ingest.process(files)
ingest.preview()   # what the commit will write'''),
        new_code_cell('''print(ingest.commit())
ingest.close()'''),
    ])


def history() -> nbformat.NotebookNode:
    return _notebook("history", [
        new_markdown_cell(f"""# sessionkit: history

Every session, job, handover and gap recorded in `STORE`, as pandas DataFrames,
with three plots saved as PNG in `OUT_DIR`.

{RUN_ANYWHERE.format(name="history")}"""),
        new_code_cell(INSTALL),
        _parameters('''STORE = "sessionkit-state"
OUT_DIR = "history-plots"'''),
        new_code_cell('''from sessionkit import history, plots

events = history.load(STORE)
print(f"{len(events)} events")
history.sessions(events)'''),
        new_code_cell("history.jobs(events)"),
        new_code_cell("history.handovers(events)"),
        new_code_cell("history.gaps(events)"),
        new_code_cell('''import os
os.makedirs(OUT_DIR, exist_ok=True)
figures = {name: getattr(plots, name)(events) for name in ("timeline", "progress", "throughput")}
for name, figure in figures.items():
    figure.savefig(os.path.join(OUT_DIR, f"{name}.png"), dpi=110)
print("saved", sorted(os.listdir(OUT_DIR)))
figures["timeline"]'''),
        new_code_cell('figures["progress"]'),
        new_code_cell('figures["throughput"]'),
    ])


def _parameters(source: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def _notebook(name: str, cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i}"
    return nb


def main() -> None:
    for build in (primary, backup, ingest, history):
        nb = build()
        nbformat.validate(nb)
        nbformat.write(nb, HERE / f"{build.__name__}.ipynb")


if __name__ == "__main__":
    main()
