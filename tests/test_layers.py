"""How sessionkit's modules depend on each other, read from their source (issue 28, items 1 and 7).

Every import counts: a module's top-level imports, the deferred ones inside functions, and
the imports by string (``importlib.import_module("sessionkit.x")`` and ``"pkg.mod:attr"``
strings, which some loader resolves later), and those under ``if TYPE_CHECKING:``: they
never run, but a module that needs the type of one that imports it is one idea split over
two files (job.py, loop.py and outcome.py, issue 28 item 1), and a type from a higher layer
is an upward dependency all the same. Where a type is truly needed, a ``Protocol`` in the
lower module says what it uses.

Each test compares what it finds with its ``KNOWN_*`` allowlist, exactly: a new offender
fails it, and so does an allowlisted offender that is gone (delete it from the list then,
so the list cannot go stale). The lists hold what main had when these tests were written;
they are meant to be emptied as the offenders are fixed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import sessionkit

from support.allowlist import check

ROOT = Path(sessionkit.__file__).resolve().parent
ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"


# ----------------------------------------------------------------------------- the source

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, level: int, name: Optional[str]) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


@dataclass(frozen=True)
class Import:
    importer: str  # sessionkit.jobs.job
    imported: str  # sessionkit.jobs.outcome: a module of the package
    line: int
    how: str  # "import", "deferred" (inside a function), "type" (under TYPE_CHECKING), "string"

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} -> {self.imported} ({self.how})"


def _target(name: str) -> Optional[str]:
    """The sessionkit module ``name`` (a module or a name in one) refers to, or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def _function_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


STRING_IMPORT = re.compile(r"^(sessionkit(?:\.\w+)*):\w+(?:\.\w+)*$")  # "pkg.mod:attr"
IMPORT_CALLS = {"import_module", "__import__", "resolve_name", "find_spec"}


def _string_imports(module: str, tree: ast.Module) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found = STRING_IMPORT.match(node.value.strip())
            if found:
                yield found.group(1), node.lineno
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called in IMPORT_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                name = first.value.split(":")[0]
                if name.startswith("."):  # import_module(".x", "sessionkit") or (".x", __package__)
                    dots = len(name) - len(name.lstrip("."))
                    name = _resolve(module, dots, name.lstrip(".") or None)
                yield name, node.lineno


def imports() -> list[Import]:
    """Every import of a sessionkit module by another sessionkit module."""
    found = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        typed, deferred = _type_checking_lines(tree), _function_lines(tree)
        named: list[tuple[str, int, str]] = []
        for node in ast.walk(tree):
            how = "type" if node_line(node) in typed else "deferred" if node_line(node) in deferred else "import"
            if isinstance(node, ast.Import):
                named += [(alias.name, node.lineno, how) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, node.level, node.module)
                # ``from package import submodule`` imports the submodule, ``from module import name`` the module
                named += [((f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base), node.lineno, how)
                          for a in node.names]
        named += [(name, line, "string") for name, line in _string_imports(module, tree)]
        for name, line, how in named:
            target = _target(name)
            if target is not None and target != module:
                found.add(Import(module, target, line, how))
    return sorted(found, key=str)


def node_line(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)


# ----------------------------------------------------------------------------- layers

def _top(module: str) -> str:
    """The name docs/architecture.md's layer table knows a module by: its top-level part."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layers() -> dict[str, int]:
    """The layer table of docs/architecture.md: {top-level module: layer}."""
    text = ARCHITECTURE.read_text()
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.M)
    assert rows, "docs/architecture.md has no layer table"
    return {name: int(n) for n, names in rows for name in re.findall(r"`([\w_]+)`", names)}


#: Upward imports on main when this test was written, as "importer -> imported (how)" of
#: top-level modules. Remove a line when its import is gone (the test says which).
KNOWN_UPWARD: set[str] = set()


def test_every_module_is_in_a_layer():
    layer = layers()
    unplaced = sorted({_top(m) for m in MODULES} - set(layer))
    assert not unplaced, f"put these modules in a layer of docs/architecture.md: {unplaced}"


def test_layers_import_downward_only():
    """Issue 17: cli and demo imported each other; issue 28: jobs imported widgets by a string.
    No module imports one of a higher layer, by any kind of import (see the module docstring),
    and the top-level modules of one layer never import each other in a circle."""
    layer = layers()
    edges = {(_top(i.importer), _top(i.imported), i.how): i for i in imports()
             if _top(i.importer) != _top(i.imported)}
    upward = {f"{a} -> {b} ({how})": i for (a, b, how), i in edges.items()
              if layer.get(b, -1) > layer.get(a, -1)}
    check(upward, KNOWN_UPWARD, "KNOWN_UPWARD", "imports from a higher layer", lambda k: [str(upward[k])])
    same = {(a, b) for a, b, _ in edges if layer.get(a) == layer.get(b)}
    for a, b in same:  # a circle through one layer shows as a path back
        reach, todo = set(), [b]
        while todo:
            node = todo.pop()
            for x, y in same:
                if x == node and y not in reach:
                    reach.add(y)
                    todo.append(y)
        assert a not in reach, f"{a} and {b} import each other (through {sorted(reach)})"


# ----------------------------------------------------------------------------- cycles

def cyclic_imports() -> list[str]:
    """Every import that closes a circle: "a -> b" where ``b`` leads back to ``a`` (each edge
    of the circle is one, so fixing part of a circle shows as part of the list gone)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in imports():
        graph[i.importer].add(i.imported)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    return sorted(f"{a} -> {b}" for a in graph for b in graph[a] if a in reach(b))


