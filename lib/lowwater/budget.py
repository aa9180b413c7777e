# lowwater.budget: the memory budget monitor (docs/budget.md).
#
# Allocation: tick() and due() allocate nothing (a countdown and a compare,
# proven by host_tests/portable/test_budget.py); neither does check() with the
# default GcSource (test_app.py runs the firmware under heap_lock).
#
# Cost (docs/budget.md, figures from `make bench`): gc.mem_free() and
# gc.mem_alloc() each walk the whole heap, and their sum is the fixed heap
# total. So a check reads free memory once (one walk) and derives the
# allocated bytes from the total, measured at start. It collects only when
# that reading warrants it: below warn_free (so every level is still judged on
# a collected heap, as before) or when free memory fell by more than `slack`
# since the last collection (garbage to clear at this controlled point). A loop
# that allocates nothing per chunk thus costs one walk per check, no collection.
# The walk itself is dear on a large heap (it grows with the heap), so the
# periodic point measures every `walk_every` periods only while free memory is
# well above warn_free (docs/budget.md: the spacing and its bound). walk_every
# is derived so that one walk costs at most 2 % of the firmware work of the
# chunks it is spread over: from the heap's GC blocks and the chunk size
# (walk_spacing below). Near warn_free (below warn_free + (warn_free -
# min_free)), and so at any level but OK, every periodic point measures. Not
# IRQ-safe (gc.collect).
import gc
import sys

from lowwater._compat import const, mem_alloc, mem_free, ticks_diff, ticks_us

# Levels: interned strings, compared by identity or equality.
OK = "ok"
WARN = "warn"
CRITICAL = "critical"

_BLOCK = 32 if sys.maxsize > 0xFFFFFFFF else 16  # a GC block: 4 words
_SLACK_DIV = const(16)  # default slack: heap // 16

# The walk spacing's cost model, in instructions (callgrind, unix port,
# docs/budget.md): gc.mem_free() spends ~42 per GC block of heap; the
# firmware's step costs at least _STEP_BASE + _STEP_BYTE per byte of chunk
# (below every figure measured, 64 B to 1 KiB chunks). One walk may take at
# most 1/_SHARE of the step work of the chunks between two walks at the
# profiles' period (_REF_EVERY chunks, check_every's default).
_WALK_COST = const(42)
_STEP_BASE = const(7000)
_STEP_BYTE = const(64)
_SHARE = const(50)  # 2 %: under the 3 % goal with room for the model's error
_REF_EVERY = const(256)


