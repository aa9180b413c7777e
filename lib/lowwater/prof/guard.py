# lowwater.prof.guard: no_alloc, a block or a function that must not allocate
# heap (docs/profiling.md), and its AllocationError.
from lowwater import _compat
from lowwater._compat import mem_total
from lowwater.prof import meter
from lowwater.prof.meter import ALLOC, CAL_N, MODE, TOLERANCE, TOTAL, TRACE, fn_name


class AllocationError(AssertionError):
    """A no_alloc block allocated heap."""


class _Calibration:
    # Bytes of the guard's own mechanism, measured once on empty blocks and
    # subtracted: one per process (_CAL below), module-level on purpose.
    def __init__(self):
        self.cm = 0  # an empty `with no_alloc():` window
        self.fn = 0  # a @no_alloc call of an empty function, no arguments
        self.a = 0  # each positional argument of the call
        self.k = 0  # each keyword argument
        self.done = False


_CAL = _Calibration()
_TRACER = meter.tracer()


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
            name = fn_name(name)
        self.name = name
        self.tol = TOLERANCE if tolerance is None else tolerance
        self.lock = _compat.heap_lock is not None and (lock or MODE == ALLOC)
        self.bytes = 0  # bytes the last check measured (calibration subtracted)
        self._m = 0
        self._hi = 0
        _calibrate()

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
        self._check(d - _CAL.fn - _CAL.a * len(a) - _CAL.k * len(k))
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
            self._check(d - _CAL.cm)
        elif self.lock and issubclass(et, MemoryError):
            raise self._locked_error()
        return False

    def _begin(self):
        if MODE == TRACE:
            _TRACER.ensure()
            self._m, self._hi = _TRACER.begin()
            _TRACER.tm.reset_peak()
            return
        if MODE == TOTAL:
            self._m = mem_total()
        if self.lock:
            _compat.heap_lock()

    def _count(self, m, hi):
        if MODE == TRACE:
            return _TRACER.end(m, hi)
        if MODE == TOTAL and not self.lock:
            return mem_total() - m
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


def _least(guard, a, k):
    # Smallest bytes of one guarded call (exact on MicroPython; on CPython the
    # minimum skips one-off allocations).
    least = None
    for _ in range(CAL_N // 4):
        guard(*a, **k)
        if least is None or guard.bytes < least:
            least = guard.bytes
    return least


def _calibrate():
    c = _CAL
    if c.done:
        return
    c.done = True  # first: the guards below must not calibrate again
    cm = no_alloc("cal", 1 << 30, False)
    least = None
    for _ in range(CAL_N // 4):
        with cm:
            pass
        if least is None or cm.bytes < least:
            least = cm.bytes
    fn = _least(no_alloc(meter.nop0, 1 << 30, False), (), {})
    a = _least(no_alloc(meter.nop1, 1 << 30, False), (1,), {}) - fn
    k = _least(no_alloc(meter.nopk, 1 << 30, False), (), {"x": 1}) - fn
    c.cm = least
    c.fn = fn
    c.a = a if a > 0 else 0
    c.k = k if k > 0 else 0
