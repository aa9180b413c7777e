# lowwater.prof.calls: @profile, calls, bytes and us per function
# (docs/profiling.md); enable/enabled, reset, stats, report.
#
# Allocation: profile() calibrates once (allocates). The default wrapper
# allocates its *args tuple and **kwargs dict per call, before the measured
# window (enclosing code sees them); profile(fn, nargs=N) wrappers allocate
# nothing while profiling is off. Inside the window the call mechanism's own
# bytes are calibrated and subtracted. Records are updated in place (small
# ints: no allocation). Not IRQ-safe.
import gc
import sys

from lowwater._compat import mem_alloc, mem_total, ticks_diff, ticks_us
from lowwater.prof import meter
from lowwater.prof.meter import CAL_N, METHOD, MODE, fn_name


class Profiler:
    """The profiled functions' records and the calibration of the measured
    call. One per process (_P below): @profile wrappers, prof.stats() and
    prof.report() share one registry, so it is module-level on purpose."""

    def __init__(self):
        self.on = True
        self.stats = []  # one list per function: [name, calls, b_sum, b_max, us_sum, us_max]
        # calibrated bytes of the measured call mechanism: c0 + ca*args + ck*kwargs
        self.c0 = 0
        self.ca = 0
        self.ck = 0
        self.cus = 0.0  # calibrated us of the measured window around an empty call
        self.calibrated = False

    def ovh(self, a, k):
        return self.c0 + self.ca * len(a) + self.ck * len(k)


_P = Profiler()


def _rec(st, b, t):
    # b: bytes with the call mechanism's (ovh) already subtracted
    if b < 0:
        b = 0
    st[1] += 1
    st[2] += b
    if b > st[3]:
        st[3] = b
    st[4] += t
    if t > st[5]:
        st[5] = t


# The measured call, one per counter (chosen at import as _call). Locals are
# kept few: a frame over ~11 words would be heap-allocated on every call.


def _call_total(fn, st, a, k):
    # 6 locals: the frame stays on the C stack (7 put it on the heap: +144 B).
    m = _P.ovh(a, k)
    t = ticks_us()
    m += mem_total()
    k = fn(*a, **k)  # k: the result from here on
    m = mem_total() - m
    t = ticks_diff(ticks_us(), t)
    _rec(st, m, t)
    return k


def _call_alloc(fn, st, a, k):
    g = gc.isenabled()
    gc.disable()
    t = ticks_us()
    m = mem_alloc()
    try:
        r = fn(*a, **k)
        m = mem_alloc() - m
        t = ticks_diff(ticks_us(), t)
    finally:
        if g:
            gc.enable()
    _rec(st, m - _P.ovh(a, k), t)
    return r


def _call_trace(fn, st, a, k):
    # CPython: the window is lowwater.prof.tm's.
    r, b, t = _TRACER.measure(fn, a, k)
    _rec(st, b - _P.ovh(a, k), t)
    return r


_TRACER = meter.tracer()
_call = (None, _call_total, _call_alloc, _call_trace)[MODE]
_NOKW = {}  # never mutated


def _wrap(fn, st, nargs=None):
    # Profiling off costs one flag test and one call. The *a/**k wrapper also
    # allocates its tuple and dict on every call; the fixed-arity ones
    # allocate nothing when off (and a small tuple, outside the window, when on).
    if nargs == 0:

        def w():
            if _P.on:
                return _call(fn, st, (), _NOKW)
            return fn()

    elif nargs == 1:

        def w(x):
            if _P.on:
                return _call(fn, st, (x,), _NOKW)
            return fn(x)

    elif nargs == 2:

        def w(x, y):
            if _P.on:
                return _call(fn, st, (x, y), _NOKW)
            return fn(x, y)

    elif nargs == 3:

        def w(x, y, z):
            if _P.on:
                return _call(fn, st, (x, y, z), _NOKW)
            return fn(x, y, z)

    elif nargs is None:

        def w(*a, **k):
            if _P.on:
                return _call(fn, st, a, k)
            return fn(*a, **k)

    else:
        raise ValueError("nargs must be 0..3 or None")
    return w


def _least(w, a, k, st):
    # Smallest bytes of one measured call (bytes are exact on MicroPython; on
    # CPython the minimum skips one-off allocations).
    least = None
    for _ in range(CAL_N):
        b = st[2]
        w(*a, **k)
        b = st[2] - b
        if least is None or b < least:
            least = b
    return least


