# lowwater._bytering: ByteRing, the byte FIFO of any size; public as
# lowwater.ring.ByteRing (ring.py loads this module on first use of the name,
# so firmware that needs only ChunkRing does not hold ByteRing's code).
# See docs/ring.md.
#
# Allocation (steady state, after construction; proven in test_ring.py):
# write/readinto/peekinto/len/space/clear allocate nothing on the viper path
# (lowwater._viper). The plain twin allocates nothing for a write that fits
# without wrapping, one memoryview per contiguous piece read, and up to three
# for a wrapped, cut or overwriting write (docs/ring.md). Counters are small
# ints: they allocate once past 2**30 on a 32-bit board. No lock: write and
# readinto update the same count, so a producer in an IRQ needs the consumer to
# run with IRQs disabled, or hand its work over with micropython.schedule.
from array import array

from lowwater._compat import VIPER, const

# The viper path's state: one array('i'), layout shared with lowwater._viper.
_RD = const(0)  # read offset of the oldest byte
_USED = const(1)  # bytes stored
_CAP = const(2)  # capacity
_OVER = const(3)  # 1: overwrite mode
_DLO = const(4)  # dropped bytes, low 30 bits
_DHI = const(5)  # dropped bytes >> 30
_MAXCAP = const(0x7FFFFFFF)  # the state is array('i')
_len = len  # a module global is found faster than a builtin


