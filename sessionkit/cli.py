"""The ``sessionkit`` command. Errors go to stderr as one line, without tracebacks."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import __version__
from .errors import SessionkitError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionkit",
        description="Keep notebook work alive across runtimes that end.",
    )
    parser.add_argument("--version", action="version", version=f"sessionkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="show the store's guarantees with real processes",
        description="Run the demo on a local folder store (a new temporary folder by default).",
    )
    demo.add_argument("--store", metavar="DIR", help="folder for the demo store (default: a new temp folder)")
    demo.add_argument("--workers", type=int, default=4, help="processes incrementing the counter (default 4)")
    demo.add_argument("--increments", type=int, default=250, help="increments per process (default 250)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sessionkit`` command; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from . import demo

            return 0 if demo.run(args.store, args.workers, args.increments) else 1
    except (SessionkitError, ValueError, OSError) as exc:
        print(f"sessionkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sessionkit {args.command}: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
