# Per-chunk processing: viper and plain twins agree; no allocation on the viper path.
import ptest
from lowwater import process
from lowwater._compat import VIPER

try:
    from array import array
except ImportError:  # pragma: no cover
    array = None


def _chunk(seed, n):
    return bytearray(ptest.Rand(seed).bytes(n))


def test_stats_of_a_known_chunk():
    st = process.ChunkStats(width=2)
    buf = bytearray(b"\x01\x00\x03\x00\xff\xff\x02\x00")
    st.update(buf, len(buf))
    assert list(st.out)[:4] == [1, 0xFFFF, 1 + 3 + 0xFFFF + 2, 4]
    assert st.chunks == 1
    st.update(buf, 4)
    assert st.window() == (1, 0xFFFF, ((1 + 3 + 0xFFFF + 2) // 4 + 2) // 2)
    assert st.window() == (0, 0, 0)  # a new empty window


def test_smooth_averages_neighbouring_samples():
    src = bytearray(b"\x0a\x00\x14\x00\x1e\x00")  # 10, 20, 30
    dst = bytearray(6)
    assert process.smooth(src, 6, 2, dst) == 6
    assert dst == bytearray(b"\x0a\x00\x0f\x00\x19\x00")  # 10, 15, 25
    src1 = bytearray(b"\x00\x10\x20")
    dst1 = bytearray(3)
    assert process.smooth(src1, 3, 1, dst1) == 3
    assert dst1 == bytearray(b"\x00\x08\x18")


def test_viper_and_plain_twins_agree_on_random_chunks():
    if VIPER is None:
        ptest.skip("no viper emitter on this runtime")
    a = array("i", bytes(48))  # the ChunkStats.out layout (lowwater.process)
    b = array("i", bytes(48))
    for seed in range(1, 40):
        n = ptest.Rand(seed).randint(0, 300)
        for width in (1, 2):
            src = _chunk(seed, n)
            VIPER.chunk_stats(src, n, width, a)
            process._stats_py(src, n, width, b)
            assert list(a) == list(b), (seed, width)
            d1 = bytearray(n)
            d2 = bytearray(n)
            assert VIPER.smooth(src, n, width, d1) == process._smooth_py(src, n, width, d2)
            assert d1 == d2, (seed, width)


def test_processing_allocates_nothing_on_the_viper_path():
    if VIPER is None:
        ptest.skip("no viper emitter on this runtime")
    st = process.ChunkStats(width=2)
    src = memoryview(_chunk(5, 256))
    dst = memoryview(bytearray(256))
    ptest.assert_no_alloc(lambda: st.update(src, 256), 1000, "ChunkStats.update")
    ptest.assert_no_alloc(lambda: process.smooth(src, 256, 2, dst), 1000, "smooth")


def test_end_window_closes_into_the_array_without_allocating():
    st = process.ChunkStats(width=1)
    st.update(bytearray(b"\x02\x04"), 2)
    st.update(bytearray(b"\x08"), 1)
    st.end_window()
    o = st.out
    assert (o[process.WMIN], o[process.WMAX], o[process.WMEAN]) == (2, 8, (3 + 8) // 2)
    assert st.chunks == 0
    st.end_window()  # an empty window
    assert (o[process.WMIN], o[process.WMAX], o[process.WMEAN]) == (0, 0, 0)
    if VIPER is not None:
        src = memoryview(_chunk(5, 256))
        ptest.assert_no_alloc(lambda: st.update(src, 256) or st.end_window(), 1000, "update + end_window")