class ByteRing:
    """Byte FIFO over one preallocated buffer, any capacity >= 1.

        r = ByteRing(4096)
        r.write(b"abc")        # -> 3 (bytes accepted)
        n = r.readinto(buf)    # oldest bytes first, returns the count

    overwrite=True drops the oldest bytes instead of refusing new ones and counts
    them in .dropped. fast=None uses the viper copy path when the port has it,
    False forces the plain twin, True requires viper (ValueError without it);
    .fast tells which one is in use. Sources are bytes-like (itemsize 1);
    destinations must be writable (bytearray, or a memoryview of one).
    """

    # ByteRing(...) returns a _ViperByteRing, the subclass whose hot methods
    # are closures made by lowwater._viper.bind, when the port has viper and
    # fast is not False; else a ByteRing whose hot methods are the plain
    # twin's closures made by _twin below (the only path on CPython). Either
    # way write/readinto/peekinto live in the instance dict. All set-up is in
    # __new__: MicroPython skips __init__ when __new__ returns an instance of
    # another class (CPython would call it).
    def __new__(cls, capacity, overwrite=False, fast=None):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if capacity > _MAXCAP:
            raise ValueError("capacity too large")
        if fast and VIPER is None:
            raise ValueError("no viper emitter")
        fast = VIPER is not None and fast is not False
        self = object.__new__(_ViperByteRing if fast else cls)
        self.capacity = capacity
        self.overwrite = bool(overwrite)
        self.fast = fast
        if fast:
            # state words, then the bytes from byte 24 on (lowwater._viper);
            # made from a range: array() takes its length, no temporary buffer
            st = array("i", range(6 + (capacity + 3) // 4))
            st[_RD] = st[_USED] = st[_DLO] = st[_DHI] = 0
            st[_CAP] = capacity
            st[_OVER] = 1 if overwrite else 0
            self._st = st  # for len, space, clear and dropped
            # the hot methods: closures over this ring's state (lowwater._viper)
            self.write, self.readinto, self.peekinto = VIPER.bind(st)
        else:
            self.write, self.readinto, self.peekinto, self._ctl = _twin(capacity, self.overwrite)
        return self

    # Calls through the class (ByteRing.write(r, buf)) reach the instance's
    # closures through these, on either path.
    def write(self, buf):
        """Append bytes from buf; return how many were accepted."""
        return self.__dict__["write"](buf)

    def readinto(self, buf):
        """Move up to len(buf) of the oldest bytes into buf; return the count."""
        return self.__dict__["readinto"](buf)

    def peekinto(self, buf):
        """Copy like readinto() but keep the bytes in the ring."""
        return self.__dict__["peekinto"](buf)

    def __len__(self):
        return self._ctl(0)

    def space(self):
        return self.capacity - self._ctl(0)

    def clear(self):
        """Forget all stored bytes (not counted as dropped)."""
        self._ctl(2)

    @property
    def dropped(self):
        return self._ctl(1)


def _twin(cap, over):
    # The plain twin: write, readinto, peekinto and a control function, as
    # closures over this ring's state (same results as lowwater._viper). A
    # closure cell is read and written without the dict lookup an attribute
    # costs (docs/ring.md has the measured difference). Two limits shape
    # them, both measured on the unix port:
    # - a closure called with cells + arguments over 5 gets its argument
    #   array from the heap: a hot closure takes its slow path as a default
    #   argument (a default costs more per call than a cell, so only what
    #   does not fit in 5);
    # - a frame over 11 words (locals, cells, defaults, stack) is
    #   heap-allocated per call (docs/performance.md): the hot paths stay
    #   within it, and wrapped, cut and empty cases go to the helpers.
    # Slice stores into mv allocate nothing; a slice load (every read, a
    # wrapped or cut write) allocates a memoryview. The offsets do not
    # restart at 0 when the ring empties (the viper path does, for word
    # alignment; a slice copy does not care).
    mv = memoryview(bytearray(cap))
    rd = 0  # offset of the oldest byte
    wr = 0  # offset of the next byte written
    used = 0
    dropped = 0

    def peek(buf, n, mv=mv, cap=cap):
        # n (<= used) oldest bytes into buf[:n]; returns n.
        if not n:
            buf[:0] = b""  # the same TypeError for a read-only destination
            return 0
        k = cap - rd
        if n <= k:
            buf[:n] = mv[rd : rd + n]
        else:
            buf[:k] = mv[rd:]
            buf[k:n] = mv[: n - k]
        return n

    def rslow(buf, n, cap=cap, peek=peek):
        # readinto, the rare cases: nothing to read, or the bytes wrap.
        nonlocal rd, used
        if peek(buf, n):
            rd = (rd + n) % cap
            used -= n
        return n

    def wput(buf, mv=mv, cap=cap):
        # store buf (a memoryview that fits), wrapping at the end
        nonlocal wr, used
        n = _len(buf)
        k = cap - wr
        if n <= k:
            k = wr + n
            mv[wr:k] = buf
        else:
            mv[wr:] = buf[:k]
            buf = buf[k:]
            k = n - k
            mv[:k] = buf
        wr = (wr + n) % cap
        used += n
        return n

    def wdrop(n, cap=cap):
        # overwrite mode: drop (and count) the oldest bytes so that n more
        # fit; n >= cap drops everything stored and the first n - cap of buf
        nonlocal rd, wr, used, dropped
        k = used + n - cap
        dropped += k
        if n >= cap:
            rd = wr = used = 0
        else:
            rd = (rd + k) % cap
            used -= k

    def wslow(buf, put=wput, drop=wdrop):
        # write, the rare cases: the write wraps, or does not fit (cut it to
        # the free space, or in overwrite mode drop the oldest bytes, or keep
        # only the newest cap bytes of buf). Split in three so that no frame
        # outgrows the C stack.
        buf = memoryview(buf)  # TypeError for a non-buffer, before any change
        n = _len(buf)
        if n <= cap - used:
            return put(buf)
        if not over:
            n = cap - used
            return put(buf[:n]) if n else 0
        drop(n)
        if n > cap:
            put(buf[n - cap :])
        else:
            put(buf)
        return n

    def write(buf, slow=wslow):
        nonlocal wr, used
        n = _len(buf)
        if wr + n > cap or n > cap - used:
            return slow(buf)
        n += wr  # the end (one local less: the frame stays on the C stack)
        # (a non-buffer raises TypeError here, NotImplementedError on
        # MicroPython: a try would move this frame to the heap)
        mv[wr:n] = buf
        n -= wr
        wr += n
        if wr == cap:
            wr = 0
        used += n
        return n

    def readinto(buf, slow=rslow):
        nonlocal rd, used
        n = _len(buf)
        if n > used:
            n = used
        if not n or rd + n > cap:
            return slow(buf, n)
        buf[:n] = mv[rd : rd + n]
        rd += n
        if rd == cap:
            rd = 0
        used -= n
        return n

    def peekinto(buf, peek=peek):
        n = _len(buf)
        if n > used:
            n = used
        return peek(buf, n)

    def ctl(op):
        # 0: bytes stored, 1: bytes dropped, 2: clear
        nonlocal rd, wr, used
        if op == 0:
            return used
        if op == 1:
            return dropped
        rd = wr = used = 0
        return None

    return write, readinto, peekinto, ctl


class _ViperByteRing(ByteRing):
    # ByteRing on the viper path: state in self._st, write/readinto/peekinto
    # are closures in the instance dict (see ByteRing.__new__).
    def __len__(self):
        return self._st[_USED]

    def space(self):
        st = self._st
        return st[_CAP] - st[_USED]

    def clear(self):
        st = self._st
        st[_RD] = 0
        st[_USED] = 0

    @property
    def dropped(self):
        st = self._st
        return (st[_DHI] << 30) | st[_DLO]