def walk_spacing(total, chunk_bytes=0, check_every=_REF_EVERY):
    """Default walk_every: periods between two heap walks, for a heap of `total`
    bytes, chunks of chunk_bytes and a period of check_every chunks.

    At check_every >= 256 the smallest spacing whose chunks cost _SHARE times
    one walk: ceil(N / check_every), N = blocks * 42 * 50 / step cost. A shorter
    period asks for quicker detection: the spacing in periods shrinks with it,
    ceil(N / 256 * check_every / 256). At least 1."""
    # per: the heap blocks one 256-chunk period pays a walk for
    per = (_STEP_BASE + _STEP_BYTE * chunk_bytes) * _REF_EVERY // (_WALK_COST * _SHARE)
    lo = min(check_every, _REF_EVERY)
    hi = max(check_every, _REF_EVERY)
    n = total // _BLOCK * lo  # init-time arithmetic: a large product may be a long int
    d = per * hi
    return max(1, (n + d - 1) // d)


class GcSource:
    """MicroPython's own heap: gc.collect, gc.mem_free, gc.mem_alloc."""

    def __init__(self):
        if mem_free is None:
            raise RuntimeError("gc.mem_free missing: use TracemallocSource")
        # The builtins themselves, so a check adds no Python frames.
        self.collect = gc.collect
        self.free = mem_free
        self.alloc = mem_alloc

    def total(self):
        """The heap's size in bytes (two walks: for set-up, not for checks)."""
        return mem_free() + mem_alloc()


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

    A loop that counts its own chunks calls b.due(n) once per n chunks instead
    of tick() per chunk. walk_every (None: walk_spacing() of the heap and
    chunk_bytes, the loop's chunk size, 0 if unknown) is how many periods pass
    between two measurements while free memory is at least warn_free plus the
    gap (warn_free - min_free); below that every period measures. slack (None:
    heap // 16) is how far free memory may fall below its last collected
    reading before a check collects. check() always measures.
    """

    def __init__(
        self,
        heap,
        warn_free,
        min_free,
        check_every=256,
        source=None,
        telemetry=None,
        walk_every=None,
        slack=None,
        chunk_bytes=0,
    ):
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
        # Heap total of the source, when it tells (GcSource): alloc = total - free.
        # A source that knows its total (GcSource) also gets its first collected
        # reading here, at start: the baseline the periodic checks compare with.
        self._base = None  # free bytes right after the last collection
        self._total = None
        if getattr(self.source, "total", None) is not None:
            self.source.collect()
            self._base = self.source.free()
            self._total = self.source.total()
        if walk_every is None:
            walk_every = walk_spacing(self._total, chunk_bytes, check_every) if self._total else 1
        _positive(walk_every, "walk_every")
        self.walk_every = walk_every
        self.slack = heap // _SLACK_DIV if slack is None else slack
        self.level = OK
        self.free = None  # free bytes at the last check
        self.gc_us = None  # gc.collect() pause of the last check (0: it did not collect)
        self.alloc = None
        self.low_water = None  # lowest free seen by a check
        self.checks = 0
        self.collections = 0
        self.handler_errors = 0
        self._left = check_every  # ticks until the next periodic point
        # periodic points until the next measurement: the first one measures;
        # a reading near warn_free sets 1 again (_measure)
        self._walk = 1
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
        """Once per chunk: a countdown; every check_every-th call is a periodic
        point (a check every walk_every of them). Returns the current level.
        Allocates nothing when it does not check."""
        n = self._left - 1
        if n:
            self._left = n
            return self.level
        self._left = self.check_every
        self._ticked += self.check_every
        return self._periodic()

    def due(self, n):
        """n chunks at once (a loop that counts its own chunks): the same as n
        calls of tick(), with at most one periodic point. Returns the level."""
        n = self._left - n
        if n > 0:
            self._left = n
            return self.level
        self._ticked += self.check_every - n
        self._left = self.check_every
        return self._periodic()

    def _periodic(self):
        n = self._walk - 1
        if n > 0:
            self._walk = n
            return self.level
        self._walk = self.walk_every
        return self.check()

    def check(self):
        """Measure (one heap walk), collect first when warranted, classify;
        notify handlers and telemetry. Returns the level."""
        # Split into small methods (_collect, _measure, _emit, _notify, _call):
        # each frame stays within the VM's on-stack limit (docs/performance.md),
        # so a check requests no heap of its own (docs/budget.md).
        free = self.source.free()
        b = self._base
        if b is None or free < self.warn_free or b - free > self.slack:
            return self._collect()
        return self._measure(free, 0)

    def _collect(self):
        t0 = ticks_us()
        self.source.collect()
        us = ticks_diff(ticks_us(), t0)
        free = self.source.free()
        self._base = free
        if self._total is not None:
            # re-read the total here (rare): a heap that grew (ESP32) is seen
            self._total = free + self.source.alloc()
        self.collections += 1
        if us > self._gc_max:
            self._gc_max = us
        self._gc_sum += us
        return self._measure(free, us)

    def _measure(self, free, us):
        t = self._total
        self.alloc = t - free if t is not None else self.source.alloc()
        self.free = free
        if free < 2 * self.warn_free - self.min_free:
            self._walk = 1  # near warn_free: the next periodic point measures
        lw = self.low_water
        if lw is None or free < lw:
            self.low_water = free
        self.checks += 1
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
        """Mean gc.collect() pause over the checks that collected."""
        return self._gc_sum // self.collections if self.collections else 0

    def report(self):
        """Counters as a dict (allocates: call it at the end or on demand)."""
        return {
            "checks": self.checks,
            "collections": self.collections,
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
