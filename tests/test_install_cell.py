"""The notebooks' install cell, run by a real kernel in a fresh environment whose package
source offers an impostor ``sessionkit`` (the PyPI name belongs to an unrelated project).

The fresh environment is a new venv that sees the test environment's packages except
sessionkit (so no download is needed), with pip pointed at a local folder that offers
only the impostor, and no index: nothing is fetched from anywhere. The impostor leaves a
marker file if it is ever imported, so "never installed, never executed" is checked.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
import nbformat  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def install_cell() -> str:
    sys.path.insert(0, str(ROOT / "notebooks"))
    try:
        import build
    finally:
        sys.path.pop(0)
    cells = {name: getattr(build, name)().cells[1].source for name in ("primary", "backup", "ingest", "history")}
    assert len(set(cells.values())) == 1, "every notebook has the same install cell"
    return cells["primary"]


def impostor_wheel(folder: Path) -> Path:
    """A wheel named sessionkit 99.0 whose import writes the file $IMPOSTOR_MARKER."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sessionkit-99.0-py3-none-any.whl"
    info = "sessionkit-99.0.dist-info"
    files = {
        "sessionkit/__init__.py": "import os\nopen(os.environ['IMPOSTOR_MARKER'], 'w').write('ran')\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: sessionkit\nVersion: 99.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/top_level.txt": "sessionkit\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n")
    return path


def fresh_environment(tmp: Path) -> tuple[Path, Path]:
    """A new venv (python, its site-packages) that sees this environment's packages but
    not sessionkit, and a kernelspec 'fresh' for it under tmp/jupyter."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = tmp / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if "sessionkit" in name or name.endswith(".pth") or name.startswith(("pip", "__editable__")):
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "zz-test-deps.pth").write_text(str(deps) + "\n")
    spec = tmp / "jupyter" / "kernels" / "fresh"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [str(python), "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"],
                                                  "display_name": "fresh", "language": "python"}))
    return python, site


@pytest.fixture
def env(tmp_path, monkeypatch):
    python, site = fresh_environment(tmp_path)
    links = tmp_path / "index"
    impostor_wheel(links)
    marker = tmp_path / "IMPOSTOR-RAN"
    for name, value in {"JUPYTER_PATH": str(tmp_path / "jupyter"), "PIP_NO_INDEX": "1",
                        "PIP_FIND_LINKS": str(links), "PIP_NO_BUILD_ISOLATION": "0",  # pip reads "0" as --no-build-isolation
                        "IMPOSTOR_MARKER": str(marker)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SESSIONKIT_SOURCE", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    return {"python": python, "site": site, "links": links, "marker": marker, "tmp": tmp_path}


def run_cells(cwd: Path, *sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = nbclient.NotebookClient(nb, kernel_name="fresh", timeout=300, allow_errors=True,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def errors(nb) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in c.outputs if o.output_type == "error"]


def text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.outputs)


def installed(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json", "--path",
                          subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                          "['purelib'])"], capture_output=True, text=True).stdout.strip()],
                         capture_output=True, text=True, check=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


WHICH = ("import importlib.metadata as m, sessionkit\n"
         "print('module', sessionkit.__file__)\nprint('dist', m.version('sessionkit-runtime'))")


def test_outside_a_checkout_without_a_source_it_stops_and_installs_nothing(env):
    outside = env["tmp"] / "elsewhere"
    outside.mkdir()
    nb = run_cells(outside, install_cell())
    assert any("set SESSIONKIT_SOURCE" in e for e in errors(nb)), errors(nb)
    assert "sessionkit" not in installed(env["python"]) and "sessionkit-runtime" not in installed(env["python"])
    assert not env["marker"].exists(), "the impostor ran"


def test_from_a_checkout_it_installs_the_checkout_not_the_impostor(env):
    nb = run_cells(ROOT / "notebooks", install_cell(), WHICH)
    assert errors(nb) == []
    out = text(nb)
    assert f"module {env['site']}" in out, out  # installed into the fresh environment
    assert "dist 0.1.0" in out
    packages = installed(env["python"])
    assert "sessionkit-runtime" in packages and "sessionkit" not in packages
    assert not env["marker"].exists(), "the impostor ran"


def test_sessionkit_source_names_what_to_install(env, monkeypatch):
    outside = env["tmp"] / "elsewhere"
    outside.mkdir()
    monkeypatch.setenv("SESSIONKIT_SOURCE", str(ROOT))
    nb = run_cells(outside, install_cell(), WHICH)
    assert errors(nb) == [] and "dist 0.1.0" in text(nb)
    assert not env["marker"].exists()


def test_an_impostor_already_installed_is_refused_and_never_imported(env):
    subprocess.run([str(env["python"]), "-m", "pip", "install", "-q", "--no-deps",
                    str(next(env["links"].glob("*.whl")))], check=True)
    nb = run_cells(ROOT / "notebooks", install_cell())
    assert any("['sessionkit'] (not sessionkit-runtime)" in e for e in errors(nb)), errors(nb)
    assert not env["marker"].exists(), "the impostor ran"
    assert "sessionkit-runtime" not in installed(env["python"])


def test_an_unreachable_source_fails_with_one_line_then_pips_last_lines(env, monkeypatch):
    """Issue 31 / 26 (9): pip ran silently, then a raw CalledProcessError traceback."""
    outside = env["tmp"] / "elsewhere"
    outside.mkdir()
    source = "http://127.0.0.1:9/sessionkit_runtime-0.1.0-py3-none-any.whl"  # port 9: nothing listens
    monkeypatch.setenv("SESSIONKIT_SOURCE", source)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "5")
    nb = run_cells(outside, install_cell())
    cell = nb.cells[0]
    said = [o["text"] for o in cell.outputs if o.output_type == "stream"]
    assert said and said[0].startswith(f"Installing sessionkit-runtime from {source} with pip"), said
    failures = [o for o in cell.outputs if o.output_type == "error"]
    assert len(failures) == 1 and failures[0]["ename"] == "InstallFailed"
    shown = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in failures[0]["traceback"]]
    assert shown[0].startswith(f"pip could not install sessionkit-runtime from {source} (exit 1): set SESSIONKIT_SOURCE "
                               f"to a source this runtime can reach"), shown[0]
    assert shown[0].endswith("pip's last lines:") and len(shown) >= 2  # the details after the line
    assert any("127.0.0.1" in line for line in shown[1:]), shown
    text_shown = "\n".join(shown)
    assert "Traceback" not in text_shown and "CalledProcessError" not in text_shown and 'File "' not in text_shown
    assert "sessionkit-runtime" not in installed(env["python"]) and not env["marker"].exists()
