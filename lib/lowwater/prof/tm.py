# lowwater.prof.tm: CPython only. tracemalloc as lowwater.prof's byte counter:
# started on first use (and stopped by prof.close() if started here), and peaks
# that nest (an inner measurement's reset_peak() must not hide bytes from the
# enclosing one). MicroPython never imports this module (meter.tracer()).
from lowwater._compat import get_tracemalloc, ticks_diff, ticks_us


class Tracer:
    def __init__(self, tm):
        self.tm = tm
        self.mine = False  # tracemalloc was started by lowwater.prof
        self.hi = 0  # peak seen by an inner measurement (reset_peak nests)

    def ensure(self):
        if not self.tm.is_tracing():
            self.tm.start()
            self.mine = True

    def stop(self):
        if self.mine and self.tm.is_tracing():
            self.tm.stop()
        self.mine = False

    def traced(self):
        return self.tm.get_traced_memory()[0]

    def begin(self):
        # -> (traced bytes now, peak so far for an enclosing measurement). The
        # caller calls tm.reset_peak() last, right before the measured code, so
        # the measuring objects' transient bytes stay out of the peak (only the
        # ints it keeps count, a constant the calibration subtracts).
        cur, peak = self.tm.get_traced_memory()
        hi = self.hi if self.hi > peak else peak
        self.hi = 0
        return cur, hi

    def end(self, b0, hi):
        # -> peak bytes above b0 since begin(), nested measurements included
        peak = self.tm.get_traced_memory()[1]
        if self.hi > peak:
            peak = self.hi
        self.hi = hi if hi > peak else peak
        return peak - b0

    def measure(self, fn, a, k):
        # @profile's measured call: -> (result, bytes, us). An exception passes
        # through with the nesting state kept.
        self.ensure()
        b, hi = self.begin()
        t = ticks_us()
        self.tm.reset_peak()
        try:
            r = fn(*a, **k)
        finally:
            t = ticks_diff(ticks_us(), t)
            b = self.end(b, hi)
        return r, b, t


# One per process, as tracemalloc itself is: module-level on purpose.
TRACER = Tracer(get_tracemalloc())