#: Imports that close a circle on main when this test was written (deferred, string and
#: type-only imports hid them from a test of top-level imports). Remove entries as they go.
KNOWN_CYCLES: set[str] = {
    # widgets/session.py imports in_notebook from the package that imports it (deferred)
    "sessionkit.widgets -> sessionkit.widgets.session",
    "sessionkit.widgets.session -> sessionkit.widgets",
    # store/gdrive.py runs the probe (deferred), which takes the store's type (type-only)
    "sessionkit.store.gdrive -> sessionkit.store.gdrive_probe",
    "sessionkit.store.gdrive_probe -> sessionkit.store.gdrive",
}


def test_no_import_cycle_between_modules():
    """Issue 28 (1): job.py, loop.py and outcome.py imported each other through deferred
    imports, which the layer test (one layer may import itself) could not see."""
    check(cyclic_imports(), KNOWN_CYCLES, "KNOWN_CYCLES", "these imports close a circle of modules importing "
          "each other (deferred, string and type-only imports included; break it, e.g. by passing in what is needed)")


# ----------------------------------------------------------------------------- private names

#: Attributes with a leading underscore that are public API of the standard library
#: (namedtuple's methods, sys._getframe, os._exit) and so not another module's private name.
PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make", "_field_defaults", "_getframe", "_exit",
                      "_current_frames"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_here(tree: ast.Module) -> set[str]:
    """Private names this module defines itself: functions, classes, attributes it assigns
    (``self._x = ...``, ``_x: int``), parameters and module globals."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.keyword) and node.arg:
            names.add(node.arg)  # dataclasses.field(...), __slots__ spelled as keywords
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
            names.add(node.value)  # __slots__ = ("_x",), getattr(self, "_x")
    return {n for n in names if _private(n)}


def private_uses() -> list[str]:
    """Every use of another module's private name by a sessionkit module, as
    "module: what (line)": ``from x import _y``, ``x._y`` where ``x`` is an imported
    sessionkit module, and ``obj._y`` where this module defines no ``_y`` itself (so
    ``_y`` belongs to some other module's class: ``job._interrupted`` in outcome.py)."""
    found = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        own = _defined_here(tree)
        outside: set[str] = set()  # names bound to modules outside sessionkit (sys, os, signal)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(module, node.level, node.module)
                for alias in node.names:
                    if _target(base) is not None and _private(alias.name):
                        found.add(f"{module}: from {base} import {alias.name} (line {node.lineno})")
                    if _target(base) is None:
                        outside.add(alias.asname or alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if _target(alias.name) is None:
                        outside.add(alias.asname or alias.name.split(".")[0])
        own_from_imports = own - {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                                  for a in n.names}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)) or node.attr in PUBLIC_UNDERSCORED:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
                continue
            if isinstance(owner, ast.Name) and owner.id in outside:
                continue  # sys._getframe and the like: the standard library's business
            if node.attr in own_from_imports:
                continue  # this module's own private attribute, on another instance of its class
            found.add(f"{module}: {ast.unparse(node)} (line {node.lineno})")
    return sorted(found)


def _without_line(use: str) -> str:
    return re.sub(r" \(line \d+\)$", "", use)


#: Uses of another module's private names on main when this test was written, without their
#: line numbers (lines move). Remove entries as they are fixed; the test says which are gone.
KNOWN_PRIVATE_USES: set[str] = {
    # the training guard checks a blob name with Job's private check (saves/engine)
    "sessionkit.integrations.guard: Job._check_blob_name",
    # the object stores share objects.py's private exception
    "sessionkit.store.gcs: from sessionkit.store.objects import _PreconditionFailed",
    "sessionkit.store.s3: from sessionkit.store.objects import _PreconditionFailed",
    # google-cloud-storage's private connection (not ours, but private all the same)
    "sessionkit.store.gcs: self._client._connection",
}


def test_no_module_uses_another_modules_private_names():
    """Issue 28 (1): jobs/loop.py called 13 private parts of Job, outcome.py and
    handover/primary.py read ``job._interrupted`` and ``job._active``."""
    uses = private_uses()
    check({_without_line(use) for use in uses}, KNOWN_PRIVATE_USES, "KNOWN_PRIVATE_USES",
          "these modules use another module's private names (offer a public method or property instead)",
          lambda offender: [use for use in uses if _without_line(use) == offender])
