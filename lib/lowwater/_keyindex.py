# lowwater._keyindex: the key -> slot index of lowwater.store.WeakStore.
#
# An open-addressing table (array('i'), linear probing, at most half full) whose
# deletions shift the following entries back (Knuth's algorithm R) instead of
# leaving tombstones. A dict would do on CPython, but MicroPython's dict probes
# linearly from hash(k) = k for an int: a store keyed by consecutive numbers
# (window 1, 2, 3 ...) that evicts the oldest ones filled its table with
# tombstones, so inserts probed longer and longer and the table was rebuilt
# (allocated) now and then. Here find, add and remove are O(1) expected
# whatever the keys and the store's age (docs/store.md).
#
# Allocation: none after __init__, except add() when the table must double
# (a store without max_items) and grow() (a slot added). Slot 0 means empty.
from array import array

from lowwater._compat import const

_HMASK = const(0x3FFFFFFF)  # hashes kept per slot: small ints on any board


class KeyIndex:
    """key -> slot (int >= 1) for the slots of `keys` (a list the owner fills:
    keys[s] is the key of slot s); n = slots expected (the table holds 2n)."""

    def __init__(self, keys, n):
        self.keys = keys
        self.count = 0
        self._h = array("i", bytes(4 * len(keys)))  # hash(key) & _HMASK per slot
        self._table(n)

    def _table(self, n):
        # A table of at least 2 * n positions (a power of two); 0 = empty.
        cap = 8
        while cap < 2 * n:
            cap <<= 1
        self._t = array("i", bytes(4 * cap))
        self._m = cap - 1

    def grow(self):
        """One slot more (the owner appended to keys)."""
        self._h.append(0)

    def find(self, k):
        """Slot of key k, 0 when absent; TypeError for an unhashable k."""
        t = self._t
        m = self._m
        i = hash(k) & m
        s = t[i]
        while s:
            if self.keys[s] is k or self.keys[s] == k:
                return s
            i = (i + 1) & m
            s = t[i]
        return 0

    def add(self, k, s):
        """Record k -> s (k absent); the table stays at most half full."""
        if 2 * (self.count + 1) > len(self._t):
            self._double()
        h = hash(k) & _HMASK
        self._h[s] = h
        self._put(s, h)
        self.count += 1

    def _put(self, s, h):
        t = self._t
        m = self._m
        h &= m
        while t[h]:
            h = (h + 1) & m
        t[h] = s

    def _double(self):
        old = self._t
        self._table(len(old))
        for s in old:
            if s:
                self._put(s, self._h[s])

    def remove(self, s):
        """Forget slot s: backward-shift deletion, no tombstone left."""
        t = self._t
        m = self._m
        i = self._h[s] & m
        while t[i] != s:
            i = (i + 1) & m
        self.count -= 1
        self._shift(t, m, i)

    def _shift(self, t, m, i):
        j = i
        while True:
            j = (j + 1) & m
            s = t[j]
            if not s:
                break
            # an entry may move back to i unless its home lies in (i, j]
            if ((j - (self._h[s] & m)) & m) >= ((j - i) & m):
                t[i] = s
                i = j
        t[i] = 0
