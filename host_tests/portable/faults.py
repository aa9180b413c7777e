# faults: fault injectors for tests and soak runs, on the unix port or a board:
# sensors that fail (OSError as an I2C NACK, short reads, garbage, a hang), a
# memory hog that drives the budget to warn and critical with real allocations,
# and MemoryError (or any exception) at chosen calls. docs/reliability.md.
# Test-only: it lives in host_tests/portable (importable as `faults` by the
# portable tests on CPython and MicroPython) and is not part of any package a
# board gets (it was lowwater.faults; boards never import it). To use it on a
# board, copy it next to the test script (test_watchdog.py puts it in /lib).
# Allocates freely (it is not a hot path).
import gc
import time

from lowwater._compat import const

_ENODEV = const(19)  # what an I2C NACK raises on MicroPython ports (OSError 19)


class Fault:
    """Decides when an injected fault fires and raises it.

    f = Fault(MemoryError, every=7)      # calls 7, 14, 21, ... raise MemoryError
    f = Fault(OSError, _ENODEV, after=100, times=3)
    f.check()                            # call at the injection point

    Call k (1-based, counted while enabled) fires when k > after and
    (k - after) % every == 0, at most `times` times (-1: no limit). `fired`
    counts the faults raised; set `enabled = False` to end the faults."""

    def __init__(self, exc=MemoryError, arg=None, every=1, after=0, times=-1):
        if every < 1:
            raise ValueError("every must be >= 1")
        self.exc = exc
        self.arg = arg
        self.every = every
        self.after = after
        self.times = times
        self.calls = 0
        self.fired = 0
        self.enabled = True

    def due(self):
        """Count one call; True if this call must fail."""
        if not self.enabled:
            return False
        self.calls += 1
        k = self.calls - self.after
        if k <= 0 or k % self.every or self.times == self.fired:
            return False
        self.fired += 1
        return True

    def check(self):
        if self.due():
            if self.arg is None:
                raise self.exc
            raise self.exc(self.arg)


def inject(obj, name, fault):
    """Make obj.name(...) run fault.check() first: an instance attribute shadows
    the method. Returns the original bound method; restore(obj, name) undoes it.

    inject(fw.stats, "update", Fault(MemoryError, every=5))"""
    orig = getattr(obj, name)

    def faulty(*args):
        fault.check()
        return orig(*args)

    setattr(obj, name, faulty)
    return orig


def restore(obj, name):
    """Remove what inject(obj, name, ...) put on the instance."""
    delattr(obj, name)


class Faulty:
    """A stand-in that forwards to `inner` and runs fault.check() before the
    operations named, e.g. a store whose inserts fail:

    fw.store = Faulty(fw.store, Fault(MemoryError, every=3), ("__setitem__",))

    Item access, len() and `in` are forwarded; other attributes through
    __getattr__ (methods named in `names` are wrapped)."""

    def __init__(self, inner, fault, names):
        self.inner = inner
        self.fault = fault
        self.names = names

    def __getattr__(self, name):
        v = getattr(self.inner, name)
        if name in self.names:
            fault = self.fault

            def faulty(*args):
                fault.check()
                return v(*args)

            return faulty
        return v

    def __setitem__(self, k, v):
        if "__setitem__" in self.names:
            self.fault.check()
        self.inner[k] = v

    def __getitem__(self, k):
        if "__getitem__" in self.names:
            self.fault.check()
        return self.inner[k]

    def __len__(self):
        return len(self.inner)

    def __contains__(self, k):
        return k in self.inner


class NackSensor:
    """A sensor whose bus fails: readinto raises OSError(19) (ENODEV, what an
    I2C NACK raises) when `fault` says so (default: every `every`-th read)."""

    def __init__(self, inner, every=10, fault=None):
        self.inner = inner
        self.fault = fault if fault is not None else Fault(OSError, _ENODEV, every=every)
        self.reads = 0

    def readinto(self, buf):
        self.reads += 1
        self.fault.check()
        return self.inner.readinto(buf)


class ShortSensor:
    """A sensor that sometimes delivers less than asked: every `every`-th read
    returns `short` bytes (0, odd counts, ...; cycled), the buffer filled that far."""

    def __init__(self, inner, every=3, short=(0, 1, 7, 64)):
        self.inner = inner
        self.every = every
        self.short = short
        self.reads = 0
        self.shorts = 0

    def readinto(self, buf):
        self.reads += 1
        n = self.inner.readinto(buf)
        if self.reads % self.every == 0:
            k = self.short[self.shorts % len(self.short)]
            self.shorts += 1
            return k if k < n else n
        return n


class GarbageSensor:
    """A sensor that returns garbage: random bytes (xorshift32, seeded), and on
    every `bad_every`-th read an impossible count (-1, len(buf) + 1, None in turn)
    as a broken driver would. Counts `bad` reads."""

    def __init__(self, seed=1, bad_every=5):
        self.s = (seed & 0xFFFFFFFF) or 1
        self.bad_every = bad_every
        self.reads = 0
        self.bad = 0

    def _next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def readinto(self, buf):
        self.reads += 1
        n = len(buf)
        for i in range(n):
            buf[i] = self._next() & 0xFF
        if self.bad_every and self.reads % self.bad_every == 0:
            k = self.bad % 3
            self.bad += 1
            if k == 0:
                return -1
            if k == 1:
                return n + 1
            return None  # commit(None) means a full chunk: garbage, but a valid count
        return n


class HangSensor:
    """A sensor that stops answering: after `after` reads, readinto never returns
    (a bus that holds the clock low). With `flag` (a file path), it hangs only
    if that file exists and removes it first: one hang across resets."""

    def __init__(self, inner, after=100, flag=None):
        self.inner = inner
        self.after = after
        self.reads = 0
        self.armed = True
        if flag is not None:
            import os

            try:
                os.remove(flag)
            except OSError:
                self.armed = False

    def readinto(self, buf):
        self.reads += 1
        if self.armed and self.reads > self.after:
            while True:  # the watchdog is the only way out
                time.sleep(0.01)
        return self.inner.readinto(buf)


class MemoryHog:
    """Real allocations that eat the heap down to a target, as a leak or another
    task would. Free memory is read through a budget source (GcSource on
    MicroPython: gc.mem_free after gc.collect; TracemallocSource on CPython).

    hog = MemoryHog(fw.budget.source)
    hog.fill(fw.warn_free - 1024)   # free memory now just below warn_free
    hog.release()                   # the pressure ends
    """

    def __init__(self, source, block=512):
        self.source = source
        self.block = block
        # A chain of (block, rest) pairs, not a list: a list grows by
        # reallocation, which fails long before the heap is full.
        self._chain = None
        self.count = 0
        self.held = 0

    def free(self):
        self.source.collect()
        return self.source.free()

    def fill(self, target):
        """Allocate blocks until free memory is at or below `target` bytes, or
        until the heap refuses even 16 bytes (target 0: take everything).
        Returns free memory after a collect."""
        size = self.block
        free = self.free()
        while free > target:
            n = free - target
            if n > size:
                n = size
            if n < 16:
                n = 16
            try:
                self._chain = (bytearray(n), self._chain)
            except MemoryError:  # fragmented or full: try smaller pieces
                if size <= 16:
                    break
                size //= 2
                continue
            self.count += 1
            self.held += n
            free = self.source.free()
            if free <= target:
                free = self.free()  # confirm after a collect (garbage is not pressure)
        return self.free()

    def release(self):
        """Free everything held; returns free memory after a collect."""
        self._chain = None
        self.count = 0
        self.held = 0
        gc.collect()
        return self.free()
