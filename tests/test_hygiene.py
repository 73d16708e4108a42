"""The tests' own rules (issue 28, item 11), read from their source: no test reads a private
attribute of a sessionkit object (it tests public behaviour), and no test module imports
another test module (what two test modules share is a helper module or a fixture in
conftest.py).

As in tests/test_layers.py, each check compares what it finds with its ``KNOWN_*`` list
exactly: a new offender fails it, and so does a listed one that is gone (delete it then).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import sessionkit

from support.allowlist import check

TESTS = Path(__file__).resolve().parent
PACKAGE = Path(sessionkit.__file__).resolve().parent


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined(tree: ast.AST, *, on_self_only: bool = False) -> set[str]:
    """Private names a source file defines: functions, classes, attributes it assigns
    (``on_self_only``: only ``self._x = ...``, since a test setting ``obj._x`` on one of our
    objects is as bad as reading it), globals and parameters."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            if not on_self_only or (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if _private(n)}


def _sessionkit_private_names() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        names |= _defined(ast.parse(path.read_text(), str(path)))
    return names


def _test_sources() -> dict[str, ast.Module]:
    """Every Python file under tests/ (test modules and their helpers), by path from tests/."""
    return {str(p.relative_to(TESTS)): ast.parse(p.read_text(), str(p)) for p in sorted(TESTS.rglob("*.py"))
            if "standin" not in p.parts[len(TESTS.parts)] and p.name != Path(__file__).name}


def private_reads() -> list[str]:
    """``x._name`` (read or written) in a test file, where ``_name`` is private to sessionkit (some sessionkit
    module defines it) and the test file does not define it itself, and ``from sessionkit...
    import _name``; as "file: expression"."""
    ours = _sessionkit_private_names()
    found = set()
    for name, tree in _test_sources().items():
        own = _defined(tree, on_self_only=True)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ours and node.attr not in own:
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                found.add(f"{name}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sessionkit"):
                found |= {f"{name}: from {node.module} import {a.name}" for a in node.names if _private(a.name)}
    return sorted(found)


def imports_of_test_modules() -> list[str]:
    found = set()
    for name, tree in _test_sources().items():
        for node in ast.walk(tree):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                       [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            found |= {f"{name} imports {t}" for t in targets if re.match(r"(tests\.)?test_\w+$", t)}
    return sorted(found)


#: Private reads on main when this check was written; other engineers' areas are replacing
#: them by public behaviour. Delete entries as they go (the test names those gone).
KNOWN_PRIVATE_READS = {
    # engine (items 1, 10: Job's manifest ``_m`` and its checkpointer become public or go)
    "test_jobs.py: job._checkpointer",
    "test_jobs.py: from sessionkit.jobs.doneset import _decode_keys",
    "test_jobs.py: from sessionkit.jobs.doneset import _encode",
    # saves (issue 30 moves the blobs out of Job)
    # sched (item 5: the writer thread through the scheduler)
    "test_jobs_writer.py: stale._writer",
    "test_templates.py: events._listeners",
    # primary / views2: the countdown page's start and wall clock, set by hand
    "test_countdown_browser.py: s._mono_start",
    "test_countdown_browser.py: views._wall_ms",
    # the object stores' write/read hooks, driven directly to check their preconditions
    "test_object_stores.py: sessionkit.store.objects._PreconditionFailed",
    "test_object_stores.py: store._name",
    "test_object_stores.py: store._read",
    "test_object_stores.py: store._write",
    "test_real_drive.py: real._http_factory",
}

#: Test modules importing test modules on main when this check was written: what they share
#: belongs in a helper module (tests/support/) or conftest.py.
KNOWN_TEST_IMPORTS: set[str] = set()


def test_no_test_reads_a_private_attribute_of_a_sessionkit_object():
    check(private_reads(), KNOWN_PRIVATE_READS, "KNOWN_PRIVATE_READS",
          "these tests use sessionkit's private names (test public behaviour instead)")


def test_no_test_module_imports_another_test_module():
    check(imports_of_test_modules(), KNOWN_TEST_IMPORTS, "KNOWN_TEST_IMPORTS",
          "move what these share into tests/support/ or conftest.py")
