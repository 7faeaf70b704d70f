"""The restart backoff of `inlet up`'s supervisor (the restarts themselves: test_inlet_up)."""

from inlet.supervise import Backoff


def test_restarts_back_off_doubling_up_to_a_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, stable_after=60.0)
    assert [backoff.crashed(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_stable_run_resets_the_delay_and_the_crash_count() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, stable_after=60.0)
    backoff.crashed(1.0)
    backoff.crashed(1.0)
    assert backoff.crashed(61.0) == 0.5 and backoff.crashes == 1


def test_a_crash_loop_is_flagged_once() -> None:
    backoff = Backoff(crash_loop=3)
    flags = []
    for _ in range(5):
        backoff.crashed(0.1)
        flags.append(backoff.looping)
    assert flags == [False, False, True, False, False]
