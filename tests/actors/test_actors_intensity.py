"""RestartIntensity is pure: no trio, time is whatever `now` the test passes."""

from __future__ import annotations

import pytest

from actors import RestartIntensity


@pytest.mark.parametrize("intensity", [0, 1, 3, 10])
def test_gives_up_on_the_failure_after_intensity_within_the_period(intensity: int) -> None:
    window = RestartIntensity(intensity, period=5.0)
    verdicts = [window.record(0.1 * n) for n in range(intensity + 1)]
    assert verdicts == [True] * intensity + [False]
    assert window.count == intensity + 1


@pytest.mark.parametrize("intensity", [1, 3])
def test_failures_spaced_wider_than_the_period_never_give_up(intensity: int) -> None:
    window = RestartIntensity(intensity, period=5.0)
    assert all(window.record(5.5 * n) for n in range(100))
    assert window.count == 1


def test_a_stamp_exactly_one_period_old_still_counts() -> None:
    window = RestartIntensity(1, period=5.0)
    assert window.record(10.0)
    assert not window.record(15.0)
    assert window.count == 2


def test_old_stamps_leave_the_window_as_time_passes() -> None:
    window = RestartIntensity(2, period=10.0)
    assert window.record(0.0)
    assert window.record(4.0)
    # At 10.5 the stamp from 0.0 is older than the period; 4.0 and 10.5 remain.
    assert window.record(10.5)
    assert window.count == 2
    assert not window.record(11.0)


def test_count_is_zero_before_any_failure() -> None:
    assert RestartIntensity(3, 5.0).count == 0


@pytest.mark.parametrize(
    ("intensity", "period", "message"),
    [(-1, 5.0, "intensity must be >= 0"), (1, 0.0, "period must be > 0")],
)
def test_rejects_nonsense_settings(intensity: int, period: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RestartIntensity(intensity, period)
