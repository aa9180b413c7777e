# movavg: a moving average over a preallocated window of integer samples (an
# ADC's readings, say). update() allocates nothing on MicroPython: the window
# is an array made once, the running sum and the mean stay small ints (samples
# are 16-bit, the window at most 4096 long: |sum| < 2^27, below the 2^30 where
# a 32-bit board's int becomes a heap object).
from array import array

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


MAX_WINDOW = const(4096)


class MovingAverage:
    """Mean of the last n samples, rounded down; samples in -32768..32767."""

    def __init__(self, n):
        if not 0 < n <= MAX_WINDOW:
            raise ValueError("window must be 1..4096 samples")
        self._buf = array("h", bytes(2 * n))  # zeros, made from n*2 zero bytes
        self._n = n
        self._i = 0
        self._count = 0
        self._sum = 0

    def update(self, x):
        """Add sample x; return the mean of the last n samples (up to n)."""
        i = self._i
        buf = self._buf
        self._sum += x - buf[i]  # buf[i] is 0 until the window has filled
        buf[i] = x
        i += 1
        self._i = 0 if i == self._n else i
        if self._count < self._n:
            self._count += 1
        return self._sum // self._count

    def mean(self):
        return self._sum // self._count if self._count else 0

    def full(self):
        return self._count == self._n

    def reset(self):
        buf = self._buf
        for i in range(self._n):
            buf[i] = 0
        self._i = self._count = self._sum = 0
