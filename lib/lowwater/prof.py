# lowwater.prof: where heap and time go (docs/profiling.md). @profile per
# function, no_alloc guards, heap snapshots, LeakCheck, line attribution; the
# same code on MicroPython and CPython, runtime features via lowwater._compat.
#
# Allocation: profile() calibrates once (allocates). The default wrapper
# allocates its *args tuple and **kwargs dict per call, before the measured
# window (enclosing code sees them); profile(fn, nargs=N) wrappers allocate
# nothing while profiling is off. Inside the window the call mechanism's own
# bytes are calibrated and subtracted. Records are updated in place (small
# ints: no allocation). Not IRQ-safe.
import gc
import sys
from array import array

from lowwater import _compat
from lowwater._compat import const, ticks_diff, ticks_us

# What "bytes allocated" counts, by what the runtime has (METHOD names it):
_TOTAL = const(1)  # micropython.mem_total(): every heap request, freed or not
_ALLOC = const(2)  # gc.mem_alloc() delta with the collector off (boards)
_TRACE = const(3)  # CPython tracemalloc: peak traced bytes above the start

_mem_total = _compat.mem_total
_mem_alloc = _compat.mem_alloc
_tm = None
if _compat.MICROPYTHON:
    _mode = _TOTAL if _mem_total is not None else _ALLOC
else:  # CPython
    _tm = _compat.get_tracemalloc()
    _mode = _TRACE
METHOD = ("", "mem_total", "mem_alloc", "tracemalloc")[_mode]

# A heap block is 4 machine words (MicroPython's gc); 64-bit: 32 B.
_BLOCK = 32 if sys.maxsize > 0x7FFFFFFF else 16
_PROBE_STEPS = const(24)  # bound of the largest-block binary search
_CAL_N = const(64)  # calls per calibration measurement
_CAP = const(512)  # bytes of mem_info() text captured through dupterm

# CPython's own machinery allocates inside any block (`for i in range(n)`
# alone: ~128 B of range and iterator objects; ints above 256); no_alloc
# tolerates this many bytes there. MicroPython: 0, exact.
TOLERANCE = 0 if _compat.MICROPYTHON else 256

# The heap that CPython snapshots are taken against (set_heap); the unix board.
_heap = 131072
_base = None  # traced bytes at the model heap's zero


class AllocationError(AssertionError):
    """A no_alloc block allocated heap."""


# ---------------------------------------------------------------- @profile

_on = True
_stats = []  # one list per profiled function: [name, calls, b_sum, b_max, us_sum, us_max]
_c0 = 0  # calibrated bytes of the measured call mechanism: _c0 + _ca*args + _ck*kwargs
_ca = 0
_ck = 0
_cus = 0.0  # calibrated us of the measured window around an empty call
_calibrated = False
_tm_mine = False  # tracemalloc was started by this module
_hi = 0  # CPython: peak seen by an inner profiled call (reset_peak nests)


def _tm_ensure():
    global _tm_mine
    if _tm is not None and not _tm.is_tracing():
        _tm.start()
        _tm_mine = True


def _tm_begin():
    # -> (traced bytes now, peak so far for an enclosing measurement). The
    # caller calls _tm.reset_peak() last, right before the measured code, so
    # the measuring objects' transient bytes stay out of the peak (only the
    # ints it keeps count, a constant the calibration subtracts).
    global _hi
    cur, peak = _tm.get_traced_memory()
    hi = _hi if _hi > peak else peak
    _hi = 0
    return cur, hi


def _tm_end(b0, hi):
    # -> peak bytes above b0 since _tm_begin, nested measurements included
    global _hi
    peak = _tm.get_traced_memory()[1]
    if _hi > peak:
        peak = _hi
    _hi = hi if hi > peak else peak
    return peak - b0


def _rec(st, b, t):
    # b: bytes with the call mechanism's (_ovh) already subtracted
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


def _ovh(a, k):
    return _c0 + _ca * len(a) + _ck * len(k)


def _call_total(fn, st, a, k):
    # 6 locals: the frame stays on the C stack (7 put it on the heap: +144 B).
    m = _ovh(a, k)
    t = ticks_us()
    m += _mem_total()
    k = fn(*a, **k)  # k: the result from here on
    m = _mem_total() - m
    t = ticks_diff(ticks_us(), t)
    _rec(st, m, t)
    return k


def _call_alloc(fn, st, a, k):
    g = gc.isenabled()
    gc.disable()
    t = ticks_us()
    m = _mem_alloc()
    try:
        r = fn(*a, **k)
        m = _mem_alloc() - m
        t = ticks_diff(ticks_us(), t)
    finally:
        if g:
            gc.enable()
    _rec(st, m - _ovh(a, k), t)
    return r


