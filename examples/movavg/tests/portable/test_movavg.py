# Runs on CPython, the MicroPython unix port and the 32-bit runtime (the
# lowwater pytest plugin, pytest.ini). No pytest import: plain assert, lwtest
# for skips and allocation checks, memory markers from MEMORY_MARKS.
import lwtest
from movavg import MovingAverage

MEMORY_MARKS = {
    # one call of the body allocates nothing (after one warm-up call)
    "test_update_allocates_nothing": {"lowwater_no_alloc": True},
    # a filter made, fed and dropped on every call keeps nothing behind
    "test_a_dropped_filter_leaves_nothing": {"lowwater_limit_leaks": ("16 B", 3)},
    # a 1024-sample filter (2 KB of window, made from 2 KB of zero bytes) fits in 6 KB
    "test_a_big_window_fits_in_6_kb": {"lowwater_limit_memory": "6 KB"},
}

_F = MovingAverage(8)


def test_mean_of_the_last_n():
    f = MovingAverage(4)
    assert [f.update(x) for x in (4, 8, 12, 16, 20)] == [4, 6, 8, 10, 14]
    assert f.full() and f.mean() == 14


def test_negative_samples_round_down():
    f = MovingAverage(2)
    assert f.update(-3) == -3
    assert f.update(0) == -2  # -3 // 2


def test_extremes_stay_exact():
    f = MovingAverage(4096)
    for _ in range(5000):
        m = f.update(32767)
    assert m == 32767
    f.reset()
    assert f.mean() == 0 and not f.full()


def test_window_bounds():
    lwtest.raises(ValueError, MovingAverage, 0)
    lwtest.raises(ValueError, MovingAverage, 4097)


def test_update_allocates_nothing():
    _F.update(1000)


def _feed():
    _F.update(-7)


def test_update_allocates_nothing_proved_twice():
    # heap_lock AND mem_total over 1000 calls; skips on CPython
    lwtest.assert_no_alloc(_feed)


def test_a_dropped_filter_leaves_nothing():
    f = MovingAverage(64)
    for x in range(100):
        f.update(x)


def test_a_big_window_fits_in_6_kb():
    f = MovingAverage(1024)
    f.update(1)
    assert f.mean() == 1
