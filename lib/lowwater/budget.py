# lowwater.budget: the memory budget monitor (docs/budget.md).
#
# Allocation: tick() allocates nothing (a countdown and a compare, proven by
# host_tests/portable/test_budget.py). check() runs every check_every ticks:
# it calls gc.collect() and reads free/allocated memory through the source
# (GcSource: gc.mem_free walks the heap, which is why it is never called per
# chunk) and requests a fixed few hundred bytes of short-lived frames on the
# unix port (measured figure in docs/budget.md). Not IRQ-safe (gc.collect).
import gc

from lowwater._compat import mem_free, mem_alloc, ticks_diff, ticks_us

# Levels: interned strings, compared by identity or equality.
OK = "ok"
WARN = "warn"
CRITICAL = "critical"


class GcSource:
    """MicroPython's own heap: gc.collect, gc.mem_free, gc.mem_alloc."""

    def __init__(self):
        if mem_free is None:
            raise RuntimeError("gc.mem_free missing: use TracemallocSource")
        # The builtins themselves, so a check adds no Python frames.
        self.collect = gc.collect
        self.free = mem_free
        self.alloc = mem_alloc


class TracemallocSource:
    """CPython: memory traced by tracemalloc, against a configured heap size.

    Starts tracemalloc if it is not tracing; only allocations made after that
    are seen, so free() = heap - traced bytes is the budget left since then.
    """

    def __init__(self, heap):
        import tracemalloc

        if heap <= 0:
            raise ValueError("heap must be > 0")
        if not tracemalloc.is_tracing():
            tracemalloc.start()
        self._traced = tracemalloc.get_traced_memory
        self.heap = heap

    def collect(self):
        gc.collect()

    def alloc(self):
        return self._traced()[0]

    def free(self):
        return self.heap - self._traced()[0]


def default_source(heap):
    """GcSource where gc.mem_free exists (MicroPython), else TracemallocSource."""
    if mem_free is not None:
        return GcSource()
    return TracemallocSource(heap)


def _positive(v, name):
    if type(v) is not int:
        raise ValueError(name + " must be int")
    if v <= 0:
        raise ValueError(name + " must be > 0")


class Budget:
    """Watches free memory every `check_every` chunks and reports pressure.

    b = Budget(heap, warn_free, min_free, check_every=256, telemetry=tel)
    b.on_pressure(lambda level, free: store.shed())
    while True:
        ...process one chunk...
        if b.tick() is CRITICAL: ...   # tick() returns the current level
    """

    def __init__(self, heap, warn_free, min_free, check_every=256, source=None, telemetry=None):
        _positive(heap, "heap")
        _positive(warn_free, "warn_free")
        _positive(min_free, "min_free")
        if type(check_every) is not int:
            raise ValueError("check_every must be int")
        if check_every < 1:
            raise ValueError("check_every < 1")
        if warn_free > heap:
            raise ValueError("warn_free > heap")
        if min_free > warn_free:
            raise ValueError("min_free > warn_free")
        self.heap = heap
        self.warn_free = warn_free
        self.min_free = min_free
        self.check_every = check_every
        self.source = source if source is not None else default_source(heap)
        self.telemetry = telemetry
        self.level = OK
        self.free = None  # free bytes at the last check
        self.gc_us = None  # gc.collect() pause of the last check
        self.alloc = None
        self.low_water = None  # lowest free seen by a check
        self.checks = 0
        self.handler_errors = 0
        self._left = check_every  # ticks until the next check
        self._ticked = 0  # ticks already counted into checks
        self._n_ok = 0
        self._n_warn = 0
        self._n_crit = 0
        self._gc_max = 0
        self._gc_sum = 0
        self._handlers = []

    def on_pressure(self, fn):
        """Call fn(level, free) on every check whose level is not OK; returns fn."""
        self._handlers.append(fn)
        return fn

    def tick(self):
        """Once per chunk: a countdown; every check_every-th call runs check().
        Returns the current level. Allocates nothing when it does not check."""
        n = self._left - 1
        if n:
            self._left = n
            return self.level
        self._left = self.check_every
        self._ticked += self.check_every
        return self.check()

    def check(self):
        """Collect, measure, classify; notify handlers and telemetry. Returns the level."""
        # Split into small methods (_measure, _emit, _notify, _call): each
        # frame stays within the VM's on-stack limit (shared/notes/perf.md),
        # so a check requests no heap of its own (docs/budget.md).
        t0 = ticks_us()
        self.source.collect()
        return self._measure(ticks_diff(ticks_us(), t0))

    def _measure(self, us):
        free = self.source.free()
        self.alloc = self.source.alloc()
        self.free = free
        lw = self.low_water
        if lw is None or free < lw:
            self.low_water = free
        self.checks += 1
        if us > self._gc_max:
            self._gc_max = us
        self._gc_sum += us
        if free < self.min_free:
            level = CRITICAL
            self._n_crit += 1
        elif free < self.warn_free:
            level = WARN
            self._n_warn += 1
        else:
            level = OK
            self._n_ok += 1
        self.gc_us = us
        old = self.level
        self.level = level
        if self.telemetry is not None:
            self._emit(old)
        if level is not OK:
            self._notify()
        return level

    def _emit(self, old):
        # Only self and old as locals: the 6-argument call needs a stack of 8
        # and the frame must stay within ~11 words to avoid the heap.
        self.telemetry.mem(self.checks, self.free, self.alloc, self.low_water, self.level, self.gc_us)
        if old is not self.level:
            self.telemetry.lvl(old, self.level, self.free)

    def _notify(self):
        # The loop and the try live in separate small frames (stack budget).
        for fn in self._handlers:
            self._call(fn)

    def _call(self, fn):
        try:
            fn(self.level, self.free)
        except Exception:  # a failing handler must not stop the monitor
            self.handler_errors += 1

    def gc_mean_us(self):
        return self._gc_sum // self.checks if self.checks else 0

    def report(self):
        """Counters as a dict (allocates: call it at the end or on demand)."""
        return {
            "checks": self.checks,
            "ticks": self._ticked + self.check_every - self._left,
            "level": self.level,
            "free": self.free,
            "alloc": self.alloc,
            "low_water": self.low_water,
            "ok": self._n_ok,
            "warn": self._n_warn,
            "critical": self._n_crit,
            "gc_max_us": self._gc_max,
            "gc_mean_us": self.gc_mean_us(),
            "handler_errors": self.handler_errors,
        }