def _call_trace(fn, st, a, k):
    if not _tm.is_tracing():
        _tm_ensure()
    b, hi = _tm_begin()
    t = ticks_us()
    _tm.reset_peak()
    try:
        r = fn(*a, **k)
    finally:
        t = ticks_diff(ticks_us(), t)
        b = _tm_end(b, hi)
    _rec(st, b - _ovh(a, k), t)
    return r


_call = (None, _call_total, _call_alloc, _call_trace)[_mode]
_NOKW = {}  # never mutated


def _wrap(fn, st, nargs=None):
    # Profiling off costs one flag test and one call. The *a/**k wrapper also
    # allocates its tuple and dict on every call; the fixed-arity ones
    # allocate nothing when off (and a small tuple, outside the window, when on).
    if nargs == 0:

        def w():
            if _on:
                return _call(fn, st, (), _NOKW)
            return fn()

    elif nargs == 1:

        def w(x):
            if _on:
                return _call(fn, st, (x,), _NOKW)
            return fn(x)

    elif nargs == 2:

        def w(x, y):
            if _on:
                return _call(fn, st, (x, y), _NOKW)
            return fn(x, y)

    elif nargs == 3:

        def w(x, y, z):
            if _on:
                return _call(fn, st, (x, y, z), _NOKW)
            return fn(x, y, z)

    elif nargs is None:

        def w(*a, **k):
            if _on:
                return _call(fn, st, a, k)
            return fn(*a, **k)

    else:
        raise ValueError("nargs must be 0..3 or None")
    return w


def _nop0():
    pass


def _nop1(x):
    pass


def _nopk(x=0):
    pass


def _least(w, a, k, st):
    # Smallest bytes of one measured call (bytes are exact on MicroPython; on
    # CPython the minimum skips one-off allocations).
    least = None
    for _ in range(_CAL_N):
        b = st[2]
        w(*a, **k)
        b = st[2] - b
        if least is None or b < least:
            least = b
    return least


def _calibrate():
    # Measure the wrapper on empty functions once: bytes of the call mechanism
    # (base, per positional, per keyword argument) and the window's us.
    global _c0, _ca, _ck, _cus, _calibrated, _on
    if _calibrated:
        return
    _tm_ensure()
    on = _on
    _on = True
    _c0 = _ca = _ck = 0
    st = _new_stat("cal")
    c0 = _least(_wrap(_nop0, st), (), {}, st)
    ca = _least(_wrap(_nop1, st), (1,), {}, st) - c0
    ck = _least(_wrap(_nopk, st), (), {"x": 1}, st) - c0
    _c0, _ca, _ck = c0, ca, ck
    # us: a fresh run with the byte calibration in place
    st = _new_stat("cal")
    w = _wrap(_nop0, st)
    for _ in range(_CAL_N):
        w()
    _cus = st[4] / st[1]
    _on = on
    _calibrated = True


def _new_stat(name):
    return [name, 0, 0, 0, 0, 0]


def _token(s):
    # A telemetry token: [A-Za-z0-9_.:/+-]+ (docs/telemetry.md)
    ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+-"
    out = ""
    for c in s:
        out += c if c in ok else "_"
    return out or "_"


def _fn_name(fn):
    return getattr(fn, "__name__", None) or "fn"


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
    st = _new_stat(_token(name or _fn_name(fn)))
    w = _wrap(fn, st, nargs)
    _stats.append(st)
    return w


def enable(on=True):
    """Switch profiling on or off at run time (off: one flag test per call).
    On CPython, turning it off stops tracemalloc if this module started it."""
    global _on, _tm_mine
    _on = bool(on)
    if on:
        _tm_ensure()
    elif _tm_mine and _tm.is_tracing():
        _tm.stop()
        _tm_mine = False


def enabled():
    return _on


def close():
    """CPython: stop tracemalloc if this module started it (it slows the whole
    process); profile/no_alloc/snapshot start it again on next use, and
    profiled calls in between record 0 bytes. MicroPython: nothing to do."""
    global _tm_mine
    if _tm_mine and _tm.is_tracing():
        _tm.stop()
    _tm_mine = False


def reset():
    """Zero every profiled function's counters."""
    for st in _stats:
        st[1] = st[2] = st[3] = st[4] = st[5] = 0


