"""Speed and memory bars, measured as ratios against a baseline in the same run.

``make bench`` (``python -m benchmarks``) runs every module listed in ``SUITES``
and rewrites ``docs/benchmarks.md`` with the results. A suite is a module with
``run() -> Section``; a bar that is not met makes the command exit non-zero.
"""
