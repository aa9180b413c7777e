# lowwater.ring: preallocated rings for sensor data: ChunkRing (zero-copy
# fixed slots, here) and ByteRing (byte FIFO of any size, in
# lowwater._bytering, loaded on first use of lowwater.ring.ByteRing). See
# docs/ring.md.
#
# Allocation (steady state, after construction; proven in test_ring.py):
# ChunkRing.claim/commit/oldest/oldest_len/release/fill/take/cycle/len allocate
# nothing (plain bytecode over one bytearray and one memoryview per slot made
# at init). Counters are small ints: they allocate once past 2**30 on a 32-bit
# board. No lock: commit and release update the same count, so a producer in an
# IRQ needs the consumer to run with IRQs disabled, or hand its work over with
# micropython.schedule.
from array import array


def __getattr__(name):
    # ByteRing on first use (`from lowwater.ring import ByteRing` comes here on
    # MicroPython and CPython alike); kept in this module's globals after that.
    if name == "ByteRing":
        from lowwater._bytering import ByteRing

        globals()["ByteRing"] = ByteRing
        return ByteRing
    raise AttributeError(name)


class ChunkRing:
    """Fixed-size slots for sensor chunks, zero-copy.

        r = ChunkRing(256, 8)
        mv = r.claim()            # writable view of a free slot, None if full
        n = sensor.readinto(mv)
        r.commit(n)               # publish it with n valid bytes
        ...
        mv = r.oldest()           # full-size view, valid bytes: r.oldest_len()
        r.release()               # free it

    overwrite=True makes claim() reclaim the oldest unread chunk when full (one
    .dropped each): a view from oldest() then stays valid only until the next
    claim(). Counters: committed, dropped, high_water (most slots ever in use,
    the claimed one included); len(r) is the number of committed slots.
    fill(readinto) and take() do claim + read + commit and oldest + release in
    one call each; cycle(readinto) does both at once (a consumer that processes
    every chunk as it arrives).
    """

    def __init__(self, chunk_size, count, overwrite=False):
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if count < 1:
            raise ValueError("count must be >= 1")
        self.chunk_size = chunk_size
        self.count = count
        self.overwrite = bool(overwrite)
        mv = memoryview(bytearray(chunk_size * count))
        # One view per slot, made here: slicing later would allocate.
        self._views = tuple(mv[i * chunk_size : (i + 1) * chunk_size] for i in range(count))
        self._lens = array("i", bytes(4 * count))  # valid bytes per committed slot
        self._rd = 0  # slot of the oldest committed chunk
        self._n = 0  # committed slots
        self._cl = 0  # 1 while a slot is claimed (it is slot _rd + _n)
        # The view of slot _rd while the ring is idle (nothing committed,
        # nothing claimed, used before: high_water is already >= 1), else None:
        # cycle()'s fast path in one attribute (the straight read, see cycle).
        # Every method that changes _n or _cl keeps it so.
        self.idle = None
        self.committed = 0
        self.dropped = 0
        self.high_water = 0
        self.taken = 0  # valid bytes of the chunk take() or cycle() returned last

    def claim(self):
        """Writable full-size view of a free slot (the same one until commit)."""
        n = self._n
        if not self._cl:
            if n == self.count:
                if not self.overwrite:
                    return None
                self.dropped += 1
                n -= 1
                self._n = n
                self._rd += 1
                if self._rd == self.count:
                    self._rd = 0
            self._cl = 1
            self.idle = None
            if n >= self.high_water:
                self.high_water = n + 1
        n += self._rd
        if n >= self.count:
            n -= self.count
        return self._views[n]

    def commit(self, n=None):
        """Publish the claimed slot with n valid bytes (default: chunk_size)."""
        if not self._cl:
            raise ValueError("commit without claim")
        if n is None:
            n = self.chunk_size
        elif not 0 <= n <= self.chunk_size:
            raise ValueError("n out of range")
        i = self._rd + self._n
        if i >= self.count:
            i -= self.count
        self._lens[i] = n
        self._n += 1
        self._cl = 0
        self.committed += 1

    def oldest(self):
        """Full-size view of the oldest committed chunk, None when empty."""
        if self._n:
            return self._views[self._rd]
        return None

    def oldest_len(self):
        """Valid bytes in the oldest committed chunk, 0 when empty."""
        if self._n:
            return self._lens[self._rd]
        return 0

    def fill(self, readinto):
        """claim(), readinto(view) and commit(n) in one call, n being what
        readinto returned; returns n, or -1 when full (overwrite=False). If
        readinto raises, nothing is claimed nor committed."""
        n = self._n
        if self._cl or n == self.count:
            return self._fill_slow(readinto)
        i = self._rd + n
        if i >= self.count:
            i -= self.count
        if n >= self.high_water:
            self.high_water = n + 1
        n = readinto(self._views[i])
        if not 0 <= n <= self.chunk_size:
            raise ValueError("n out of range")
        self._lens[i] = n
        self._n += 1
        self.idle = None
        self.committed += 1
        return n

    def _fill_slow(self, readinto):
        # fill() when a slot is already claimed or the ring is full.
        v = self.claim()
        if v is None:
            return -1
        n = readinto(v)
        self.commit(n)
        return n

    def take(self):
        """oldest() and release() in one call: the view of the oldest committed
        chunk, already released, with its valid bytes in .taken; None when
        empty. The view stays valid until a claim() reuses its slot (a consumer
        that finishes with it before the next claim, as Firmware.step does)."""
        n = self._n
        if not n:
            return None
        i = self._rd
        self.taken = self._lens[i]
        self._n = n - 1
        k = i + 1
        if k == self.count:
            k = 0
        self._rd = k
        if n == 1 and not self._cl:
            self.idle = self._views[k]
        return self._views[i]

    def cycle(self, readinto):
        """fill(readinto) then take() in one call: the view of the oldest
        committed chunk, already released, its valid bytes in .taken (None when
        nothing could be read nor taken: a full ring without overwrite whose
        chunks were all taken). For a consumer that processes each chunk as it
        arrives (Firmware.step). If readinto raises, nothing is claimed nor
        committed. Allocates nothing.

        While the ring is idle (nothing committed, nothing claimed: the steady
        state of such a consumer) it is the straight read: v = r.idle,
        n = readinto(v), n checked (0 <= n <= chunk_size) and counted
        (r.committed += 1); the ring stays idle, so the next claim(), fill() or
        cycle() reuses that slot: the view is valid until then. A consumer may
        do those three steps itself while r.idle is not None (Firmware.step
        does: it saves a call per chunk). Otherwise cycle() is fill() then
        take(), drops counted as they are there."""
        v = self.idle
        if v is None:
            self.fill(readinto)
            return self.take()
        n = readinto(v)
        if n > self.chunk_size or n < 0:
            raise ValueError("n out of range")
        self.taken = n
        self.committed += 1
        return v

    def release(self):
        """Free the oldest committed chunk."""
        if not self._n:
            raise ValueError("release when empty")
        self._n -= 1
        self._rd += 1
        if self._rd == self.count:
            self._rd = 0
        if self._n == 0 and not self._cl:
            self.idle = self._views[self._rd]

    def clear(self):
        """Drop every committed chunk and any claim (not counted as dropped)."""
        self._rd = 0
        self._n = 0
        self._cl = 0
        self.idle = self._views[0] if self.high_water else None

    def __len__(self):
        return self._n
