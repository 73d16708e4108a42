"""The notebooks as Colab shows them: the install cell is a form titled "Install sessionkit",
each parameter a typed ``# @param`` field (a dropdown where it has choices) that papermill
still reads, and each notebook opens with its three steps.

Colab's form syntax (``# @title T { display-mode: "form" }``, ``NAME = value  # @param
{type:"string"}``, ``# @param ["a", "b"]`` for a dropdown) is parsed here as Colab reads
it: the annotation after ``# @param`` on an assignment line. The values' types are checked
against the field types, and the dropdowns' choices against what sessionkit accepts.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from sessionkit.runtimes import PRESETS

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("primary", "backup", "ingest", "history")
FIELD = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)\s*=\s*(?P<value>.+?)\s*#\s*@param\s*(?P<spec>.+)$")
TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,)}


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def parameters_cell(nb) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    return cells[0]


def fields(source: str) -> dict[str, tuple[object, object]]:
    """Each form field: name -> (its value, its annotation: a type name or a list of choices)."""
    found = {}
    for line in source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = FIELD.match(line)
        assert match, f"a parameter without a form field: {line!r}"
        spec = match["spec"].strip()
        if spec.startswith("["):
            annotation = json.loads(spec)
        else:
            kind = re.fullmatch(r'\{\s*type\s*:\s*"(\w+)"\s*\}', spec)
            assert kind, f"not a Colab field type: {spec!r}"
            annotation = kind[1]
        found[match["name"]] = (ast.literal_eval(match["value"]), annotation)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_is_a_typed_form_field(name):
    for field, (value, annotation) in fields(parameters_cell(read(name)).source).items():
        if isinstance(annotation, list):
            assert value in annotation, f"{field}'s default {value!r} is not one of its choices"
        elif annotation != "raw":
            assert annotation in TYPES, (field, annotation)
            assert isinstance(value, TYPES[annotation]) and not (annotation != "boolean" and isinstance(value, bool)), \
                f"{field} = {value!r} is not a {annotation}"


def test_the_choices_are_what_sessionkit_accepts():
    for name in ("primary", "backup"):
        form = fields(parameters_cell(read(name)).source)
        assert form["RUNTIME"][1] == list(PRESETS), name
        assert form["STORE"][1] == "string" and form["CREDENTIALS"][1] == "string"
    assert fields(parameters_cell(read("backup")).source)["APPROVAL"][1] == ["auto", "required"]


@pytest.mark.parametrize("name", NAMES)
def test_papermill_reads_every_form_field(name):
    papermill = pytest.importorskip("papermill")
    seen = papermill.inspect_notebook(str(NOTEBOOKS / f"{name}.ipynb"))
    assert set(seen) == set(fields(parameters_cell(read(name)).source))


@pytest.mark.parametrize("name", NAMES)
def test_the_install_cell_is_a_form_and_the_notebook_opens_with_three_steps(name):
    nb = read(name)
    install = nb.cells[1].source.splitlines()
    assert install[0] == '# @title Install sessionkit { display-mode: "form" }'
    assert any(FIELD.match(line) and line.startswith("SESSIONKIT_SOURCE") for line in install)
    assert parameters_cell(nb).source.startswith("# @title Parameters")
    top = nb.cells[0]
    assert top.cell_type == "markdown"
    steps = [line for line in top.source.splitlines() if re.match(r"^\d\. ", line)]
    assert [s[:2] for s in steps] == ["1.", "2.", "3."], top.source
    assert len(top.source.splitlines()) <= 12, "the top cell stays short"
