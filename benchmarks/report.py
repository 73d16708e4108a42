"""The result of a benchmark suite and how it is written to docs/benchmarks.md."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Bar:
    """One measured bar: what, the figure, the limit, and whether it holds."""

    name: str
    value: float
    unit: str
    limit: Optional[float] = None  # value must be <= limit when given
    note: str = ""

    @property
    def holds(self) -> bool:
        return self.limit is None or self.value <= self.limit


@dataclass
class Section:
    title: str
    intro: str
    tables: list[list[list[str]]] = field(default_factory=list)  # each: header row, then rows
    bars: list[Bar] = field(default_factory=list)

    def table(self, *header: str) -> list[list[str]]:
        """Start a table with ``header``; append rows to the list returned."""
        rows = [list(header)]
        self.tables.append(rows)
        return rows

    def markdown(self) -> str:
        out = [f"## {self.title}", "", self.intro, ""]
        for table in self.tables:
            out.append("| " + " | ".join(table[0]) + " |")
            out.append("|" + " --- |" * len(table[0]))
            out.extend("| " + " | ".join(row) + " |" for row in table[1:])
            out.append("")
        if self.bars:
            out.append("| bar | measured | limit | holds |")
            out.append("| --- | --- | --- | --- |")
            for b in self.bars:
                limit = "-" if b.limit is None else f"<= {b.limit:g} {b.unit}"
                out.append(f"| {b.name} | {b.value:.3g} {b.unit} | {limit} | "
                           f"{'yes' if b.holds else '**no**'} |")
            out.append("")
        return "\n".join(out)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    import os

    return (f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} cores")
