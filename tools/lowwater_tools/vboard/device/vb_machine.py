# lowwater vboard: `machine` stand-ins for the MicroPython unix port.
# vboot.py imports this before / becomes the image and installs it as
# sys.modules["machine"]. What a board's hardware does (reset, watchdog) is a
# line to the relay on a control pipe; the relay restarts the interpreter.
# Pin.value(), ADC.read_u16() and WDT.feed() allocate nothing.
import time
import math
from array import array
from micropython import const

# The unix port's own machine module (sys.modules has no "machine" yet).
from machine import idle, mem8, mem16, mem32, time_pulse_us, Signal  # noqa: F401

PWRON_RESET = const(1)
HARD_RESET = const(2)
WDT_RESET = const(3)
DEEPSLEEP_RESET = const(4)
SOFT_RESET = const(5)

_FEED_EVERY_MS = const(10)  # feeds closer together than this are not re-sent

_ctl = None
_cause = PWRON_RESET
_freq = 0
_uid = b""
_rtc = 0  # s: RTC time minus host time; the relay keeps it across resets


def _setup(ctl, cause, freq, board, rtc="0"):
    # module-level state: one board, one set of hardware registers
    global _ctl, _cause, _freq, _uid, _rtc
    _ctl = ctl
    _rtc = int(rtc)
    # the cause names the relay passes, in the order of the constants 1..5
    _cause = 1 + ("power", "hard", "wdt", "deepsleep", "soft").index(cause)
    _freq = freq
    h = 0x811C
    for c in board.encode():
        h = (h * 31 + c) & 0xFFFF
    _uid = b"LWVB" + bytes((h >> 8, h & 0xFF))


def _tell(line):
    _ctl.write(line)


def _halt():
    while True:
        time.sleep_ms(100)


def reset():
    """Hard reset: the relay restarts the interpreter; boot.py and main.py run."""
    _tell(b"reset hard\n")
    _halt()


def soft_reset():
    # As upstream: SystemExit, so a raw-REPL reply still ends (OK ... \x04\x04);
    # the interpreter then ends and the relay prints `MPY: soft reboot`.
    raise SystemExit


def bootloader(*args):
    # No bootloader on a virtual board: behave like a hard reset.
    reset()


def _no_wake(name, ms):
    # Without a time a board sleeps until a pin or peripheral wakes it; there are none here.
    if ms is None or ms <= 0:
        raise NotImplementedError("virtual board: %s() needs a time in ms (no wake sources)" % name)


def deepsleep(ms=None):
    _no_wake("deepsleep", ms)
    time.sleep_ms(ms)
    _tell(b"reset deepsleep\n")
    _halt()


def lightsleep(ms=None):
    _no_wake("lightsleep", ms)
    time.sleep_ms(ms)


def reset_cause():
    return _cause


def unique_id():
    return _uid


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    _freq = hz


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class Pin:
    """A GPIO that remembers its level: Pin(2, Pin.OUT).on(); Pin(0, Pin.IN, Pin.PULL_UP).value() == 1."""

    IN = const(0)
    OUT = const(1)
    OPEN_DRAIN = const(2)
    ALT = const(3)
    PULL_UP = const(1)
    PULL_DOWN = const(2)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
        self._id = id
        self._v = 0
        self.init(mode, pull, value)

    def init(self, mode=-1, pull=-1, value=None, **kw):
        if mode != -1:
            self._mode = mode
        if pull == 1:  # PULL_UP: an unconnected input reads high
            self._v = 1
        elif pull == 2:
            self._v = 0
        if value is not None:
            self._v = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def toggle(self):
        self._v ^= 1

    def irq(self, handler=None, trigger=3, **kw):
        raise NotImplementedError("virtual board: Pin.irq (no pin interrupts on the unix port)")

    def __repr__(self):
        return "Pin(%r)" % (self._id,)


def _sine_table():
    t = array("H", bytes(512))
    for i in range(256):
        t[i] = 32768 + int(24576 * math.sin(2 * math.pi * i / 256))
    return t


_SINE = _sine_table()


class ADC:
    """An ADC fed by a simulated waveform: a sine of (1 + pin % 7) Hz around mid-scale,
    amplitude 24576, plus up to +-512 of pseudo-random noise (seeded by the pin).
    ADC(Pin(34)).read_u16() -> 0..65535."""

    ATTN_0DB = const(0)
    ATTN_2_5DB = const(1)
    ATTN_6DB = const(2)
    ATTN_11DB = const(3)
    WIDTH_9BIT = const(9)
    WIDTH_10BIT = const(10)
    WIDTH_11BIT = const(11)
    WIDTH_12BIT = const(12)

    def __init__(self, pin, *, atten=None, **kw):
        pid = pin._id if isinstance(pin, Pin) else pin
        if not isinstance(pid, int):
            pid = sum(str(pid).encode())
        self._id = pid
        # phase steps per microsecond, scaled by 2**20: 256 table steps per period
        self._k = (1 + pid % 7) * 256 * 1048576 // 1000000
        self._s = (pid * 40503 + 1) & 0xFFFF
        self._shift = 4  # read(): 12 bits, as esp32's default width
        self._atten = ADC.ATTN_0DB if atten is None else atten

    def read_u16(self):
        # integers only, all small: no allocation
        s = (self._s * 25173 + 13849) & 0xFFFF
        self._s = s
        v = _SINE[((time.ticks_us() * self._k) >> 20) & 255] + (s >> 6) - 512
        return 0 if v < 0 else (65535 if v > 65535 else v)

    def read(self):
        return self.read_u16() >> self._shift

    def read_uv(self):
        # full scale per attenuation, as esp32's nominal ranges: 1.1, 1.5, 2.2, 3.9 V
        return self.read_u16() * (1100000, 1500000, 2200000, 3900000)[self._atten] // 65535

    def atten(self, a):
        if a not in (0, 1, 2, 3):
            raise ValueError("invalid attenuation")
        self._atten = a

    def width(self, w):
        if w not in (9, 10, 11, 12):
            raise ValueError("invalid width")
        self._shift = 16 - w


class WDT:
    """Watchdog: WDT(timeout=5000).feed(); not fed for `timeout` ms -> the relay resets
    the board (a 'vboard: watchdog reset' line, then boot.py and main.py again)."""

    def __init__(self, id=0, timeout=5000):
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self._last = time.ticks_ms()
        _tell(("wdt %d\n" % timeout).encode())

    def feed(self):
        t = time.ticks_ms()
        if time.ticks_diff(t, self._last) >= _FEED_EVERY_MS:
            self._last = t
            _tell(b"feed\n")


class RTC:
    """The real-time clock: the host's clock plus the offset last set (kept across
    resets by the relay). datetime() -> (year, month, day, weekday, hours, minutes,
    seconds, subseconds); datetime(t) sets it (weekday and subseconds are ignored)."""

    def __init__(self, id=0, datetime=None):
        if datetime is not None:
            self.datetime(datetime)

    def init(self, datetime):
        self.datetime(datetime)

    def datetime(self, dt=None):
        global _rtc
        if dt is None:
            t = time.localtime(int(time.time()) + _rtc)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        _rtc = time.mktime((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6], 0, 0)) - int(time.time())
        _tell(("rtc %d\n" % _rtc).encode())
