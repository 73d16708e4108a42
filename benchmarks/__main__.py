"""``python -m benchmarks [SUITE ...]``: run the suites, rewrite docs/benchmarks.md."""

from __future__ import annotations

import importlib
import sys
from datetime import datetime, timezone
from pathlib import Path

from .report import machine

SUITES = ["bench_store", "bench_jobs", "bench_map", "bench_remote", "bench_handover", "bench_history", "bench_training"]
OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def main(argv: list[str]) -> int:
    names = argv or SUITES
    sections = []
    for name in names:
        print(f"running {name} ...", flush=True)
        section = importlib.import_module(f"benchmarks.{name}").run()
        print(section.markdown(), flush=True)
        sections.append(section)
    failed = [b for s in sections for b in s.bars if not b.holds]
    if not argv:  # only a full run rewrites the page
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = ["# Benchmarks", "", f"Written by `make bench` on {stamp}; {machine()}.",
                "Figures are ratios against a baseline measured in the same run where a bar "
                "says so; absolute times depend on the machine.", ""]
        text += [s.markdown() for s in sections]
        OUT.write_text("\n".join(text))
        print(f"wrote {OUT}")
    for b in failed:
        print(f"BAR NOT MET: {b.name}: {b.value:.3g} {b.unit} > {b.limit:g}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
