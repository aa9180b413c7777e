# lowwater.store: a bounded cache with weak-value semantics and no weakref.
#
# Entries may vanish at any time (LRU eviction past a bound, shed() under memory
# pressure) unless pinned. Layout: parallel per-slot arrays forming a circular
# doubly linked recency list whose slot 0 is the sentinel (_next[0] = oldest,
# _prev[0] = newest; free slots chain through _next), and an index key -> slot
# (lowwater._keyindex: no dict, no tombstones), so insert, lookup and delete
# are O(1) expected whatever the keys and the store's age.
#
# Allocation (unix port, tested): get / [] / in / set / pop / del and calling a
# ref handle on a present key allocate nothing with max_items (the index is
# made at init), unless sizeof() allocates (the default estimate() does for a
# buffer: pass sizeof= for a hot path); without max_items, set allocates when a
# slot is added or the index doubles. ref() allocates the handle;
# keys()/values()/items()/stats() build lists. Not IRQ-safe: main loop only.
# Details and figures: docs/store.md.
import sys
from array import array

from lowwater._compat import const
from lowwater._keyindex import KeyIndex

_GEN_MASK = const(0x3FFFFFFF)  # generations wrap here: stay small ints on 32-bit
_NO_LIMIT = const(0x3FFFFFFF)
_WARN_DIV = const(4)  # on_pressure("warn") sheds at least nbytes // 4
_DEPTH = const(3)  # estimate() descends this many container levels

# The size model is the MicroPython heap's: a GC block is 4 words.
_W = 8 if sys.maxsize > 0xFFFFFFFF else 4
_BLK = 4 * _W
_MISSING = object()


def _round(n):
    return (n + _BLK - 1) // _BLK * _BLK


# Type tuples live in globals: a literal (int, float) in a function body is
# built, i.e. allocated, on every call.
_SCALARS = (int, float)
_TEXT = (bytes, bytearray, str)
_BUFS = (memoryview, array)
_CONTAINERS = (tuple, list, dict)


def estimate(v, _depth=0):
    """Default sizeof: estimated heap bytes of v (docs/store.md). W = word size,
    B = one GC block = 4 W: 16 B on 32-bit boards, 32 B on 64-bit."""
    if v is None or v is True or v is False or isinstance(v, _SCALARS):
        return _BLK
    if isinstance(v, _TEXT):
        return _BLK + _round(len(v))
    if isinstance(v, _BUFS):
        return _BLK + (_round(len(v) * len(bytes(v[:1]))) if len(v) else 0)
    if isinstance(v, _CONTAINERS):
        return _container(v, _depth)
    return _BLK


def _container(v, depth):
    n = len(v)
    if isinstance(v, tuple):
        n = _round((2 + n) * _W)
    elif isinstance(v, list):
        n = _BLK + _round(n * _W)
    else:
        n = _BLK + _round(2 * n * _W)
    if depth < _DEPTH:
        n += _pairs(v, depth + 1) if isinstance(v, dict) else _items(v, depth + 1)
    return n


# The loops get their own small functions: a frame over ~11 words is
# heap-allocated on every call (docs/performance.md).
def _items(v, depth):
    t = 0
    for i in range(len(v)):
        t += estimate(v[i], depth)
    return t


def _pairs(d, depth):
    t = 0
    for k in d:
        t += estimate(k, depth)
        t += estimate(d[k], depth)
    return t


class Ref:
    """Handle from WeakStore.ref(k): h() is the value, or None once that entry
    was evicted, shed, deleted or replaced (as weakref.ref)."""

    def __init__(self, store, key, gen):
        self._s = store
        self._k = key
        self._g = gen

    def __call__(self):
        st = self._s
        s = st._ix.find(self._k)
        if s and st._gen[s] == self._g:
            st.hits += 1
            st._touch(s)
            return st._vals[s]
        st.misses += 1
        return None


