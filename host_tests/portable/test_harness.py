# The harness itself: the same assertions hold on both runtimes.
import ptest


def test_rand_is_identical_on_both_runtimes():
    r = ptest.Rand(7)
    seq = [r.next() for _ in range(5)]
    assert seq == [1892583, 470389255, 3882205507, 3069989445, 2854842367], seq


def test_raises_returns_the_exception():
    e = ptest.raises(ValueError, int, "x")
    assert isinstance(e, ValueError)


def test_heap_bytes_sees_a_list_allocation():
    if not ptest.MICROPYTHON:
        ptest.skip("mem_total is MicroPython-only")

    def alloc():
        return [1, 2, 3]

    assert ptest.heap_bytes(alloc, 100) >= 100 * 16


def test_assert_no_alloc_catches_allocation():
    if not ptest.MICROPYTHON:
        ptest.skip("heap_lock is MicroPython-only")

    def alloc():
        return bytearray(8)

    ptest.raises(AssertionError, ptest.assert_no_alloc, alloc, 10)
    ptest.assert_no_alloc(ptest._empty, 10)
