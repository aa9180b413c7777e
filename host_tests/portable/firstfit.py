# FirstFit, the classic toy malloc, and a seeded workload comparing it with
# lowwater.pool. Portable (CPython and MicroPython) so tests and benchmarks share it.
#
# Layout: one bytearray of blocks, each starting with a 4-byte little-endian
# header word = block size (header included, a multiple of 4) | 1 if free.
# alloc() walks the headers from offset 0 and takes the first free run that fits,
# merging adjacent free blocks as it passes (lazy coalescing) and splitting the
# rest off; `scanned` counts the headers it examined, a deterministic cost figure.
import gc
import sys

import ptest
from lowwater.pool import SizeClassPool

_HDR = 4


class NoFit(MemoryError):
    """FirstFit found no free run (a real heap MemoryError is something else)."""


class FirstFit:
    """f = FirstFit(4096); off = f.alloc(100); f.free(off); f.largest_free()"""

    def __init__(self, arena_bytes):
        n = arena_bytes // 4 * 4
        if n < 2 * _HDR:
            raise ValueError("arena too small")
        self.size = n
        self._a = bytearray(n)
        self._put(0, n, 1)
        self._live = bytearray(n // 4)  # [o // 4] = 1 where a live block's header is
        self.nlive = 0
        self.scanned = 0  # headers examined by alloc(), cumulative
        self.allocs = 0
        self.failures = 0
        self.frag_failures = 0  # failures although free_bytes() would have fitted

    def _word(self, o):
        a = self._a
        return a[o] | (a[o + 1] << 8) | (a[o + 2] << 16) | (a[o + 3] << 24)

    def _put(self, o, size, free):
        w = size | free
        a = self._a
        a[o] = w & 0xFF
        a[o + 1] = (w >> 8) & 0xFF
        a[o + 2] = (w >> 16) & 0xFF
        a[o + 3] = (w >> 24) & 0xFF

    def _merge(self, o, size):
        # Grow the free block at o over the free blocks that follow it.
        end = o + size
        while end < self.size:
            w = self._word(end)
            if not w & 1:
                break
            end += w & ~1
        if end - o != size:
            self._put(o, end - o, 1)
        return end - o

    def alloc(self, n):
        """Payload offset of a new n-byte block; NoFit (a MemoryError) when no run fits."""
        if n < 1:
            raise ValueError("n must be >= 1")
        need = _HDR + (n + 3) // 4 * 4
        o = 0
        while o < self.size:
            self.scanned += 1
            w = self._word(o)
            size = w & ~1
            if w & 1:
                size = self._merge(o, size)
                if size >= need:
                    if size - need >= 2 * _HDR:
                        self._put(o, need, 0)
                        self._put(o + need, size - need, 1)
                    else:
                        self._put(o, size, 0)
                    self._live[o >> 2] = 1
                    self.nlive += 1
                    self.allocs += 1
                    return o + _HDR
            o += size
        self.failures += 1
        if self.free_bytes() >= need:
            self.frag_failures += 1
        raise NoFit("no free run")

    def free(self, offset):
        o = offset - _HDR
        if not 0 <= o < self.size or o & 3 or not self._live[o >> 2]:
            raise ValueError("not a live block")
        self._live[o >> 2] = 0
        self.nlive -= 1
        size = self._word(o) & ~1
        self._put(o, size, 1)
        self._merge(o, size)  # the free block before o merges on the next scan

    def live(self):
        return self.nlive

    def free_bytes(self):
        """Bytes outside live blocks (headers of free blocks included)."""
        free = 0
        o = 0
        while o < self.size:
            w = self._word(o)
            if w & 1:
                free += w & ~1
            o += w & ~1
        return free

    def largest_free(self):
        """Largest n for which alloc(n) would succeed now (0 if none)."""
        best = 0
        o = 0
        while o < self.size:
            w = self._word(o)
            size = w & ~1
            if w & 1:
                size = self._merge(o, size)
                best = max(best, size - _HDR)
            o += size
        return best


def line_count(fn, *args):
    """Python lines executed by fn(*args), via sys.settrace: a deterministic work
    measure. None where settrace is unavailable (MicroPython builds without it)."""
    settrace = getattr(sys, "settrace", None)
    if settrace is None:
        return None
    n = [0]

    def tracer(frame, event, arg):
        if event == "line":
            n[0] += 1
        return tracer

    settrace(tracer)
    try:
        fn(*args)
    finally:
        settrace(None)
    return n[0]


def workload(seed=1, steps=2000, arena=16384, classes=None, big=4):
    """Run one seeded alloc/free sequence of mixed sizes on a FirstFit and a
    SizeClassPool with the same arena; return the figures as a dict.

    Each step allocates (p = 0.55, or when nothing is live) a block of 1..64 bytes
    (or 65..512 with p = 1/big) in both allocators, else frees one random live
    logical object in both. Failures are counted and the step goes on."""
    gc.collect()  # the two arenas want contiguous heap
    r = ptest.Rand(seed)
    ff = FirstFit(arena)
    pool = SizeClassPool(classes, arena)
    offs = []  # logical object j: offs[j] in FirstFit (or None), blocks[j] in the pool (or None)
    blocks = []
    for _ in range(steps):
        if not offs or r.next() % 100 < 55:
            n = r.randint(65, 512) if r.next() % big == 0 else r.randint(1, 64)
            try:
                o = ff.alloc(n)
            except NoFit:
                o = None
            b = pool.try_alloc(n)
            if o is not None or b is not None:
                offs.append(o)
                blocks.append(b)
        else:
            j = r.next() % len(offs)
            o = offs[j]
            b = blocks[j]
            offs[j] = offs[-1]
            blocks[j] = blocks[-1]
            offs.pop()
            blocks.pop()
            if o is not None:
                ff.free(o)
            if b is not None:
                pool.free(b)
    st = pool.stats()
    return {
        "steps": steps,
        "live": len(offs),
        "ff_allocs": ff.allocs,
        "ff_failures": ff.failures,
        "ff_frag_failures": ff.frag_failures,
        "ff_free_bytes": ff.free_bytes(),
        "ff_largest_free": ff.largest_free(),
        "ff_scanned": ff.scanned,
        "ff_live": ff.live(),
        "pool_failures": st["failures"],
        "pool_used": st["used"],
        "pool_waste": st["waste"],
        "pool_free_bytes": st["arena"] - st["used_bytes"],
        "pool_classes_free": sum(1 for c in st["classes"] if c["available"]),
        "ff": ff,
        "pool": pool,
    }


def fill_cost(k, size=16):
    """Headers FirstFit scans for the k-th allocation into an arena holding k-1
    live blocks of `size` bytes (no frees), next to BlockPool's work: the pool
    takes no loop at all, so its cost is the same at any fill."""
    ff = FirstFit((k + 1) * (size + _HDR))
    for _ in range(k - 1):
        ff.alloc(size)
    before = ff.scanned
    ff.alloc(size)
    return ff.scanned - before
