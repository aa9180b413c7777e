# lowwater.pool: fixed-block allocators over preallocated bytearrays.
#
# Everything is allocated in __init__: the arena, one memoryview per block, the
# free stacks and a dict id(view) -> block index. alloc()/try_alloc()/free()
# then allocate nothing (tested with ptest.assert_no_alloc on the unix port)
# except on error paths: a failed alloc() raises a NEW PoolExhausted, because a
# preallocated exception instance grows its traceback on every raise (a leak on
# MicroPython and CPython alike; docs/pool.md). try_alloc() returns None
# instead and never allocates. Blocks are identified in O(1) by id(); if a
# board places objects where id() is not a small int, free() falls back to an
# identity scan (still allocation-free). Not IRQ-safe against concurrent use
# from the main loop; see docs/pool.md.
import sys
from array import array

from lowwater._compat import const

_MAX_SIZE = const(0xFFFF)  # block sizes and counts are kept in array('H')
_ARENA = const(16384)  # SizeClassPool default arena


class PoolExhausted(MemoryError):
    pass


def _views(buf, size, count):
    mv = memoryview(buf)
    return [mv[i * size : (i + 1) * size] for i in range(count)]


def _id_map(views):
    # id(view) -> index, or None when some id() is not a small int (it would
    # allocate a long int on every free()).
    top = sys.maxsize >> 1
    ids = {}
    for i in range(len(views)):
        v = id(views[i])
        if not 0 <= v <= top:
            return None
        ids[v] = i
    return ids


def _find(views, ids, block):
    # Index of `block` among `views` (by identity), or -1.
    if ids is not None:
        i = ids.get(id(block), -1)
        if i >= 0 and views[i] is block:
            return i
        return -1
    for i in range(len(views)):
        if views[i] is block:
            return i
    return -1


class BlockPool:
    """`count` blocks of `block_size` bytes, handed out as memoryviews.

    p = BlockPool(256, 8); b = p.alloc(); sensor.readinto(b); ...; p.free(b)
    """

    def __init__(self, block_size, count, buf=None):
        if type(block_size) is not int or block_size < 1:
            raise ValueError("block_size must be an int >= 1")
        if type(count) is not int or not 1 <= count <= _MAX_SIZE:
            raise ValueError("count must be an int in 1..65535")
        n = block_size * count
        if buf is None:
            buf = bytearray(n)
        elif len(buf) < n:
            raise ValueError("buf too small")
        self.block_size = block_size
        self.count = count
        self._buf = buf  # keeps the arena alive
        self._views = _views(buf, block_size, count)
        self._ids = _id_map(self._views)
        # Free stack: _stack[0:available] are free block indices, top last.
        self._stack = array("H", range(count - 1, -1, -1))
        self._live = bytearray(count)  # 1 while a block is handed out
        self.available = count
        self.used = 0
        self.high_water = 0
        self.failures = 0

    def try_alloc(self):
        """A free block, or None (and a failure counted) when none is left."""
        n = self.available
        if not n:
            self.failures += 1
            return None
        n -= 1
        self.available = n
        i = self._stack[n]
        self._live[i] = 1
        n = self.used + 1
        self.used = n
        if n > self.high_water:
            self.high_water = n
        return self._views[i]

    def alloc(self):
        """A free block (memoryview of block_size bytes); PoolExhausted when none."""
        b = self.try_alloc()
        if b is None:
            raise PoolExhausted("pool exhausted")
        return b

    def free(self, block):
        """Return a block; ValueError for a double free or a foreign object."""
        i = _find(self._views, self._ids, block)
        if i < 0:
            raise ValueError("not a block of this pool")
        if not self._live[i]:
            raise ValueError("double free")
        self._live[i] = 0
        self._stack[self.available] = i
        self.available += 1
        self.used -= 1


