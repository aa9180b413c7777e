# lowwater.prof.leaks: LeakCheck, the bytes a function keeps per run, fitted
# over repeated runs (docs/profiling.md).
import gc
from array import array

from lowwater._compat import mem_alloc
from lowwater.prof import meter
from lowwater.prof.meter import TRACE


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
        tm = None
        started = False
        if meter.MODE == TRACE:
            tm = meter.tracer().tm
            if not tm.is_tracing():
                tm.start()
                started = True
        try:
            for _ in range(self.warmups):
                fn()
            s = array("i", [0] * self.runs)
            gc.collect()
            for i in range(self.runs):
                fn()
                gc.collect()
                s[i] = tm.get_traced_memory()[0] if tm is not None else mem_alloc()
        finally:
            if started:
                tm.stop()
        s = list(s)
        return LeakResult(slope(s), self.threshold, s, self.warmups)