class WeakStore:
    """Mapping whose entries are reclaimable unless pinned.

    s = WeakStore(max_items=16, max_bytes=4096)
    s["cal"] = buf; h = s.ref("cal"); s.pin("cal")  # held until s.unpin("cal")
    s.shed(1024)  # under pressure: drop unpinned entries, oldest first
    """

    def __init__(self, max_items=None, max_bytes=None, sizeof=None):
        if max_items is not None and (type(max_items) is not int or max_items < 1):
            raise ValueError("max_items must be an int >= 1")
        if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 1):
            raise ValueError("max_bytes must be an int >= 1")
        if sizeof is not None and not callable(sizeof):
            raise TypeError("sizeof must be callable")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._mi = _NO_LIMIT if max_items is None else max_items
        self._mb = _NO_LIMIT if max_bytes is None else max_bytes
        self._sizeof = sizeof or estimate
        n = 1 + (max_items or 0)  # slot 0 is the sentinel
        self._keys = [None] * n
        self._vals = [None] * n
        z = [0] * n
        self._prev = array("i", z)
        self._next = array("i", z)
        self._size = array("i", z)
        self._pins = array("i", z)
        self._gen = array("i", z)
        self._ix = KeyIndex(self._keys, n)
        self._g = 0
        self._free = 0
        self._chain_free(1)
        self.nbytes = 0  # sum of sizeof() over live entries, pinned included
        self.pinned = 0  # number of keys with a pin count > 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0  # entries dropped to stay within a bound
        self.shed_entries = 0  # entries dropped by shed()/shed_all()/on_pressure()
        self.shed_bytes = 0

    # -- slots and the recency list ---------------------------------------

    def _chain_free(self, first):
        nx = self._next
        for s in range(len(self._keys) - 1, first - 1, -1):
            nx[s] = self._free
            self._free = s

    def _grow(self):
        # Add one slot to the free chain (only when no max_items preallocated it).
        self._keys.append(None)
        self._vals.append(None)
        for a in (self._prev, self._next, self._size, self._pins, self._gen):
            a.append(0)
        self._ix.grow()
        self._chain_free(len(self._keys) - 1)
        return self._free

    def _touch(self, s):
        # Move slot s to the newest end. Few locals: this is the get hot path.
        pv = self._prev
        if pv[0] == s:
            return
        nx = self._next
        p = pv[s]
        n = nx[s]
        nx[p] = n
        pv[n] = p
        p = pv[0]
        nx[p] = s
        pv[s] = p
        nx[s] = 0
        pv[0] = s

    def _drop(self, s):
        # Remove slot s entirely; return its counted bytes.
        self._ix.remove(s)
        nx = self._next
        pv = self._prev
        p = pv[s]
        n = nx[s]
        nx[p] = n
        pv[n] = p
        self._keys[s] = None
        self._vals[s] = None
        if self._pins[s]:
            self._pins[s] = 0
            self.pinned -= 1
        size = self._size[s]
        self.nbytes -= size
        nx[s] = self._free
        self._free = s
        return size

    def _fit(self, keep, items, nbytes):
        # Evict the oldest unpinned entries (never slot `keep`) until `items`
        # more entries and `nbytes` more bytes fit, or nothing evictable is left.
        s = self._next[0]
        while s and (self._ix.count + items > self._mi or self.nbytes + nbytes > self._mb):
            n = self._next[s]
            if s != keep and not self._pins[s]:
                self._drop(s)
                self.evictions += 1
            s = n

    def _slot(self, k):
        # Slot of k; KeyError when absent, TypeError when unhashable.
        s = self._ix.find(k)
        if not s:
            hash(k)
            raise KeyError(k)
        return s

    # -- mapping ----------------------------------------------------------

    def __getitem__(self, k):
        s = self._ix.find(k)
        if s:
            self.hits += 1
            self._touch(s)
            return self._vals[s]
        hash(k)  # MicroPython's dict.get does not reject unhashables itself
        self.misses += 1
        raise KeyError(k)

    def get(self, k, default=None):
        s = self._ix.find(k)
        if s:
            self.hits += 1
            self._touch(s)
            return self._vals[s]
        hash(k)
        self.misses += 1
        return default

    def __contains__(self, k):
        if self._ix.find(k):
            return True
        hash(k)
        return False

    def __len__(self):
        return self._ix.count

    def __setitem__(self, k, v):
        # Split in three so that no frame exceeds the VM's on-stack limit.
        size = self._measure(v)
        s = self._ix.find(k)
        if s:
            self._replace(s, v, size)
        else:
            self._insert(k, v, size)

    def _measure(self, v):
        size = self._sizeof(v)
        if type(size) is not int or size < 0:
            raise ValueError("sizeof must return an int >= 0")
        if self.max_bytes is not None and size > self.max_bytes:
            raise ValueError("value larger than max_bytes")
        self._g = (self._g + 1) & _GEN_MASK
        return size

    def _replace(self, s, v, size):
        old = self._size[s]
        self._fit(s, 0, size - old)
        self._vals[s] = v
        self._size[s] = size
        self._gen[s] = self._g
        self.nbytes += size - old
        self._touch(s)

    def _insert(self, k, v, size):
        hash(k)  # TypeError before anything changes
        self._fit(0, 1, size)
        s = self._free or self._grow()
        self._ix.add(k, s)  # may raise MemoryError (growing, no max_items): nothing changed yet
        self._free = self._next[s]
        self._keys[s] = k
        self._vals[s] = v
        self._size[s] = size
        self._pins[s] = 0
        self._gen[s] = self._g
        self.nbytes += size
        pv = self._prev
        k = pv[0]  # newest so far; s goes after it
        self._next[k] = s
        pv[s] = k
        self._next[s] = 0
        pv[0] = s

    def __delitem__(self, k):
        self._drop(self._slot(k))

    def pop(self, k, default=_MISSING):
        s = self._ix.find(k)
        if not s:
            hash(k)
            if default is _MISSING:
                raise KeyError(k)
            return default
        v = self._vals[s]
        self._drop(s)
        return v

    def clear(self):
        """Remove every entry, pinned ones included."""
        s = self._next[0]
        while s:
            n = self._next[s]
            self._drop(s)
            s = n

    def keys(self):
        """Keys, least recently used first (a new list)."""
        out = []
        s = self._next[0]
        while s:
            out.append(self._keys[s])
            s = self._next[s]
        return out

    def values(self):
        out = []
        s = self._next[0]
        while s:
            out.append(self._vals[s])
            s = self._next[s]
        return out

    def items(self):
        out = []
        s = self._next[0]
        while s:
            out.append((self._keys[s], self._vals[s]))
            s = self._next[s]
        return out

    def __iter__(self):
        return iter(self.keys())

    # -- weak semantics ---------------------------------------------------

    def ref(self, k):
        """A handle h: h() is the value, or None once the entry is gone or replaced."""
        s = self._slot(k)
        return Ref(self, k, self._gen[s])

    def pin(self, k):
        """Hold k strongly: never evicted nor shed until unpinned as often as pinned."""
        s = self._slot(k)
        if not self._pins[s]:
            self.pinned += 1
        self._pins[s] += 1

    def unpin(self, k):
        s = self._slot(k)
        if not self._pins[s]:
            raise ValueError("key not pinned")
        self._pins[s] -= 1
        if not self._pins[s]:
            self.pinned -= 1
            self._fit(0, 0, 0)  # pins may have held the store over a bound

    def _shed(self, nbytes):
        # Drop unpinned entries, oldest first, until nbytes are released
        # (nbytes < 0: all of them). Returns the bytes released.
        done = 0
        s = self._next[0]
        while s and (nbytes < 0 or done < nbytes):
            n = self._next[s]
            if not self._pins[s]:
                done += self._drop(s)
                self.shed_entries += 1
            s = n
        self.shed_bytes += done
        return done

    def shed(self, nbytes):
        """Release at least nbytes (counted bytes) from unpinned entries, oldest
        first, or all unpinned entries if that is less. Returns bytes released;
        shed(0) releases nothing."""
        if type(nbytes) is not int or nbytes < 0:
            raise ValueError("nbytes must be an int >= 0")
        return self._shed(nbytes)

    def shed_all(self):
        """Drop every unpinned entry; return the bytes released."""
        return self._shed(-1)

    def on_pressure(self, level, free):
        """Budget.on_pressure handler: 'warn' sheds at least a quarter of the
        counted bytes, 'critical' every unpinned entry, other levels nothing.
        Returns the bytes released."""
        if level == "critical":
            return self._shed(-1)
        if level == "warn":
            return self._shed(self.nbytes // _WARN_DIV or 1)
        return 0

    def stats(self):
        return {
            "items": self._ix.count,
            "bytes": self.nbytes,
            "pinned": self.pinned,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "shed_entries": self.shed_entries,
            "shed_bytes": self.shed_bytes,
        }