def _split(classes, arena):
    # Default block counts: every class gets arena // len(classes) bytes rounded
    # down to whole blocks; the remainder is then dealt out one block at a time,
    # largest class first, round after round, until no block fits.
    share = arena // len(classes)
    if share < classes[-1]:
        raise ValueError("arena too small: needs %d" % (classes[-1] * len(classes)))
    counts = [share // c for c in classes]
    left = arena
    for i in range(len(classes)):
        left -= classes[i] * counts[i]
    dealt = True
    while dealt:
        dealt = False
        for i in range(len(classes) - 1, -1, -1):
            if classes[i] <= left:
                counts[i] += 1
                left -= classes[i]
                dealt = True
    return counts


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class SizeClassPool:
    """pymalloc-style size classes carved from one arena.

    p = SizeClassPool()            # classes 16, 32, .. 512 B over 16 KiB
    b = p.alloc(40)                # a 48-byte block; p.free(b) returns it
    SizeClassPool((64, 256), counts=(8, 2))  # explicit block counts
    """

    def __init__(self, classes=None, arena=None, counts=None):
        classes = tuple(range(16, 513, 16)) if classes is None else tuple(classes)
        nc = len(classes)
        if not 0 < nc <= 255:
            raise ValueError("need 1..255 classes")
        last = 0
        for c in classes:
            if type(c) is not int or c <= last or c > _MAX_SIZE:
                raise ValueError("classes must be ascending ints in 1..65535")
            last = c
        if counts is not None:
            counts = list(counts)
            if len(counts) != nc:
                raise ValueError("counts must match classes")
            for k in counts:
                if type(k) is not int or k < 0:
                    raise ValueError("counts must be ints >= 0")
        else:
            arena = _ARENA if arena is None else arena
            if type(arena) is not int or arena < 1:
                raise ValueError("arena must be an int >= 1")
            counts = _split(classes, arena)
        total = 0
        for i in range(nc):
            total += classes[i] * counts[i]
        if arena is not None and total > arena:
            raise ValueError("counts need %d bytes, arena is %d" % (total, arena))
        nb = sum(counts)
        if not 0 < nb <= _MAX_SIZE:
            raise ValueError("need 1..65535 blocks")
        self.classes = classes
        self.arena = total  # bytes actually carved (<= the arena asked for)
        self._buf = bytearray(total)
        mv = memoryview(self._buf)
        views = []
        self._cls = bytearray(nb)  # block -> class
        self._first = array("H", [0] * nc)  # class -> its first block
        self._top = array("H", counts)  # class -> free blocks (stack height)
        self._used = array("H", [0] * nc)
        self._high = array("H", [0] * nc)
        self._fail = array("i", [0] * nc)
        self._counts = tuple(counts)
        off = 0
        for c in range(nc):
            size = classes[c]
            self._first[c] = len(views)
            for _ in range(counts[c]):
                self._cls[len(views)] = c
                views.append(mv[off : off + size])
                off += size
        self._views = views
        self._ids = _id_map(views)
        # Each class's free stack lives in _stack[_first[c]:_first[c] + _top[c]].
        self._stack = array("H", range(nb))
        self._live = bytearray(nb)
        self._asked = array("H", [0] * nb)  # bytes asked for each live block
        # Size -> class lookup in steps of the classes' gcd.
        g = 0
        for c in classes:
            g = _gcd(c, g)
        self._g = g
        lut = bytearray(classes[-1] // g + 1)
        c = 0
        for j in range(len(lut)):
            while classes[c] < j * g:
                c += 1
            lut[j] = c
        self._lut = lut
        self._max = classes[-1]
        self.waste = 0  # bytes handed out minus bytes asked, over live blocks

    def try_alloc(self, n):
        """Block of the smallest class >= n, or None when that class is full."""
        if not 0 < n <= self._max:
            raise ValueError("size out of range")
        c = self._lut[(n + self._g - 1) // self._g]
        t = self._top[c]
        if not t:
            self._fail[c] += 1
            return None
        t -= 1
        self._top[c] = t
        t = self._stack[self._first[c] + t]
        self._live[t] = 1
        self._asked[t] = n
        self.waste += self.classes[c] - n
        self._used[c] += 1
        if self._used[c] > self._high[c]:
            self._high[c] = self._used[c]
        return self._views[t]

    def alloc(self, n):
        """A memoryview of exactly the class size (>= n); PoolExhausted when the
        class is full (no fall-back to a larger class), ValueError if n < 1 or
        n > the largest class."""
        b = self.try_alloc(n)
        if b is None:
            raise PoolExhausted("pool exhausted")
        return b

    def free(self, block):
        i = _find(self._views, self._ids, block)
        if i < 0:
            raise ValueError("not a block of this pool")
        if not self._live[i]:
            raise ValueError("double free")
        self._live[i] = 0
        c = self._cls[i]
        t = self._top[c]
        self._stack[self._first[c] + t] = i
        self._top[c] = t + 1
        self._used[c] -= 1
        self.waste -= self.classes[c] - self._asked[i]

    def class_of(self, n):
        """Index of the class serving a request of n bytes."""
        if not 0 < n <= self._max:
            raise ValueError("size out of range")
        return self._lut[(n + self._g - 1) // self._g]

    @property
    def used(self):
        return sum(self._used)

    @property
    def failures(self):
        return sum(self._fail)

    def stats(self):
        """{'arena', 'used', 'used_bytes', 'waste', 'failures', 'classes': [per class
        {'size', 'blocks', 'used', 'available', 'high_water', 'failures'}]}."""
        per = []
        used_bytes = 0
        for c in range(len(self.classes)):
            used_bytes += self._used[c] * self.classes[c]
            per.append(
                {
                    "size": self.classes[c],
                    "blocks": self._counts[c],
                    "used": self._used[c],
                    "available": self._top[c],
                    "high_water": self._high[c],
                    "failures": self._fail[c],
                }
            )
        return {
            "arena": self.arena,
            "used": self.used,
            "used_bytes": used_bytes,
            "waste": self.waste,
            "failures": self.failures,
            "classes": per,
        }
