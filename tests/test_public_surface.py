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


@pytest.mark.parametrize("name", ["history", "plots", "config", "handover", "widgets", "notebook", "jobs", "doctor",
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


def _layers():
    """The layer table of docs/architecture.md: [{module, ...}, ...], lowest first."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.M)
    assert rows, "docs/architecture.md has no layer table"
    return [set(re.findall(r"`([\w_]+)`", modules)) for _, modules in sorted(rows, key=lambda r: int(r[0]))]


def _imports_between_modules():
    """(importer, imported) top-level module names for every relative import in the package."""
    import ast
    from pathlib import Path

    import sessionkit

    root = Path(sessionkit.__file__).parent
    found = set()
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[:-1] if path.name != "__init__.py" else parts[:-1]
        here = parts[1] if len(parts) > 1 else "__init__"
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level > 0):
                continue
            base = package[:len(package) - (node.level - 1)]
            targets = [base + node.module.split(".")] if node.module else [base + [a.name] for a in node.names]
            for target in targets:
                there = target[1] if len(target) > 1 else "__init__"
                if there != here and there != "__version__":
                    found.add((here, there))
    return found


def test_layers_import_downward_only():
    """Issue 17: cli and demo imported each other. Every module is in a layer; none imports
    a module of a higher layer, and one layer's modules never import each other in a circle."""
    layer = {name: n for n, names in enumerate(_layers()) for name in names}
    edges = _imports_between_modules()
    unplaced = sorted({m for edge in edges for m in edge} - set(layer))
    assert not unplaced, f"put these modules in a layer of docs/architecture.md: {unplaced}"
    upward = sorted((a, b) for a, b in edges if layer[b] > layer[a])
    assert not upward, f"imports from a higher layer: {upward}"
    same = {(a, b) for a, b in edges if layer[a] == layer[b]}
    for a, b in same:  # a circle through one layer shows as a path back
        reach, todo = set(), [b]
        while todo:
            node = todo.pop()
            for x, y in same:
                if x == node and y not in reach:
                    reach.add(y)
                    todo.append(y)
        assert a not in reach, f"{a} and {b} import each other (through {sorted(reach)})"


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
