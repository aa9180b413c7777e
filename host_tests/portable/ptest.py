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
