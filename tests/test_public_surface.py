"""What ``import sessionkit as sk`` offers: every documented submodule by attribute, loaded
on first use, and nothing heavy at import time."""

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


@pytest.mark.parametrize("name", ["history", "plots", "config", "handover", "widgets", "notebook", "jobs",
                                  "lease", "sessions", "runtimes", "notify", "store"])
def test_documented_submodules_are_attributes(name):
    found = _fresh(f"import json, sessionkit as sk; m = sk.{name}; print(json.dumps(m.__name__))")
    assert found == f"sessionkit.{name}"


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
