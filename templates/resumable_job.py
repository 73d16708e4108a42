"""A starter resumable job: copy this file and fill in items(), process() and commit().

Run it again after a crash, or on another runtime that opens the same store: it
resumes where it stopped. Run it twice: it does nothing twice.

    python resumable_job.py --store sessionkit-state --job my-job
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import sessionkit


def items() -> list[str]:
    """What to work on, in a stable order with stable ids (here: lines of a text file)."""
    return [f"item-{i:03d}" for i in range(50)]


def process(item: str) -> dict:
    """Do the work for one item and return its result (small: it goes into the output file)."""
    return {"item": item, "length": len(item)}


def commit(results_file: Path) -> int:
    """Publish the results once every item is done (here: count them)."""
    return sum(1 for _ in results_file.open())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sessionkit-state", help="store folder or URL")
    parser.add_argument("--job", default="my-job", help="the job's name in the store")
    parser.add_argument("--out", default="results.jsonl", help="where results are appended")
    args = parser.parse_args(argv)

    job = sessionkit.Job(args.store, args.job, checkpoint_every=2.0)
    out = Path(args.out)
    with job, out.open("a") as results:
        job.stage("process")
        for item in job.track(items(), key=str):  # key: the item's stable id
            results.write(json.dumps(process(item)) + "\n")
            results.flush()  # written before the loop asks for the next item (then it counts as done)
    job.stage("commit")
    count = commit(out)
    print(f"job {job.id}: {job.status}, {job.done} items done, {count} results in {out}")
    return 0 if job.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
