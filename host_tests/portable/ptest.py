# Portable test helpers: imported by tests that run on CPython AND MicroPython.
# No pytest here: the same module runs inside the MicroPython unix port.
# The generic helpers are the lowwater pytest plugin's `lwtest` (Skip, skip,
# raises, runtime_bits/name, heap_bytes, assert_no_alloc), on the path of every
# runtime the plugin runs; this module adds the suite's own.
from lwtest import (  # noqa: F401 - re-exported for the tests
    MICROPYTHON,
    _empty,
    Skip,
    assert_no_alloc,
    heap_bytes,
    raises,
    runtime_bits,
    runtime_name,
    skip,
)


class FakeMemory:
    """A Budget memory source the test drives: free() returns free_bytes."""

    def __init__(self, free):
        self.free_bytes = free

    def collect(self):
        pass

    def free(self):
        return self.free_bytes

    def alloc(self):
        return 1000


class Rand:
    """Seeded xorshift32: the same sequence on both runtimes (random differs)."""

    def __init__(self, seed=1):
        self.s = (seed & 0xFFFFFFFF) or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def randint(self, a, b):
        return a + self.next() % (b - a + 1)

    def bytes(self, n):
        b = bytearray(n)
        for i in range(n):
            b[i] = self.next() & 0xFF
        return bytes(b)


def field(line, key):
    """The value of `key=` in an LW1 line, or None."""
    for item in line.split(" "):
        if item.startswith(key + "="):
            return item[len(key) + 1 :]
    return None


class Sink:
    """A telemetry stream for tests: keeps the records of the kinds in `keep`
    as lines, counts every kind (counts) and the `err` records by where:exc
    (errs). No StringIO: it keeps every record in one buffer that grows by
    reallocation, and the MicroPython items run on a heap left fragmented by
    compiling the tests and lowwater from source, so a few KB of output needed
    a contiguous block that was there or not depending on where the compiler's
    leftovers landed: a real MemoryError in the firmware's telemetry, with the
    shedding it rightly starts, made a test's result depend on the layout of
    its module. Here every allocation is one line or smaller."""

    KEEP = ("boot", "lvl", "shed", "end", "log", "logopen")

    def __init__(self, keep=None):
        self.keep = self.KEEP if keep is None else keep
        self.parts = []
        self.lines = []
        self.counts = {}
        self.errs = {}  # "where:exc" -> count

    def write(self, s):
        if type(s) is not str:
            s = str(bytes(s), "ascii")
        while s:
            i = s.find("\n")
            if i < 0:
                self.parts.append(s)
                return
            if i:
                self.parts.append(s[:i])
            self._line("".join(self.parts))
            self.parts = []
            s = s[i + 1 :]

    def _line(self, line):
        kind = line[4 : line.index(" ", 4)]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "err":
            k = field(line, "where") + ":" + field(line, "exc")
            self.errs[k] = self.errs.get(k, 0) + 1
        if kind in self.keep:
            self.lines.append(line)

    def count(self, kind):
        return self.counts.get(kind, 0)

    def err_count(self, exc):
        return sum([v for k, v in self.errs.items() if k.endswith(":" + exc)])

    def records(self, kind):
        return [ln for ln in self.lines if ln.startswith("LW1 " + kind + " ")]


class GeneralRing:
    """A firmware's ChunkRing as step() sees it with no idle slot: every step
    takes the ring's general path (fill, then take), where the ring's methods
    are called; the straight read into an idle ring (Firmware.step's steady
    state) calls none, so a fault injected into them fires only here. The
    rest is the ring's own: fw.ring = GeneralRing(fw.ring)."""

    idle = None

    def __init__(self, ring):
        self._ring = ring

    def __getattr__(self, name):
        return getattr(self._ring, name)

    def __len__(self):
        return len(self._ring)


def ring_faults(fw, fault, inject):
    """Inject `fault` into the ring's methods that the firmware's general path
    calls (those of cycle, fill, take, commit it has), and put the firmware on
    that path (GeneralRing). inject is faults.inject."""
    for name in ("cycle", "fill", "take", "commit"):
        if hasattr(fw.ring, name):
            inject(fw.ring, name, fault)
    fw.ring = GeneralRing(fw.ring)
