"""The one retry pause every retry uses (sessionkit.backoff)."""

import pytest

from sessionkit.backoff import Backoff


def test_pauses_double_up_to_the_cap_with_jitter_between_half_and_all():
    backoff = Backoff(0.5, 4.0)
    assert [backoff.pause(n, rand=lambda: 1.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff.pause(n, rand=lambda: 0.0) for n in range(1, 5)] == [0.25, 0.5, 1.0, 2.0]
    assert backoff.pause(10_000, rand=lambda: 1.0) == 4.0  # no overflow on long outages


@pytest.mark.parametrize("base, cap", [(-1, 1), (2, 1), (0, float("inf")), (0, float("nan"))])
def test_a_backoff_that_could_not_pause_sensibly_is_refused(base, cap):
    with pytest.raises(ValueError, match="base <= cap"):
        Backoff(base, cap)


def test_retries_count_from_one():
    with pytest.raises(ValueError, match="from 1"):
        Backoff(0.1, 1).pause(0)


def test_attempts_give_at_least_the_minimum_even_when_the_time_is_up():
    assert list(Backoff(0.0, 0.0).attempts(at_least=5, for_seconds=0)) == [0, 1, 2, 3, 4]
