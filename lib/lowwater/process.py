# lowwater.process: per-chunk processing (min/max/sum/count of samples) with
# no allocation: results land in a preallocated array('i').
from array import array

from lowwater._compat import VIPER

# Slots of ChunkStats.out: last chunk's min, max, sum, samples.
MIN = 0
MAX = 1
SUM = 2
COUNT = 3


def _stats_py(src, n, width, out):
    # Plain-Python twin of _viper.chunk_stats. Allocates its frame on the unix
    # port (too many locals for the VM's stack state); used where viper is absent.
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


_stats = getattr(VIPER, "chunk_stats", None) or _stats_py


class ChunkStats:
    """Running statistics over chunks of little-endian unsigned samples.

    st = ChunkStats(width=2); st.update(view, n); st.out[MIN] ...
    update() allocates nothing on ports with viper. Window figures (since the
    last window()) accumulate in wmin/wmax/wsum/wcount."""

    def __init__(self, width=2, fast=None):
        if width not in (1, 2):
            raise ValueError("width must be 1 or 2")
        self.width = width
        self.out = array("i", (0, 0, 0, 0))
        # Window accumulators: [min, max, sum of chunk means, samples]. A raw
        # sample sum would outgrow a small int on a 32-bit board, so each chunk
        # adds its mean and window() divides by the chunk count.
        self.win = array("i", (0xFFFF, 0, 0, 0))
        self.chunks = 0
        self._f = _stats_py if fast is False else _stats

    def update(self, src, n):
        out = self.out
        self._f(src, n, self.width, out)
        win = self.win
        if out[3]:
            if out[0] < win[0]:
                win[0] = out[0]
            if out[1] > win[1]:
                win[1] = out[1]
            win[3] += out[3]
            win[2] += out[2] // out[3]
        self.chunks += 1

    def window(self):
        """(min, max, mean) of the window since the last call; resets the window."""
        win = self.win
        c = self.chunks
        res = (win[0] if win[3] else 0, win[1], win[2] // c if c else 0)
        win[0] = 0xFFFF
        win[1] = 0
        win[2] = 0
        win[3] = 0
        self.chunks = 0
        return res


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