def stats():
    """{name: (calls, b_mean, b_max, us_mean, us_max)}; us with the calibrated
    window time subtracted (clamped at 0). Functions of one name are merged."""
    out = {}
    for st in _stats:
        n = st[1]
        if not n:
            continue
        us_max = st[5] - _cus
        row = (n, st[2] / n, st[3], max(0.0, st[4] / n - _cus), max(0.0, us_max))
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


# ---------------------------------------------------------------- no_alloc


class no_alloc:
    """Fail with AllocationError when a block or a function allocates heap.

        with prof.no_alloc("fill"):
            ring.write(view, n)

        @prof.no_alloc
        def hot(view): ...

    MicroPython with mem_total (unix port): the mem_total() delta, which sees
    every request, frames included; lock=True also runs the block under
    heap_lock() so the traceback points at the allocation (frames then fall
    back to the C stack unseen). Other boards: heap_lock(). CPython: tracemalloc
    peak above the start, `tolerance` bytes allowed (default TOLERANCE)."""

    def __init__(self, name="block", tolerance=None, lock=False):
        self._fn = None
        if callable(name):
            self._fn = name
            name = _fn_name(name)
        self.name = name
        self.tol = TOLERANCE if tolerance is None else tolerance
        self.lock = _compat.heap_lock is not None and (lock or _mode == _ALLOC)
        self.bytes = 0  # bytes the last check measured (calibration subtracted)
        self._m = 0
        self._hi = 0
        _calibrate()
        _na_calibrate()

    def __call__(self, *a, **k):
        fn = self._fn
        if fn is None:  # @no_alloc("name"): decorate
            return no_alloc(a[0], self.tol, self.lock)._named(self.name)
        self._begin()
        m = self._m
        hi = self._hi
        try:
            r = fn(*a, **k)
        except MemoryError:
            self._unlock()
            if self.lock:
                raise self._locked_error()
            raise
        d = self._count(m, hi)
        self._unlock()
        self._check(d - _na_fn - _ca * len(a) - _ck * len(k))
        return r

    def _named(self, name):
        self.name = name
        return self

    def __enter__(self):
        self._begin()
        return self

    def __exit__(self, et, ev, tb):
        d = self._count(self._m, self._hi)
        self._unlock()
        if et is None:
            self._check(d - _na_cm)
        elif self.lock and issubclass(et, MemoryError):
            raise self._locked_error()
        return False

    def _begin(self):
        if _mode == _TRACE:
            _tm_ensure()
            self._m, self._hi = _tm_begin()
            _tm.reset_peak()
            return
        if _mode == _TOTAL:
            self._m = _mem_total()
        if self.lock:
            _compat.heap_lock()

    def _count(self, m, hi):
        if _mode == _TRACE:
            return _tm_end(m, hi)
        if _mode == _TOTAL and not self.lock:
            return _mem_total() - m
        return 0  # under heap_lock an allocation raises MemoryError instead

    def _unlock(self):
        if self.lock:
            _compat.heap_unlock()

    def _locked_error(self):
        return AllocationError("no_alloc: %s allocated (MemoryError under heap_lock)" % self.name)

    def _check(self, d):
        if d < 0:
            d = 0
        self.bytes = d
        if d > self.tol:
            raise AllocationError("no_alloc: %s allocated %d bytes" % (self.name, d))


_na_cm = 0  # bytes of an empty `with no_alloc():` window
_na_fn = 0  # bytes of a @no_alloc call of an empty function (no arguments)
_na_done = False


