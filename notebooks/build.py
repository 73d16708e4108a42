"""Writes the ready-made notebooks from the cell texts below: ``python notebooks/build.py``.

The .ipynb files are committed; edit this file and run it rather than editing them by hand.
Cells stay thin: the logic lives in sessionkit (sessionkit.notebook, sessionkit.ingest).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

INSTALL = '''# Install sessionkit only from a source you control. The PyPI name "sessionkit" belongs
# to an unrelated project: this cell never installs it. It uses sessionkit (distribution
# "sessionkit-runtime") if this runtime has it, else installs SESSIONKIT_SOURCE (a pip
# requirement you control: a git URL of where you keep the project, a wheel, a folder),
# else the checkout this notebook was opened from. It upgrades nothing Colab ships.
import importlib.metadata, importlib.util, os, pathlib, re, subprocess, sys
SESSIONKIT_SOURCE = os.environ.get("SESSIONKIT_SOURCE", "")  # e.g. "git+https://github.com/<you>/sessionkit"
_found = {re.sub(r"[-_.]+", "-", n).lower() for n in importlib.metadata.packages_distributions().get("sessionkit", [])}
_others = sorted(_found - {"sessionkit-runtime"})
if _others:
    raise RuntimeError(f"{_others} (not sessionkit-runtime) provides the module 'sessionkit' here: remove it "
                       f"with `pip uninstall -y {' '.join(_others)}` and run this cell again")
if not _found or importlib.util.find_spec("sessionkit") is None:
    _checkout = next((p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "setup.cfg").is_file()
                      and "name = sessionkit-runtime" in (p / "setup.cfg").read_text()), None)
    _source = SESSIONKIT_SOURCE or (str(_checkout) if _checkout else "")
    if not _source:
        raise RuntimeError("sessionkit is not installed here: set SESSIONKIT_SOURCE (in this cell or the "
                           "environment) to a git URL, a wheel or a folder of the project you control")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", _source])
    importlib.invalidate_caches()'''

RUN_ANYWHERE = """**Run it** in Colab (Runtime → Run all), in Jupyter, or headless with papermill
(`papermill {name}.ipynb out.ipynb -p STORE /path/to/store`)."""

STORE_NOTE = """`STORE` is where the progress lives. Left empty, it is a Google Drive folder in
your My Drive when this runs in Colab (used through the Drive API, so another runtime
sees every write), and the local folder `sessionkit-state` elsewhere, which only this
machine sees. A mounted Google Drive (`/content/drive`) is **not** a store two runtimes
can share: it syncs late and sessionkit refuses to put a lease there."""

TERMS = """**Colab's terms forbid using several accounts to get around its usage limits.**
Run the backup only on a runtime you may legitimately use: a second runtime of your
own account, Kaggle, a local Jupyter or a VM. sessionkit never creates, rotates or
hides accounts."""

SHOW_AGAIN_NOTE = """Reloaded the page, or opened the notebook while the job runs elsewhere? This cell
shows the primary's countdown, banner and progress again, read from `STORE` (it only reads)."""

SHOW_AGAIN = '''notebook.show_again(STORE, JOB)'''

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
        _parameters('''STORE = ""                   # empty: a Drive folder in Colab, "sessionkit-state" elsewhere
JOB = "my-job"               # the job's name in the store
RUNTIME = "colab-free"       # colab-free, colab-pro-plus, kaggle or local
TIME_SCALE = 1.0             # 1.0: real time; 720 runs a 12 h runtime in a minute
LEASE_TTL = 60.0             # real seconds a dead primary's lease lasts before a backup takes over
ITEMS = 100                  # the demo workload: ITEMS items ...
ITEM_SECONDS = 1.0           # ... of ITEM_SECONDS each
RELEASE_RUNTIME = False      # Colab: give the runtime back once the job has completed
CONFIG = None                # a sessionkit.ini (templates/): its runtime, phases, ttl and webhook win'''),
        new_code_cell('''from sessionkit import notebook

primary = notebook.start_primary(STORE, JOB, runtime=RUNTIME, time_scale=TIME_SCALE,
                                 lease_ttl=LEASE_TTL, label="primary", config=CONFIG)'''),
        new_code_cell(WORK),
        new_code_cell('''notebook.run(primary, items, work)
print(f"job {primary.job.id}: {primary.job.status}, {primary.job.done} done"
      + (" (handed over to the backup)" if primary.handed_over else ""))
if RELEASE_RUNTIME:
    print(notebook.release_runtime(primary))'''),
        new_markdown_cell(SHOW_AGAIN_NOTE),
        new_code_cell(SHOW_AGAIN),
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
        _parameters('''STORE = ""                   # the primary's: the value it printed, or the Drive folder's link
JOB = "my-job"               # the job this backup expects to take over
RUNTIME = "kaggle"           # this runtime's kind
TIME_SCALE = 1.0
LEASE_TTL = 60.0
ITEMS = 100
ITEM_SECONDS = 1.0
PRIORITY = 1                 # lower goes first when several backups watch
APPROVAL = "auto"            # "required": wait for `sessionkit approve STORE REQUEST`
RELEASE_RUNTIME = False      # Colab: give the runtime back once the job has completed
CONFIG = None                # a sessionkit.ini (templates/): its runtime, phases, ttl and webhook win'''),
        new_code_cell('''from sessionkit import notebook

primary = notebook.start_backup(STORE, job=JOB, runtime=RUNTIME, time_scale=TIME_SCALE,
                                lease_ttl=LEASE_TTL, priority=PRIORITY, approval=APPROVAL,
                                label="backup", config=CONFIG)'''),
        new_code_cell(WORK),
        new_code_cell('''if primary is not None:
    notebook.run(primary, items, work)
    print(f"job {primary.job.id}: {primary.job.status}, {primary.job.done} done")
    if RELEASE_RUNTIME:
        print(notebook.release_runtime(primary))'''),
        new_markdown_cell(SHOW_AGAIN_NOTE),
        new_code_cell(SHOW_AGAIN),
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
        _parameters('''STORE = "sessionkit-state"      # a folder, or the primary's store URL
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
        _parameters('''STORE = "sessionkit-state"      # a folder, or the primary's store URL (gdrive://id/...)
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
