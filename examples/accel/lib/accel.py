# accel: a 3-axis accelerometer stand-in (the user's sensor driver of the
# lowwater example app, docs/pipeline.md). Interleaved x, y, z samples of 2
# bytes (little-endian unsigned, 32768 = 0 g, 16384 counts per g: a +-2 g
# part), gravity on z, a little noise on every axis, and a "tap" on x every
# `tap_every` samples per axis: +tap counts for 3 samples.
#
# A profile names it: "sensor": {"kind": "custom", "module": "accel",
# "class": "Accel3", "width": 2, "rate_hz": 300, "tap_every": 500}
#
# readinto() allocates nothing (`lowwater check --no-alloc accel:Accel3`):
# its state is ints below 2**24, few locals, no slices.
_ZERO = 32768
_G = 16384


class Accel3:
    width = 2

    def __init__(self, spec):
        self.tap_every = spec.get("tap_every", 500)  # samples per axis between taps
        self.tap = spec.get("tap", 12000)  # counts added on x during a tap
        self.noise = spec.get("noise", 63)  # +-noise counts, 2**k - 1
        self._s = (spec.get("seed", 7) & 0xFFFF) or 1  # xorshift16 state
        self.t = 0  # samples per axis produced (one x, y, z triple = 1)
        self._axis = 0

    def readinto(self, buf):
        """Fill buf with whole 2-byte samples (x, y, z in turn); returns bytes written."""
        n = len(buf) & ~1
        i = 0
        while i < n:
            v = self._next()
            buf[i] = v & 0xFF
            buf[i + 1] = v >> 8
            i += 2
        return n

    def _next(self):
        s = self._s
        s ^= (s << 7) & 0xFFFF
        s ^= s >> 9
        s ^= (s << 8) & 0xFFFF
        self._s = s
        v = _ZERO + (s & self.noise) - (self.noise >> 1)
        a = self._axis
        if a == 0:
            if self.t % self.tap_every >= self.tap_every - 3:
                v += self.tap
            self._axis = 1
        elif a == 1:
            self._axis = 2
        else:
            v += _G
            self._axis = 0
            self.t += 1
        return v

    def taps(self, samples):
        """Taps in the first `samples` samples per axis (for tests)."""
        return (samples + 2) // self.tap_every