def _na_calibrate():
    global _na_cm, _na_fn, _na_done
    if _na_done:
        return
    _na_done = True
    cm = no_alloc("cal", 1 << 30, False)
    fn = no_alloc(_nop0, 1 << 30, False)
    a = b = None
    for _ in range(_CAL_N // 4):
        with cm:
            pass
        if a is None or cm.bytes < a:
            a = cm.bytes
        fn()
        if b is None or fn.bytes < b:
            b = fn.bytes
    _na_cm = a
    _na_fn = b


# ---------------------------------------------------------------- snapshots


class Snapshot:
    """Heap state in bytes: free, alloc, largest free block, frag = 1 - largest/free.

        a = prof.snapshot(); ...; print(prof.diff(a, prof.snapshot()))
    method: "meminfo" (mem_info() text via os.dupterm), "probe" (binary search
    for the largest bytearray), "tracemalloc" (CPython model) or "diff"."""

    def __init__(self, free, alloc, largest, method, frag=None):
        self.free = free
        self.alloc = alloc
        self.largest = largest
        self.method = method
        if frag is None:
            frag = 1.0 - largest / free if free > 0 else 0.0
        self.frag = frag

    def as_dict(self):
        return {
            "free": self.free,
            "alloc": self.alloc,
            "largest": self.largest,
            "frag": self.frag,
            "method": self.method,
        }

    def __repr__(self):
        return "<Snapshot free=%d alloc=%d largest=%d frag=%.3f %s>" % (
            self.free,
            self.alloc,
            self.largest,
            self.frag,
            self.method,
        )


def set_heap(nbytes):
    """CPython only: the heap snapshots are computed against; the bytes traced
    now become its zero (default: 131072, zero at the first snapshot)."""
    global _heap, _base
    if nbytes <= 0:
        raise ValueError("heap must be > 0")
    _heap = nbytes
    _base = None


def snapshot(method=None):
    """Collect, then measure the heap: a Snapshot.

    MicroPython: free/alloc from gc.mem_free()/gc.mem_alloc(); largest from the
    mem_info() text captured through os.dupterm where the port has it, else by
    probe (method="probe" forces it): a bounded binary search for the largest
    bytearray that can be allocated, exact to one heap block. CPython: alloc is
    tracemalloc's traced bytes above those at the first snapshot (or set_heap),
    free = heap - alloc, largest = free (no fragmentation model)."""
    gc.collect()
    if _mode == _TRACE:
        global _base
        _tm_ensure()
        alloc = _tm.get_traced_memory()[0]
        if _base is None:
            _base = alloc
        alloc = alloc - _base if alloc > _base else 0
        free = _heap - alloc if _heap > alloc else 0
        return Snapshot(free, alloc, free, "tracemalloc")
    free = _compat.mem_free()
    alloc = _compat.mem_alloc()
    largest = None
    if method != "probe":
        largest = _meminfo_largest()
    if largest is None:
        largest = _probe(free)
        method = "probe"
    else:
        method = "meminfo"
    return Snapshot(free, alloc, largest, method)


def diff(a, b):
    """b - a, field by field, as a Snapshot (method "diff")."""
    return Snapshot(b.free - a.free, b.alloc - a.alloc, b.largest - a.largest, "diff", b.frag - a.frag)


def _probe(free):
    # Largest bytearray payload that can be allocated now, to one heap block.
    # A failed try makes the allocator collect first, so earlier tries' garbage
    # never hides space. Cost: <= _PROBE_STEPS allocations (zero-filled) and
    # collections; it churns the heap, never call it in a hot loop.
    lo = 0
    hi = free + 1
    b = None
    n = 0
    while hi - lo > _BLOCK and n < _PROBE_STEPS:
        mid = (lo + hi) // 2
        try:
            b = bytearray(mid)
            lo = mid
        except MemoryError:
            hi = mid
        b = None  # noqa: F841 - drop the probe buffer before the next try
        n += 1
    gc.collect()
    return lo


def parse_max_free(text):
    """Blocks of the `max free sz: N` figure of micropython.mem_info() text, or None."""
    key = b"max free sz: "
    i = text.find(key)
    if i < 0:
        return None
    i += len(key)
    n = 0
    j = i
    while j < len(text) and 48 <= text[j] <= 57:
        n = n * 10 + text[j] - 48
        j += 1
    return n if j > i else None


def _meminfo_largest():
    # Board ports: capture mem_info()'s text through os.dupterm into a
    # preallocated buffer (it still goes to the console too). Unix: no dupterm.
    d = _compat.dupterm
    if d is None or _compat.micropython is None:
        return None
    try:
        import io

        class _Cap(io.IOBase):
            def __init__(self):
                self.buf = bytearray(_CAP)
                self.n = 0

            def write(self, data):
                buf = self.buf
                n = self.n
                for c in data:
                    if n < _CAP:
                        buf[n] = c
                        n += 1
                self.n = n
                return len(data)

            def readinto(self, buf):
                return None

        cap = _Cap()
        old = d(cap)
        try:
            _compat.micropython.mem_info()
        finally:
            d(old)
        blocks = parse_max_free(memoryview(cap.buf)[: cap.n])
    except Exception:  # no IOBase, dupterm refuses the stream, ...: probe instead
        return None
    return None if blocks is None else blocks * _BLOCK


# ---------------------------------------------------------------- leaks


class LeakResult:
    """slope: retained bytes per run (least squares); leaked: slope > threshold."""

    def __init__(self, slope, threshold, samples, warmups):
        self.slope = slope
        self.threshold = threshold
        self.leaked = slope > threshold
        self.samples = samples
        self.warmups = warmups

    def __repr__(self):
        return "<LeakResult %s: %.1f B/run over %d runs after %d warm-ups (threshold %s B/run)>" % (
            "LEAK" if self.leaked else "ok",
            self.slope,
            len(self.samples),
            self.warmups,
            self.threshold,
        )


def slope(ys):
    """Least-squares slope of ys against 0, 1, 2, ..."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx = (n - 1) / 2
    my = sum(ys) / n
    sxy = 0.0
    sxx = 0.0
    for i in range(n):
        dx = i - mx
        sxy += dx * (ys[i] - my)
        sxx += dx * dx
    return sxy / sxx


class LeakCheck:
    """Call fn repeatedly and fit the bytes still held after a collection.

        r = prof.LeakCheck(step, warmups=3, runs=20, threshold=16).run()
        assert not r.leaked, r

    Retained bytes: gc.mem_alloc() after gc.collect() (MicroPython), traced
    bytes after gc.collect() (CPython). Samples live in a preallocated array, so
    the check itself retains nothing per run."""

    def __init__(self, fn, warmups=3, runs=20, threshold=16):
        if runs < 3:
            raise ValueError("runs must be >= 3")
        if warmups < 0:
            raise ValueError("warmups must be >= 0")
        self.fn = fn
        self.warmups = warmups
        self.runs = runs
        self.threshold = threshold

    def run(self):
        fn = self.fn
        started = False
        if _mode == _TRACE and not _tm.is_tracing():
            _tm.start()
            started = True
        try:
            for _ in range(self.warmups):
                fn()
            s = array("i", [0] * self.runs)
            gc.collect()
            for i in range(self.runs):
                fn()
                gc.collect()
                s[i] = _tm.get_traced_memory()[0] if _mode == _TRACE else _mem_alloc()
        finally:
            if started:
                _tm.stop()
        s = list(s)
        return LeakResult(slope(s), self.threshold, s, self.warmups)


# ---------------------------------------------------------------- lines


def lines(fn, *a, **k):
    """Run fn(*a, **k) once under sys.settrace and attribute bytes to its lines:
    -> [(lineno, hits, bytes)] by line. Bytes use this runtime's counter
    (mem_total requests; CPython: net traced bytes, may be negative). Nested
    calls count for the calling line. Raises NotImplementedError without
    sys.settrace (the unix port's standard build)."""
    settrace = _compat.settrace
    if settrace is None:
        raise NotImplementedError("line profiling needs sys.settrace (a MICROPY_PY_SYS_SETTRACE build)")
    if _mode == _TRACE:
        _tm_ensure()

        def count():
            return _tm.get_traced_memory()[0]

    elif _mode == _TOTAL:
        count = _mem_total
    else:
        count = _mem_alloc
    code = getattr(fn, "__code__", None)
    name = _fn_name(fn)
    rows = {}
    line = [None]  # the line being measured
    # Counter at its start and now: in an array on CPython, so no int object
    # of ours stays alive across a measured line.
    mark = array("q", [0, 0]) if _mode == _TRACE else [0, 0]

    def local(frame, event, arg):
        mark[1] = count()
        if line[0] is not None:
            rows[line[0]][1] += mark[1] - mark[0]
            line[0] = None
        if event == "line":
            ln = frame.f_lineno
            r = rows.get(ln)
            if r is None:
                r = rows[ln] = [0, 0]
            r[0] += 1
            line[0] = ln
        mark[0] = count()
        return local

    def glob(frame, event, arg):
        c = frame.f_code
        if event == "call" and (c is code if code is not None else c.co_name == name):
            mark[0] = count()
            return local
        return None

    g = gc.isenabled()
    if _mode == _ALLOC:
        gc.disable()
    settrace(glob)
    try:
        fn(*a, **k)
    finally:
        settrace(None)
        if g:
            gc.enable()
    return [(ln, rows[ln][0], rows[ln][1]) for ln in sorted(rows)]


def print_lines(rows, fn=None, file=None):
    """Print lines() output like memory_profiler: line, hits, bytes, source."""
    file = file or sys.stdout
    src = []
    code = getattr(fn, "__code__", None)
    if code is not None:
        try:
            with open(code.co_filename) as f:
                src = f.read().split("\n")
        except OSError:
            src = []
    print("%6s %6s %10s  %s" % ("line", "hits", "bytes", "source"), file=file)
    for ln, hits, b in rows:
        text = src[ln - 1].rstrip() if 0 < ln <= len(src) else ""
        print("%6d %6d %10d  %s" % (ln, hits, b, text), file=file)