def _calibrate():
    # Measure the wrapper on empty functions once: bytes of the call mechanism
    # (base, per positional, per keyword argument) and the window's us.
    p = _P
    if p.calibrated:
        return
    if _TRACER is not None:
        _TRACER.ensure()
    on = p.on
    p.on = True
    p.c0 = p.ca = p.ck = 0
    st = _new_stat("cal")
    c0 = _least(_wrap(meter.nop0, st), (), {}, st)
    ca = _least(_wrap(meter.nop1, st), (1,), {}, st) - c0
    ck = _least(_wrap(meter.nopk, st), (), {"x": 1}, st) - c0
    p.c0, p.ca, p.ck = c0, ca, ck
    # us: a fresh run with the byte calibration in place
    st = _new_stat("cal")
    w = _wrap(meter.nop0, st)
    for _ in range(CAL_N):
        w()
    p.cus = st[4] / st[1]
    p.on = on
    p.calibrated = True


def _new_stat(name):
    return [name, 0, 0, 0, 0, 0]


def _token(s):
    # A telemetry token: [A-Za-z0-9_.:/+-]+ (docs/telemetry.md)
    ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+-"
    out = ""
    for c in s:
        out += c if c in ok else "_"
    return out or "_"


def profile(fn=None, name=None, nargs=None):
    """Count calls, bytes and us per call of a function.

        @prof.profile
        def fill(buf): ...
        prof.report()      # table + one `LW1 prof` telemetry record per function

    On MicroPython bytes are mem_total() (every heap request, even ones freed at
    once) or, without it, gc.mem_alloc() with the collector off; on CPython the
    tracemalloc peak above the start of the call. The wrapper's own cost is
    calibrated once and subtracted.

    nargs=0..3: a wrapper for exactly that many positional arguments (self
    included), which allocates nothing while profiling is off; the default
    takes any arguments but allocates its *args tuple and **kwargs dict per
    call (~72 B on the unix port), on or off."""
    if fn is None:
        return lambda f: profile(f, name, nargs)
    _calibrate()
    st = _new_stat(_token(name or fn_name(fn)))
    w = _wrap(fn, st, nargs)
    _P.stats.append(st)
    return w


def enable(on=True):
    """Switch profiling on or off at run time (off: one flag test per call).
    On CPython, turning it off stops tracemalloc if lowwater.prof started it."""
    _P.on = bool(on)
    if _TRACER is None:
        return
    if on:
        _TRACER.ensure()
    else:
        _TRACER.stop()


def enabled():
    return _P.on


def reset():
    """Zero every profiled function's counters."""
    for st in _P.stats:
        st[1] = st[2] = st[3] = st[4] = st[5] = 0


def stats():
    """{name: (calls, b_mean, b_max, us_mean, us_max)}; us with the calibrated
    window time subtracted (clamped at 0). Functions of one name are merged."""
    out = {}
    cus = _P.cus
    for st in _P.stats:
        n = st[1]
        if not n:
            continue
        us_max = st[5] - cus
        row = (n, st[2] / n, st[3], max(0.0, st[4] / n - cus), max(0.0, us_max))
        old = out.get(st[0])
        if old:
            m = old[0] + n
            row = (
                m,
                (old[0] * old[1] + n * row[1]) / m,
                max(old[2], row[2]),
                (old[0] * old[3] + n * row[3]) / m,
                max(old[4], row[4]),
            )
        out[st[0]] = row
    return out


def report(file=None, telemetry=None):
    """Print the table (like memory_profiler's) to file (default stdout) and send
    one `LW1 prof fn=.. calls=.. b_mean=.. b_max=.. us_mean=.. us_max=..` record
    per function through telemetry (default: Telemetry() on stdout; False: none)."""
    file = file or sys.stdout
    rows = stats()
    print("prof (%s): bytes and us per call, wrapper overhead subtracted" % METHOD, file=file)
    print("%-24s %8s %10s %8s %9s %8s" % ("function", "calls", "B mean", "B max", "us mean", "us max"), file=file)
    for name in sorted(rows):
        n, bm, bx, um, ux = rows[name]
        print("%-24s %8d %10.1f %8d %9.1f %8d" % (name, n, bm, bx, um, int(ux + 0.5)), file=file)
    if telemetry is False:
        return rows
    if telemetry is None:
        from lowwater.telemetry import Telemetry

        telemetry = Telemetry()
    for name in sorted(rows):
        n, bm, bx, um, ux = rows[name]
        telemetry.record(
            "prof",
            "fn",
            name,
            "calls",
            n,
            "b_mean",
            int(bm + 0.5),
            "b_max",
            bx,
            "us_mean",
            int(um + 0.5),
            "us_max",
            int(ux + 0.5),
        )
    return rows
