"""Writes the ready-made notebooks from the cell texts below: ``python notebooks/build.py``.

The .ipynb files are committed; edit this file and run it rather than editing them by hand.
Cells stay thin: the logic lives in sessionkit (sessionkit.notebook, sessionkit.ingest).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

#: Where the project is published: README's "Open in Colab" links are built from it
#: (set it to your fork, then run this file). Colab opens a notebook of a public GitHub
#: repository at colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>.
REPOSITORY = "https://github.com/OWNER/sessionkit"
BRANCH = "main"
LINKS_START = "<!-- colab-links: written by notebooks/build.py from its REPOSITORY setting -->"
LINKS_END = "<!-- /colab-links -->"

INSTALL = '''# @title Install sessionkit { display-mode: "form" }
# @markdown Installs sessionkit (distribution "sessionkit-runtime") only from a source you control:
# @markdown the PyPI name "sessionkit" belongs to an unrelated project and this cell never installs it.
# @markdown Leave SESSIONKIT_SOURCE empty to use the checkout this notebook was opened from, or set it
# @markdown (here or in the environment) to a git URL of where you keep the project, a wheel or a folder.
# @markdown It upgrades nothing Colab ships.
SESSIONKIT_SOURCE = ""  # @param {type:"string"}
import importlib.metadata, importlib.util, os, pathlib, re, subprocess, sys


class InstallFailed(Exception):
    """The install cell's error: its first line says what failed and what to set, details follow."""

    def _render_traceback_(self):  # IPython shows this instead of a traceback
        return str(self).splitlines()


SESSIONKIT_SOURCE = SESSIONKIT_SOURCE or os.environ.get("SESSIONKIT_SOURCE", "")  # e.g. "git+https://github.com/<you>/sessionkit"
_found = {re.sub(r"[-_.]+", "-", n).lower() for n in importlib.metadata.packages_distributions().get("sessionkit", [])}
_others = sorted(_found - {"sessionkit-runtime"})
if _others:
    raise InstallFailed(f"{_others} (not sessionkit-runtime) provides the module 'sessionkit' here: remove it "
                        f"with `pip uninstall -y {' '.join(_others)}` and run this cell again")
if not _found or importlib.util.find_spec("sessionkit") is None:
    _checkout = next((p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents) if (p / "setup.cfg").is_file()
                      and "name = sessionkit-runtime" in (p / "setup.cfg").read_text()), None)
    _source = SESSIONKIT_SOURCE or (str(_checkout) if _checkout else "")
    if not _source:
        raise InstallFailed("sessionkit is not installed here: set SESSIONKIT_SOURCE (in this cell's form or the "
                            "environment) to a git URL, a wheel or a folder of the project you control")
    print(f"Installing sessionkit-runtime from {_source} with pip (about 30 s) ...", flush=True)
    _pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source], capture_output=True, text=True)
    if _pip.returncode != 0:
        _tail = [l for l in (_pip.stderr + _pip.stdout).strip().splitlines() if l.strip()][-8:]
        raise InstallFailed("\\n".join([f"pip could not install sessionkit-runtime from {_source} (exit {_pip.returncode}): set "
                                        f"SESSIONKIT_SOURCE to a source this runtime can reach (a git URL, a wheel or "
                                        f"a folder) and run this cell again. pip's last lines:", *_tail]))
    importlib.invalidate_caches()
    print("Installed sessionkit-runtime", importlib.metadata.version("sessionkit-runtime"))'''

COMMON_FIELDS = '''# @markdown **RELEASE_RUNTIME**: in Colab, give the runtime back once the job has completed.
RELEASE_RUNTIME = False  # @param {type:"boolean"}
# @markdown **CREDENTIALS**: outside Colab, Drive's saved user credentials: a file, or a secret,
# @markdown `kaggle-secret:NAME` / `colab-secret:NAME` (`sessionkit login` makes them; docs/gdrive.md).
CREDENTIALS = ""  # @param {type:"string"}
# @markdown **CONFIG**: None, or a sessionkit.ini (templates/) whose runtime, phases, ttl and webhook win.
CONFIG = None  # @param {type:"raw"}'''

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

