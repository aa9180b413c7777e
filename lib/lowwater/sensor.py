# lowwater.sensor: sample sources with readinto(buf) -> n (little-endian
# unsigned samples of `width` bytes, 1 or 2).
#
# Allocation: constructors allocate (SimSensor's wave table); readinto()
# allocates nothing with a bytearray or memoryview argument (proven by
# host_tests/portable/test_sensor.py), except with paced=True, whose sleep
# takes a float. `samples` counts every sample produced; on a 32-bit board it
# becomes a long int (and its increment allocates) after 2**30 samples, about
# 12 days at 1 kHz. Not IRQ-safe.
import time
from array import array

from lowwater._compat import const, ticks_add, ticks_diff, ticks_us

_MAX_PERIOD = const(4096)


def _check_width(width):
    if width != 1 and width != 2:
        raise ValueError("width must be 1 or 2")


class SimSensor:
    """Deterministic simulated sensor: a triangle wave plus xorshift noise,
    byte-identical on CPython and MicroPython.

    s = SimSensor(seed=1, width=2)
    buf = bytearray(256)
    n = s.readinto(buf)   # 256: 128 samples

    period is in samples, amplitude and noise in sample units (peak).
    rate_hz gives the sample clock: t_ms() is the time of the next sample;
    paced=True makes readinto() sleep to keep that rate.
    """

    def __init__(self, seed=1, width=2, rate_hz=1000, period=200, amplitude=None, noise=None, paced=False):
        _check_width(width)
        top = (1 << (8 * width)) - 1
        if amplitude is None:
            amplitude = (top + 1) // 4
        if noise is None:
            noise = (top + 1) // 64
        if type(rate_hz) is not int or rate_hz <= 0:
            raise ValueError("rate_hz must be > 0")
        if type(period) is not int or not 2 <= period <= _MAX_PERIOD:
            raise ValueError("period must be 2..4096")
        if type(amplitude) is not int or not 0 <= amplitude <= top // 2:
            raise ValueError("amplitude out of range")
        if type(noise) is not int or not 0 <= noise <= top // 2:
            raise ValueError("noise out of range")
        self.width = width
        self.rate_hz = rate_hz
        self.period = period
        self.amplitude = amplitude
        self.noise = noise
        self.paced = paced
        self.samples = 0
        self._top = top
        # xorshift16 (7, 9, 8): every intermediate stays below 2**24, a small
        # int on any board, so noise never allocates. Period 65535.
        self._s = (seed & 0xFFFF) or 1
        self._span = 2 * noise + 1
        # One wave period, precomputed with exact integer arithmetic: a
        # triangle from mid - amplitude up to mid + amplitude and back.
        mid = (top + 1) // 2
        w = []
        for p in range(period):
            q = 2 * p if 2 * p < period else 2 * (period - p)  # 0..period..0
            w.append(mid - amplitude + (2 * amplitude * q) // period)
        self._wave = array("H", w)  # 2 bytes per entry
        self._p = 0  # phase: index into _wave
        self._us = 1000000 // rate_hz  # pacing step per sample
        self._due = None

    def t_ms(self):
        """Time of the next sample in ms from the first, at rate_hz (allocates
        once samples * 1000 is a long int)."""
        return self.samples * 1000 // self.rate_hz

    def readinto(self, buf):
        """Fill buf with whole samples; returns the number of bytes written."""
        if self.width == 2:
            n = self._fill2(buf)
        else:
            n = self._fill1(buf)
        k = n // self.width
        self.samples += k
        if self.paced:
            self._pace(k)
        return n

    # The two fill loops are one algorithm written twice (1- and 2-byte
    # samples): inlined state in locals is 2.3x faster than a per-sample
    # method call, and each frame keeps to 7 locals so it stays off the heap.
    # Per sample: xorshift16 step (7, 9, 8), wave[p] + noise, clamp, store.

    def _fill2(self, buf):
        n = len(buf) & ~1
        i = 0
        s = self._s
        p = self._p
        while i < n:
            s ^= (s << 7) & 0xFFFF
            s ^= s >> 9
            s ^= (s << 8) & 0xFFFF
            v = self._wave[p] + s % self._span - self.noise
            p += 1
            if p == self.period:
                p = 0
            if v < 0:
                v = 0
            elif v > self._top:
                v = self._top
            buf[i] = v & 0xFF
            buf[i + 1] = v >> 8
            i += 2
        self._s = s
        self._p = p
        return n

    def _fill1(self, buf):
        n = len(buf)
        i = 0
        s = self._s
        p = self._p
        while i < n:
            s ^= (s << 7) & 0xFFFF
            s ^= s >> 9
            s ^= (s << 8) & 0xFFFF
            v = self._wave[p] + s % self._span - self.noise
            p += 1
            if p == self.period:
                p = 0
            if v < 0:
                v = 0
            elif v > self._top:
                v = self._top
            buf[i] = v
            i += 1
        self._s = s
        self._p = p
        return n

    def _pace(self, k):
        now = ticks_us()
        if self._due is None:
            self._due = now
        self._due = ticks_add(self._due, k * self._us)
        wait = ticks_diff(self._due, now)
        if wait > 0:
            time.sleep(wait / 1000000)
        elif wait < -1000000:
            self._due = now  # fell more than 1 s behind: do not try to catch up


class AdcSensor:
    """An ADC read with read_u16() once per sample (machine.ADC or a stand-in).

    s = AdcSensor(machine.ADC(machine.Pin(34)), width=2)
    n = s.readinto(buf)

    width=2 stores the 16-bit reading; width=1 its high byte.
    """

    def __init__(self, adc, width=2):
        _check_width(width)
        self.adc = adc
        self.width = width
        self.samples = 0
        self._read = adc.read_u16  # bound once: no lookup per sample

    def readinto(self, buf):
        """Fill buf with whole samples; returns the number of bytes written."""
        n = len(buf)
        i = 0
        read = self._read
        if self.width == 1:
            while i < n:
                buf[i] = read() >> 8
                i += 1
        else:
            n -= n & 1
            while i < n:
                v = read()
                buf[i] = v & 0xFF
                buf[i + 1] = v >> 8
                i += 2
        self.samples += n // self.width
        return n


class ReplaySensor:
    """Replays one preallocated block of samples with a single slice copy per
    read: a sensor at C speed, as DMA, I2S or ADC.read_timed deliver a chunk.
    Used where the loop's own cost must show (benchmarks, long tests).

    s = ReplaySensor(SimSensor(1), 256)   # one 256-byte block, read once
    n = s.readinto(buf)                   # len(buf) must be the block's size
    """

    def __init__(self, source, size):
        self.width = source.width
        self._data = bytearray(size)
        source.readinto(self._data)
        self.samples = 0  # not counted per read: the copy is all a read does

    def readinto(self, buf):
        buf[:] = self._data
        return len(buf)


def from_profile(sensor):
    """Build the sensor of a board profile's "sensor" object."""
    kind = sensor.get("kind")
    width = sensor.get("width", 2)
    if kind == "sim":
        return SimSensor(
            seed=sensor.get("seed", 1),
            width=width,
            rate_hz=sensor.get("rate_hz", 1000),
            period=sensor.get("period", 200),
            amplitude=sensor.get("amplitude"),
            noise=sensor.get("noise"),
            paced=sensor.get("paced", False),
        )
    if kind == "adc":
        try:
            from machine import ADC, Pin
        except ImportError:
            raise ImportError("adc sensor needs machine.ADC (not on this runtime)")
        if type(sensor.get("pin")) is not int:
            raise ValueError("adc sensor needs an int pin")
        return AdcSensor(ADC(Pin(sensor["pin"])), width)
    if kind == "custom":
        return custom(sensor)
    raise ValueError("unknown sensor kind")


def custom(sensor):
    """The user's driver a profile names: {"kind": "custom", "module": M,
    "class": C, "width": 1|2, "rate_hz": ..., ...}: C(sensor) from module M (on
    sys.path: / or /lib on a board). It must have readinto(buf) -> bytes written
    (whole samples of `width` bytes, little-endian unsigned), allocating nothing
    per call (docs/pipeline.md; `lowwater check --no-alloc M:C`)."""
    mod = sensor.get("module")
    name = sensor.get("class")
    try:
        m = __import__(mod, None, None, (name,))
    except ImportError as e:
        raise ImportError("sensor module %s: %s" % (mod, e))
    cls = getattr(m, name, None)
    if cls is None or not hasattr(cls, "readinto"):
        raise ValueError("sensor %s:%s: no such class with readinto(buf)" % (mod, name))
    return cls(sensor)
