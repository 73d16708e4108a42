#!/usr/bin/env bash
# Runs the test suite in an environment pinned to Colab's preinstalled versions
# (../shared/colab-runtime-pins.txt: ipywidgets 7.7.1, IPython 7.34, pandas 2.2.3, ...),
# on Python 3.13 as Colab runs when this machine has it, and fails if installing
# sessionkit would change any pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
PINS="${COLAB_PINS:-../shared/colab-runtime-pins.txt}"
[ -f "$PINS" ] || { echo "colab-env: no pins file at $PINS" >&2; exit 2; }
PY=python3
for candidate in /root/.pyenv/versions/3.13*/bin/python3 "$(command -v python3.13 || true)"; do
  if [ -x "$candidate" ]; then PY="$candidate"; break; fi
done
VENV=.venv-colab
echo "colab-env: $($PY --version) in $VENV, pins from $PINS"
if [ "${1:-}" != "--prepare" ] && [ -f "$VENV/.prepared" ] && [ "$VENV/.prepared" -nt setup.cfg ] && [ "$VENV/.prepared" -nt "$PINS" ]; then
  echo "colab-env: prepared and checked by .ci/colab-env.sh --prepare"
  exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install --quiet -r "$PINS"
$PIP freeze --all | sort > "$VENV/before.txt"
$PIP install --quiet -e ".[gdrive,login]"      # what a Colab user's install does (Drive and sessionkit login too)
$PIP freeze --all | sort > "$VENV/after.txt"
changed=$(grep -v '^#' "$PINS" | sed 's/==.*//' | while read -r name; do
  [ -n "$name" ] || continue
  b=$(grep -i "^${name}==" "$VENV/before.txt" || true)
  a=$(grep -i "^${name}==" "$VENV/after.txt" || true)
  [ "$b" = "$a" ] || echo "  $name: ${b:-missing} -> ${a:-missing}"
done)
if [ -n "$changed" ]; then
  echo "colab-env: installing sessionkit changed Colab's pinned versions:" >&2
  echo "$changed" >&2
  exit 1
fi
echo "colab-env: installing sessionkit changed no pinned version"
$PIP install --quiet -c "$PINS" -e ".[dev]"     # test tools, held to the same pins
touch "$VENV/.prepared"
# --prepare: build and check the environment only (.ci/run does it while `make test` runs).
[ "${1:-}" = "--prepare" ] && exit 0
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