1. Run **Install sessionkit** (set its SESSIONKIT_SOURCE first if this notebook is not in a checkout).
2. Fill in **Parameters** (empty `STORE` in Colab: a Drive folder, after you sign in) and run all.
3. Give the backup the `STORE = ...` line this prints, and share that Drive folder with its account."""),
        new_code_cell(INSTALL),
        _parameters('''# @title Parameters
# @markdown **STORE**: empty means a Drive folder in Colab, the folder "sessionkit-state" elsewhere.
STORE = ""  # @param {type:"string"}
# @markdown **JOB**: the job's name in the store.
JOB = "my-job"  # @param {type:"string"}
# @markdown **RUNTIME**: this runtime's kind (how long it lasts).
RUNTIME = "colab-free"  # @param ["colab-free", "colab-pro-plus", "kaggle", "local"]
# @markdown **TIME_SCALE**: 1.0 is real time; 720 runs a 12 h runtime in a minute.
TIME_SCALE = 1.0  # @param {type:"number"}
# @markdown **LEASE_TTL**: real seconds a dead primary's lease lasts before a backup takes over.
LEASE_TTL = 60.0  # @param {type:"number"}
# @markdown **ITEMS**, **ITEM_SECONDS**: the demo workload, ITEMS items of ITEM_SECONDS each.
ITEMS = 100  # @param {type:"integer"}
ITEM_SECONDS = 1.0  # @param {type:"number"}
''' + COMMON_FIELDS),
        new_markdown_cell(f"""Runs a job whose progress is checkpointed to `STORE`, shows how long this runtime
has left (Colab free runtimes last at most 12 hours; idle ones are cut sooner),
and hands the job over to a backup when its time runs short. Run the cell again
after a crash or a new runtime: the job resumes where it stopped.

{STORE_NOTE}

{RUN_ANYWHERE.format(name="primary")}"""),
        new_code_cell('''from sessionkit import notebook

primary = notebook.start_primary(STORE, JOB, runtime=RUNTIME, time_scale=TIME_SCALE,
                                 lease_ttl=LEASE_TTL, label="primary", config=CONFIG, credentials=CREDENTIALS)'''),
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

1. Run **Install sessionkit** (set its SESSIONKIT_SOURCE first if this notebook is not in a checkout).
2. In **Parameters** set `STORE` to the line the primary printed; outside Colab set `CREDENTIALS`
   to your saved Drive sign-in, e.g. `kaggle-secret:NAME` (`sessionkit login`, docs/gdrive.md).
3. Run all. On Kaggle, "Save Version → Save & Run All" runs it headless for up to 12 hours.

{TERMS}"""),
        new_code_cell(INSTALL),
        _parameters('''# @title Parameters
# @markdown **STORE**: the primary's: the value it printed (`gdrive://id/...`), or the Drive folder's link.
STORE = ""  # @param {type:"string"}
# @markdown **JOB**: the job this backup expects to take over.
JOB = "my-job"  # @param {type:"string"}
# @markdown **RUNTIME**: this runtime's kind (how long it lasts).
RUNTIME = "kaggle"  # @param ["colab-free", "colab-pro-plus", "kaggle", "local"]
# @markdown **TIME_SCALE**, **LEASE_TTL**, **ITEMS**, **ITEM_SECONDS**: as the primary's.
TIME_SCALE = 1.0  # @param {type:"number"}
LEASE_TTL = 60.0  # @param {type:"number"}
ITEMS = 100  # @param {type:"integer"}
ITEM_SECONDS = 1.0  # @param {type:"number"}
# @markdown **PRIORITY**: lower goes first when several backups watch.
PRIORITY = 1  # @param {type:"integer"}
# @markdown **APPROVAL**: "required" waits for `sessionkit approve STORE REQUEST` before taking over.
APPROVAL = "auto"  # @param ["auto", "required"]
''' + COMMON_FIELDS),
        new_markdown_cell(f"""Watches the primary through `STORE` and takes its job over: when the primary asks
(its runtime is about to end) or when it stops answering (its lease expires).
Never two primaries at once: every checkpoint carries a fencing token. Run headless
(Kaggle's "Save & Run All"), it prints its state as log lines and stops by itself when
the job completes or this runtime's own session is about to end.

{STORE_NOTE}

{RUN_ANYWHERE.format(name="backup")}"""),
        new_code_cell('''from sessionkit import notebook

primary = notebook.start_backup(STORE, job=JOB, runtime=RUNTIME, time_scale=TIME_SCALE,
                                lease_ttl=LEASE_TTL, priority=PRIORITY, approval=APPROVAL,
                                label="backup", config=CONFIG, credentials=CREDENTIALS)'''),
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
        new_markdown_cell("""# sessionkit: ingest a folder of images

1. Run **Install sessionkit** (set its SESSIONKIT_SOURCE first if this notebook is not in a checkout).
2. Fill in **Parameters**: `SOURCE_DIR` (the images), `CATALOG` (the SQLite file written).
3. Run all; cut off at any point, run it again and it resumes (nothing is added twice)."""),
        new_code_cell(INSTALL),
        _parameters('''# @title Parameters
# @markdown **STORE**: a folder, or the primary's store URL.
STORE = "sessionkit-state"  # @param {type:"string"}
# @markdown **SOURCE_DIR**, **PATTERN**: the files to catalogue.
SOURCE_DIR = "images"  # @param {type:"string"}
PATTERN = "*.png|*.jpg|*.jpeg"  # @param {type:"string"}
# @markdown **CATALOG**: the SQLite database written.
CATALOG = "catalog.sqlite"  # @param {type:"string"}
# @markdown **JOB**: the job's name; None restores the active or most recent job.
JOB = "ingest"  # @param {type:"raw"}
# @markdown **WORKERS**: files read, hashed and described at once, on threads (0: one at a time).
WORKERS = 4  # @param {type:"integer"}'''),
        new_markdown_cell(f"""Catalogues every file under `SOURCE_DIR` matching `PATTERN` into the SQLite
database `CATALOG`: path, size, modification time, SHA-256, width and height, PNG
text chunks (such as Stable Diffusion's `parameters`) and the prompt's keywords.
Stages: scan → process → commit, with a preview before the commit. Cut off at any
point, it resumes when run again; run twice, it adds nothing twice. Files that
cannot be read are recorded in the `errors` table and never stop the run.

{RUN_ANYWHERE.format(name="ingest")}"""),
        new_code_cell('''from sessionkit.ingest import Ingest

ingest = Ingest(STORE, SOURCE_DIR, PATTERN, CATALOG, job_id=JOB, workers=WORKERS or None)
files = ingest.scan()
print(f"{len(files)} files match {PATTERN!r} under {SOURCE_DIR}")'''),
        new_code_cell('''ingest.process(files)
ingest.preview()   # what the commit will write'''),
        new_code_cell('''print(ingest.commit())
ingest.close()'''),
    ])


