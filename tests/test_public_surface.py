"""What ``import sessionkit as sk`` offers: a dozen names, every documented submodule by
attribute (loaded on first use), nothing heavy at import time, and the names it offered
before issue 28 still, with a warning naming their new home. (How modules depend on each
other: tests/test_layers.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _fresh(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_sessionkit_loads_no_pandas_ipywidgets_or_matplotlib():
    loaded = _fresh("import json, sys, sessionkit; print(json.dumps([m for m in "
                    "('pandas', 'ipywidgets', 'matplotlib') if m in sys.modules]))")
    assert loaded == []


@pytest.mark.parametrize("name", ["history", "plots", "config", "handover", "widgets", "notebook", "jobs", "doctor",
                                  "lease", "sessions", "runtimes", "notify", "store"])
def test_documented_submodules_are_attributes(name):
    found = _fresh(f"import json, sessionkit as sk; m = sk.{name}; print(json.dumps(m.__name__))")
    assert found == f"sessionkit.{name}"


#: issue 28 (9): the top level is what most users need, everything else is in its submodule
TOP_LEVEL = ["Backup", "Conflict", "Job", "Lease", "LeaseLost", "Primary", "Session", "SessionkitError", "Store",
             "__version__", "known_schemes", "open_store", "register_scheme"]

#: what the top level exported until issue 28, and where each is imported from now
MOVED = {
    **{name: "sessionkit.errors" for name in [
        "BlobError", "CorruptRecord", "DuplicateKey", "InvalidKey", "InvalidTransition", "JobCancelled",
        "LeaseTimeout", "NotFound", "SegmentMissing", "SessionkitWarning", "StoreError", "StoreFull",
        "StoreMissing", "StoreReadOnly", "StoreTimeout", "SignInError"]},
    **{name: "sessionkit.clock" for name in ["Clock", "FakeClock", "ScaledClock", "SystemClock"]},
    "ABSENT": "sessionkit.store", "Record": "sessionkit.store", "Runtime": "sessionkit.runtimes",
    "flush_mounted_drive": "sessionkit.store.local",
}


def test_the_top_level_is_a_dozen_names():
    import sessionkit as sk

    assert sorted(sk.__all__) == sorted(TOP_LEVEL)
    for name in TOP_LEVEL:
        assert getattr(sk, name) is not None
    public = {n for n in dir(sk) if not n.startswith("_")}
    submodules = {n for n in public if type(getattr(sk, n)).__name__ == "module"}
    assert public - submodules == set(TOP_LEVEL) - {"__version__"}, "dir(sessionkit) offers more than __all__"


def test_star_import_gives_the_dozen_names_and_no_deprecated_one():
    found = _fresh("import json, warnings\nwarnings.simplefilter('error')\nns = {}\n"
                   "exec('from sessionkit import *', ns)\n"
                   "print(json.dumps(sorted(n for n in ns if n != '__builtins__')))")
    assert found == sorted(TOP_LEVEL)


@pytest.mark.parametrize("name", sorted(MOVED))
def test_a_moved_name_still_imports_with_a_warning_naming_its_new_path(name):
    import importlib

    import sessionkit as sk

    new = getattr(importlib.import_module(MOVED[name]), name)
    with pytest.warns(DeprecationWarning, match=f"from {MOVED[name]} import {name}'") as caught:
        old = getattr(sk, name)
    assert old is new
    assert caught[0].filename == __file__, "the warning must point at the caller's line"
    with pytest.warns(DeprecationWarning, match=f"from {MOVED[name]} import {name}'"):
        exec(f"from sessionkit import {name}", {})


def test_import_sessionkit_itself_warns_nothing():
    warned = _fresh("import json, warnings\nwarnings.simplefilter('error')\nimport sessionkit, sessionkit.notebook\n"
                    "print(json.dumps('ok'))")
    assert warned == "ok"


def test_notebook_all_has_every_public_function_it_defines():
    """Issue 28 (9): ``notebook.run``, what the notebooks call last, was missing."""
    import inspect

    from sessionkit import notebook

    defined = {n for n, obj in vars(notebook).items() if not n.startswith("_") and
               (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == notebook.__name__}
    assert "run" in defined
    assert defined <= set(notebook.__all__), sorted(defined - set(notebook.__all__))


def test_every_name_in_an_all_exists():
    import importlib
    import pkgutil

    import sessionkit

    missing = []
    for info in pkgutil.walk_packages(sessionkit.__path__, "sessionkit."):
        if info.name == "sessionkit.__main__":
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue  # an optional dependency is not installed here
        missing += [f"{info.name}.{n}" for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not missing


def test_primary_and_backup_are_exported():
    import sessionkit as sk
    from sessionkit.handover import Backup, Primary

    assert sk.Primary is Primary and sk.Backup is Backup
    assert {"Primary", "Backup", "history"} <= set(dir(sk))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sk.nothing  # noqa: B018


def test_star_imports_do_not_shadow_builtins():
    """Issue 17: ``from sessionkit.jobs import *`` replaced the builtin ``list``."""
    import builtins
    import importlib
    import pkgutil

    import sessionkit

    modules = ["sessionkit"] + [m.name for m in pkgutil.walk_packages(sessionkit.__path__, "sessionkit.")
                                if not m.name.split(".")[-1].startswith("_")]
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue  # an optional dependency (Drive, GCS, S3, widgets) is not installed here
        shadowed = sorted(set(getattr(module, "__all__", ())) & set(dir(builtins)))
        assert not shadowed, f"{name}.__all__ would shadow builtins: {shadowed}"


def test_every_exception_class_lives_in_errors():
    """Issue 17: error classes were spread over five modules. Every public exception class
    is defined in sessionkit.errors (modules may re-export it)."""
    import importlib
    import inspect
    import pkgutil

    import sessionkit

    elsewhere = []
    for info in pkgutil.walk_packages(sessionkit.__path__, "sessionkit."):
        if info.name == "sessionkit.__main__":
            continue  # importing it runs the command line
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue  # an optional dependency is not installed here
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException) and not name.startswith("_")
                    and obj.__module__ == info.name and info.name != "sessionkit.errors"):
                elsewhere.append(f"{info.name}.{name}")
    assert not elsewhere, f"define these in sessionkit/errors.py: {elsewhere}"


def test_docs_templates_and_notebooks_use_no_moved_top_level_name():
    """What users copy from must show the new import paths (issue 28, item 9)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "templates").glob("*.py")),
             root / "notebooks" / "build.py", *sorted((root / "notebooks").glob("*.ipynb"))]
    moved = "|".join(sorted(MOVED))
    old = re.compile(rf"\b(?:sessionkit|sk)\.(?:{moved})\b|from sessionkit import [^\n]*\b(?:{moved})\b")
    found = [f"{p.relative_to(root)}: {m.group(0)}" for p in pages if p.exists() for m in old.finditer(p.read_text())]
    assert not found, found
