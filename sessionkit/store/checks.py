"""What a check of a store's guarantees answers: a ``Check`` record with its verdict.

``sessionkit.doctor`` runs checks on a live store and gathers them in a report; a
backend adds its own through ``Store.doctor_checks()`` (Drive: its unproven behaviours).
The records live here, in the store layer, so a backend can return them without
importing anything above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CHECK_PREFIX", "Check", "Figure", "HOLDS", "NOT_HOLDS", "UNKNOWN", "VERDICTS"]

HOLDS = "holds"
NOT_HOLDS = "does not hold"
UNKNOWN = "could not tell"
#: the three answers a check can give
VERDICTS = (HOLDS, NOT_HOLDS, UNKNOWN)

#: every key a check writes starts with this; the check removes what it wrote
CHECK_PREFIX = "doctor/"


@dataclass(frozen=True)
class Figure:
    """One measured number: ``Figure("median put", 41.2, "ms")``."""

    name: str
    value: float
    unit: str

    def __str__(self) -> str:
        return f"{self.name} {self.value:.3g} {self.unit}"


@dataclass(frozen=True)
class Check:
    """The answer to one question about a live store.

    ``verdict`` is ``HOLDS``, ``NOT_HOLDS`` or ``UNKNOWN`` (the store failed or answered
    something that settles neither way); ``needed`` says whether sessionkit's safety
    rests on it (a needed check that does not hold makes the store unfit); ``detail``
    says what was seen, in a sentence; ``figures`` are what was measured on the way.
    """

    name: str
    verdict: str
    detail: str
    needed: bool
    figures: tuple[Figure, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"check {self.name!r}: verdict must be one of {', '.join(map(repr, VERDICTS))}, "
                             f"not {self.verdict!r}")
        if not all(isinstance(f, Figure) for f in self.figures):
            raise TypeError(f"check {self.name!r}: figures must be Figure records")

    @property
    def failed(self) -> bool:
        """A needed check that does not hold."""
        return self.needed and self.verdict == NOT_HOLDS