def history() -> nbformat.NotebookNode:
    return _notebook("history", [
        new_markdown_cell("""# sessionkit: history

1. Run **Install sessionkit** (set its SESSIONKIT_SOURCE first if this notebook is not in a checkout).
2. In **Parameters** set `STORE` to the primary's store (`gdrive://id/...` or a folder).
3. Run all: every session, job, handover and gap as tables, and three plots in `OUT_DIR`."""),
        new_code_cell(INSTALL),
        _parameters('''# @title Parameters
# @markdown **STORE**: a folder, or the primary's store URL (`gdrive://id/...`).
STORE = "sessionkit-state"  # @param {type:"string"}
# @markdown **OUT_DIR**: where the plots are saved as PNG.
OUT_DIR = "history-plots"  # @param {type:"string"}'''),
        new_markdown_cell(f"""Every session, job, handover and gap recorded in `STORE`, as pandas DataFrames,
with three plots saved as PNG in `OUT_DIR`.

{RUN_ANYWHERE.format(name="history")}"""),
        new_code_cell('''from sessionkit import history, plots

events = history.load(STORE)  # on a scaled clock (TIME_SCALE), brought back to real time
note = history.units_note(events)  # "" on a real clock
print(f"{len(events)} events" + (f"\\n{note}" if note else ""))
history.readable(history.sessions(events))  # for people; compute with history.sessions(events)'''),
        new_code_cell("history.readable(history.jobs(events))"),
        new_code_cell("history.readable(history.handovers(events))"),
        new_code_cell("history.readable(history.gaps(events))"),
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


def colab_url(notebook: str) -> str:
    """The "Open in Colab" address of ``notebooks/<notebook>.ipynb`` in REPOSITORY."""
    repo = REPOSITORY.removeprefix("https://github.com/").strip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def readme_links() -> str:
    """README's three Colab steps, with their links, between the markers."""
    return "\n".join([
        LINKS_START,
        f"1. Open [the primary notebook]({colab_url('primary')}), run **Install sessionkit**, then "
        f"Runtime → Run all (sign in to Drive when asked).",
        "2. Share the Drive folder it prints with the backup's account as Editor.",
        f"3. Open [the backup notebook]({colab_url('backup')}) on another runtime (or Kaggle, headless), "
        f"set `STORE` to the value the primary printed, run all.",
        LINKS_END])


def write_readme_links(readme: Path = HERE.parent / "README.md") -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(LINKS_START), text.index(LINKS_END) + len(LINKS_END)
    readme.write_text(text[:start] + readme_links() + text[end:], encoding="utf-8")


def main() -> None:
    for build in (primary, backup, ingest, history):
        nb = build()
        nbformat.validate(nb)
        nbformat.write(nb, HERE / f"{build.__name__}.ipynb")
    write_readme_links()


if __name__ == "__main__":
    main()
