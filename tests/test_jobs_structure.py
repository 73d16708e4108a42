"""The jobs engine's structure (issue 28 item 1): job, loop, outcome and mapping import
one another in one direction only, deferred and TYPE_CHECKING imports included, and
none of them (nor handover/primary.py) reaches into a Job's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

JOBS = Path(__file__).resolve().parent.parent / "sessionkit" / "jobs"
ENGINE = ("job", "jobrecord", "loop", "mapping", "outcome", "status", "views", "userstate")


def imported_siblings(name: str) -> set[str]:
    """Every jobs module ``jobs/<name>.py`` imports, anywhere in the file."""
    tree = ast.parse((JOBS / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sessionkit.jobs."):
            found.add(node.module.split(".")[2])
    return found & {p.stem for p in JOBS.glob("*.py")}


def test_the_engine_modules_import_in_one_direction_deferred_imports_included():
    graph = {name: imported_siblings(name) for name in ENGINE}

    def reaches(start: str, target: str, seen: frozenset = frozenset()) -> bool:
        return any(n == target or (n in graph and n not in seen and reaches(n, target, seen | {n}))
                   for n in graph.get(start, ()))

    cycles = [name for name in graph if reaches(name, name)]
    assert cycles == []
    assert "job" not in graph["loop"] | graph["outcome"] | graph["mapping"] | graph["jobrecord"]


@pytest.mark.parametrize("path", ["jobs/loop.py", "jobs/mapping.py", "jobs/outcome.py", "handover/primary.py",
                                  "integrations/guard.py"])
def test_no_module_reads_a_jobs_private_names(path):
    tree = ast.parse((JOBS.parent / path).read_text())
    private = [f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
               and isinstance(node.value, ast.Name) and node.value.id in ("job", "run")]
    private += [f"self.job.{node.attr}" for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and isinstance(node.value, ast.Attribute) and node.value.attr == "job"]
    assert private == []


def test_the_jobs_layer_names_no_view_module():
    for path in JOBS.glob("*.py"):
        assert "widgets" not in path.read_text(), f"{path.name} names the widgets package"


def test_display_true_shows_the_view_registered_from_above(tmp_path):
    from sessionkit import Job
    from sessionkit.clock import FakeClock
    from sessionkit.jobs import views
    from sessionkit.jobs.progress import Progress

    class View:
        def __init__(self, progress):
            self.updates, self.closed = [progress], False

        def update(self, progress):
            self.updates.append(progress)

        def close(self):
            self.closed = True

    made = []
    previous = views.register_view(lambda progress: made.append(View(progress)) or made[-1])
    try:
        job = Job(str(tmp_path / "s"), "v", clock=FakeClock())
        assert list(job.track(range(3))) == [0, 1, 2]
    finally:
        views.register_view(previous)
    assert len(made) == 1 and made[0].closed
    assert all(isinstance(p, Progress) for p in made[0].updates) and made[0].updates[-1].done == 3
    assert previous is not None, "sessionkit registers its own view when imported"
    with pytest.raises(TypeError, match="a view factory is a function"):
        views.register_view("sessionkit.widgets:auto_view")
