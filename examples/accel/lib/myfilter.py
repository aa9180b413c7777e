# myfilter: the example app's own processing stages (docs/pipeline.md).
#
# HighPass: per-axis DC removal of interleaved x, y, z samples (a one-pole
#   high-pass: the axis's running mean follows the signal with a time constant
#   of 2**shift samples, and the output is the sample minus that mean, around
#   32768). Gravity goes; taps and vibration stay.
# Threshold: a detector (writes = False: it only reads the samples): a sample
#   whose distance from 32768 reaches `level` emits one `evt` record
#   (what=over, v=the distance), then stays quiet until `rearm` samples in a
#   row are below level / 2 (one event per tap).
#
# Profile:  "stages": [{"module": "myfilter", "class": "HighPass", "shift": 4},
#                      {"module": "myfilter", "class": "Threshold", "level": 6000}]
# Neither allocates per chunk: `lowwater check --no-alloc myfilter:HighPass`.
from array import array

_ZERO = 32768


class HighPass:
    def __init__(self, spec, ctx):
        if ctx.width != 2:
            raise ValueError("HighPass needs 2-byte samples")
        self.shift = spec.get("shift", 4)
        # Running means of x, y, z, scaled by 2**shift; -1: not started.
        self.mean = array("i", [-1, -1, -1])
        self.axis = 0  # axis of the next sample (chunks need not hold whole triples)

    def process(self, src, n, dst):
        i = 0
        while i < n:
            self._one(src, dst, i)
            i += 2
        return n

    def _one(self, src, dst, i):
        # One sample; a method of its own keeps each frame small (no heap frame).
        x = src[i] | (src[i + 1] << 8)
        a = self.axis
        m = self.mean[a]
        if m < 0:
            m = x << self.shift
        m += x - (m >> self.shift)
        self.mean[a] = m
        x = x - (m >> self.shift) + _ZERO
        if x < 0:
            x = 0
        elif x > 0xFFFF:
            x = 0xFFFF
        dst[i] = x & 0xFF
        dst[i + 1] = x >> 8
        self.axis = a + 1 if a < 2 else 0


class Threshold:
    writes = False  # a detector: reads src, leaves dst alone

    def __init__(self, spec, ctx):
        self.level = spec.get("level", 6000)
        self.events = ctx.events  # emit(what, v): one preallocated `evt` record
        self.rearm = spec.get("rearm", 12)  # quiet samples (all axes) before the next event
        self.armed = True
        self.quiet = 0
        self.fired = 0

    def process(self, src, n, dst):
        i = 0
        while i < n:
            self._one(src[i] | (src[i + 1] << 8))
            i += 2
        return n

    def _one(self, v):
        d = v - _ZERO
        if d < 0:
            d = -d
        if d >= self.level >> 1:
            self.quiet = 0
            if self.armed and d >= self.level:
                self.armed = False
                self.fired += 1
                self.events.emit("over", d)
        elif not self.armed:
            self.quiet += 1
            if self.quiet >= self.rearm:
                self.armed = True
