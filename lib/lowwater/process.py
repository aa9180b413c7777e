# lowwater.process: per-chunk processing (min/max/sum/count of samples) with
# no allocation: results land in a preallocated array('i').
from array import array

from lowwater._compat import VIPER, const

# Slots of ChunkStats.out (one array('i'), shared with lowwater._viper):
# the last chunk's min, max, sum, samples; then the open window's min, max, sum
# of chunk means, samples and chunks; then the last closed window's min, max, mean.
MIN = const(0)
MAX = const(1)
SUM = const(2)
COUNT = const(3)
_WMIN = const(4)
_WMAX = const(5)
_WSUM = const(6)
_WCNT = const(7)
WCHUNKS = const(8)
WMIN = const(9)
WMAX = const(10)
WMEAN = const(11)
_SLOTS = const(12)


def _stats_py(src, n, width, out):
    # Plain-Python twin of _viper.chunk_stats: the chunk into out[0:4], then
    # into the window (out[4:9]). Its frame goes on the heap on the unix port
    # (too many locals for the VM's stack state); used where viper is absent.
    lo = 0xFFFF
    hi = 0
    s = 0
    if width == 2:
        for i in range(0, n - 1, 2):
            v = src[i] | (src[i + 1] << 8)
            s += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        out[3] = n >> 1
    else:
        for i in range(n):
            v = src[i]
            s += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        out[3] = n
    out[0] = lo if out[3] else 0
    out[1] = hi
    out[2] = s
    _window_py(out)


def _window_py(out):
    if out[3]:
        if out[0] < out[4]:
            out[4] = out[0]
        if out[1] > out[5]:
            out[5] = out[1]
        out[6] += out[2] // out[3]
        out[7] += out[3]
    out[8] += 1


_stats = getattr(VIPER, "chunk_stats", None) or _stats_py


class ChunkStats:
    """Running statistics over chunks of little-endian unsigned samples.

    st = ChunkStats(width=2); st.update(view, n); st.out[MIN] ...
    update() allocates nothing on ports with viper: one native call computes the
    chunk's figures and adds them to the open window (a raw sample sum would
    outgrow a small int on a 32-bit board, so each chunk adds its mean and the
    window's mean is their average). end_window() closes the window into
    out[WMIN], out[WMAX], out[WMEAN] without allocating; window() returns them
    as a tuple."""

    def __init__(self, width=2, fast=None):
        if width not in (1, 2):
            raise ValueError("width must be 1 or 2")
        self.width = width
        self.out = array("i", bytes(4 * _SLOTS))
        self.out[_WMIN] = 0xFFFF
        self._f = _stats_py if fast is False else _stats

    @property
    def chunks(self):
        """Chunks added to the open window."""
        return self.out[WCHUNKS]

    def update(self, src, n):
        self._f(src, n, self.width, self.out)

    def end_window(self):
        """Close the window: its (min, max, mean) go to out[WMIN:WMEAN + 1] and a
        new window starts. Allocates nothing."""
        o = self.out
        c = o[WCHUNKS]
        o[WMIN] = o[_WMIN] if o[_WCNT] else 0
        o[WMAX] = o[_WMAX]
        o[WMEAN] = o[_WSUM] // c if c else 0
        o[_WMIN] = 0xFFFF
        o[_WMAX] = 0
        o[_WSUM] = 0
        o[_WCNT] = 0
        o[WCHUNKS] = 0

    def window(self):
        """(min, max, mean) of the window since the last call; resets the window."""
        self.end_window()
        o = self.out
        return (o[WMIN], o[WMAX], o[WMEAN])


def _smooth_py(src, n, width, dst):
    # Plain-Python twin of _viper.smooth: a 2-tap moving average, sample by
    # sample, from src into dst (n bytes, whole samples); returns bytes written.
    prev = -1
    if width == 2:
        n &= ~1
        for i in range(0, n, 2):
            v = src[i] | (src[i + 1] << 8)
            if prev < 0:
                prev = v
            a = (v + prev) >> 1
            prev = v
            dst[i] = a & 0xFF
            dst[i + 1] = a >> 8
    else:
        for i in range(n):
            v = src[i]
            if prev < 0:
                prev = v
            dst[i] = (v + prev) >> 1
            prev = v
    return n


_smooth = getattr(VIPER, "smooth", None) or _smooth_py


def smooth(src, n, width, dst, fast=None):
    """Filter n bytes of samples from src into dst (a processing buffer, e.g. a
    BlockPool block): dst[i] = (x[i] + x[i-1]) // 2. Returns the bytes written.
    Allocates nothing on ports with viper."""
    return (_smooth_py if fast is False else _smooth)(src, n, width, dst)
