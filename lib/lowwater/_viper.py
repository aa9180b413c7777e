# lowwater._viper: @micropython.viper copy paths for lowwater.ring.ByteRing.
# Imported through lowwater._compat.VIPER only; a port without the viper emitter
# fails at import (SyntaxError/ImportError) and ring.py uses its plain twins.
# CPython has no `micropython` module, so this import fails there on purpose.
import micropython
from micropython import const

# ByteRing state: one array('i') read and written through ptr32, the fastest
# layout measured (docs/performance.md); ring.py builds it with these indices.
# The ring's bytes live in the same array from byte _DATA on (one address for
# everything).
_RD = const(0)  # read offset of the oldest byte, 0 <= rd < cap
_USED = const(1)  # bytes stored
_CAP = const(2)  # capacity in bytes
_OVER = const(3)  # 1: overwrite mode
_DLO = const(4)  # dropped bytes, low 30 bits
_DHI = const(5)  # dropped bytes >> 30
_DATA = const(24)  # byte offset of the ring's bytes in the state array

# Pieces from this size on go to _copy. Measured (callgrind, x64, 1 KiB
# copies): a call to it costs ~380 instructions, its loops ~1.3 instructions
# per byte co-aligned, ~2.1 two bytes apart mod 4, ~4 otherwise. The inline
# loops keep their cursors on the stack (6 instructions per word or byte
# moved in the x64 code, where _copy's need 3), and cost no call.
_BIG = const(384)  # co-aligned
_BIGX = const(64)  # otherwise (_BIG > _BIGX)


# The ring's three hot methods are closures made per ring by bind(): a call
# from bytecode to a closure costs less than to a bound method, and what they
# need arrives in closure cells (read inline by the native code) instead of an
# attribute lookup and global lookups (measured: ~430 instructions less per
# call, docs/ring.md). Rules (docs/performance.md):
# - no slicing, no object creation: pointer arithmetic on native ints only;
# - word (ptr32) and halfword (ptr16) access only at aligned addresses
#   (unaligned access faults on Cortex-M0+ and ESP32): words when source and
#   destination are co-aligned (same address mod 4), halfwords when they are
#   2 apart mod 4, bytes otherwise;
# - at most 5 arguments, closure cells included (a closure called with more
#   gets its argument array from the heap), and no defaults. (Very old viper
#   emitters took at most 4; readinto takes 5, which test_mpy_cross.py
#   compiles for armv6m and xtensawin.)
# - copy loops end on `!=` an exact end address, so the sign of an address as
#   a native int never matters.
# The copy of a short piece is written out inline in write and readinto (a
# viper-to-viper call goes through the generic call path); a long one goes to
# _copy, whose cursors are its first two arguments and so live in registers.


@micropython.viper
def _addr(b) -> uint:
    return uint(ptr8(b))


@micropython.viper
def _copy(d: int, s: int, n: int):
    # n bytes from s to d, fastest aligned access first. The addresses pass as
    # ints: no heap below 2**30 on a 32-bit port (all ESP32 and RP2040 RAM);
    # RAM above that would box them (docs/ring.md, known limits).
    e = d + n
    x = (d ^ s) & 3
    if x == 0:
        while d & 3:
            ptr8(d)[0] = ptr8(s)[0]
            d += 1
            s += 1
        x = d + ((e - d) & -32)
        while d != x:
            ptr32(d)[0] = ptr32(s)[0]
            ptr32(d)[1] = ptr32(s)[1]
            ptr32(d)[2] = ptr32(s)[2]
            ptr32(d)[3] = ptr32(s)[3]
            ptr32(d)[4] = ptr32(s)[4]
            ptr32(d)[5] = ptr32(s)[5]
            ptr32(d)[6] = ptr32(s)[6]
            ptr32(d)[7] = ptr32(s)[7]
            d += 32
            s += 32
        x = d + ((e - d) & -4)
        while d != x:
            ptr32(d)[0] = ptr32(s)[0]
            d += 4
            s += 4
    elif x == 2:
        if d & 1:
            ptr8(d)[0] = ptr8(s)[0]
            d += 1
            s += 1
        x = d + ((e - d) & -32)
        while d != x:
            ptr16(d)[0] = ptr16(s)[0]
            ptr16(d)[1] = ptr16(s)[1]
            ptr16(d)[2] = ptr16(s)[2]
            ptr16(d)[3] = ptr16(s)[3]
            ptr16(d)[4] = ptr16(s)[4]
            ptr16(d)[5] = ptr16(s)[5]
            ptr16(d)[6] = ptr16(s)[6]
            ptr16(d)[7] = ptr16(s)[7]
            ptr16(d)[8] = ptr16(s)[8]
            ptr16(d)[9] = ptr16(s)[9]
            ptr16(d)[10] = ptr16(s)[10]
            ptr16(d)[11] = ptr16(s)[11]
            ptr16(d)[12] = ptr16(s)[12]
            ptr16(d)[13] = ptr16(s)[13]
            ptr16(d)[14] = ptr16(s)[14]
            ptr16(d)[15] = ptr16(s)[15]
            d += 32
            s += 32
        x = d + ((e - d) & -2)
        while d != x:
            ptr16(d)[0] = ptr16(s)[0]
            d += 2
            s += 2
    else:
        # One byte apart mod 4: one load and one store per byte is the
        # cheapest aligned copy the emitter makes (a shift-and-or word costs
        # more instructions than its four bytes).
        x = d + ((e - d) & -16)
        while d != x:
            ptr8(d)[0] = ptr8(s)[0]
            ptr8(d)[1] = ptr8(s)[1]
            ptr8(d)[2] = ptr8(s)[2]
            ptr8(d)[3] = ptr8(s)[3]
            ptr8(d)[4] = ptr8(s)[4]
            ptr8(d)[5] = ptr8(s)[5]
            ptr8(d)[6] = ptr8(s)[6]
            ptr8(d)[7] = ptr8(s)[7]
            ptr8(d)[8] = ptr8(s)[8]
            ptr8(d)[9] = ptr8(s)[9]
            ptr8(d)[10] = ptr8(s)[10]
            ptr8(d)[11] = ptr8(s)[11]
            ptr8(d)[12] = ptr8(s)[12]
            ptr8(d)[13] = ptr8(s)[13]
            ptr8(d)[14] = ptr8(s)[14]
            ptr8(d)[15] = ptr8(s)[15]
            d += 16
            s += 16
    while d != e:
        ptr8(d)[0] = ptr8(s)[0]
        d += 1
        s += 1


def bind(st):
    """(write, readinto, peekinto) of the ring whose state is the array('i')
    st (layout above). The closures work on st's address (MicroPython's heap
    never moves an object) and hold st itself too, so that one kept without
    its ring still keeps st alive (peekinto through readinto)."""
    a = _addr(st)
    ln = len
    by = bytes

    @micropython.viper
    def write(buf) -> int:
        n = int(ln(buf))
        if n < 0:  # never: naming st makes it a cell, kept alive by the closure
            n = int(ln(st))
        s = int(ptr8(buf))  # TypeError unless buf has the buffer protocol
        sp = ptr32(a)
        cap = sp[_CAP]
        used = sp[_USED]
        rd = sp[_RD]
        res = n
        if sp[_OVER]:
            k = used + n - cap  # bytes to drop
            if k > 0:
                if n >= cap:
                    # keep the newest cap bytes of buf; everything stored goes
                    s += n - cap
                    n = cap
                    rd = 0
                    used = 0
                else:
                    rd += k
                    if rd >= cap:
                        rd -= cap
                    used -= k
                sp[_RD] = rd
                k += sp[_DLO]
                sp[_DHI] = sp[_DHI] + (k >> 30)
                sp[_DLO] = k & 0x3FFFFFFF
        elif n > cap - used:
            n = cap - used
            res = n
        w = rd + used
        if w >= cap:
            w -= cap
        sp[_USED] = used + n
        base = int(sp) + _DATA
        while n > 0:
            k = cap - w
            if k > n:
                k = n
            n -= k
            d = base + w
            e = d + k
            if ((d ^ s) & 3) == 0 and k < _BIG:
                while d & 3 and d != e:
                    ptr8(d)[0] = ptr8(s)[0]
                    d += 1
                    s += 1
                w = d + ((e - d) & -32)
                while d != w:
                    ptr32(d)[0] = ptr32(s)[0]
                    ptr32(d)[1] = ptr32(s)[1]
                    ptr32(d)[2] = ptr32(s)[2]
                    ptr32(d)[3] = ptr32(s)[3]
                    ptr32(d)[4] = ptr32(s)[4]
                    ptr32(d)[5] = ptr32(s)[5]
                    ptr32(d)[6] = ptr32(s)[6]
                    ptr32(d)[7] = ptr32(s)[7]
                    d += 32
                    s += 32
                w = d + ((e - d) & -4)
                while d != w:
                    ptr32(d)[0] = ptr32(s)[0]
                    d += 4
                    s += 4
            elif k >= _BIGX:
                _copy(d, s, k)
                s += k
                d = e
            else:
                w = d + ((e - d) & -8)
                while d != w:
                    ptr8(d)[0] = ptr8(s)[0]
                    ptr8(d)[1] = ptr8(s)[1]
                    ptr8(d)[2] = ptr8(s)[2]
                    ptr8(d)[3] = ptr8(s)[3]
                    ptr8(d)[4] = ptr8(s)[4]
                    ptr8(d)[5] = ptr8(s)[5]
                    ptr8(d)[6] = ptr8(s)[6]
                    ptr8(d)[7] = ptr8(s)[7]
                    d += 8
                    s += 8
            while d != e:
                ptr8(d)[0] = ptr8(s)[0]
                d += 1
                s += 1
            w = 0
        return res

    @micropython.viper
    def readinto(buf) -> int:
        # An emptied ring restarts at offset 0, so later writes stay
        # contiguous and aligned (the twin does the same).
        # ptr8() takes any readable buffer: refuse the common read-only one,
        # bytes (a memoryview of bytes still gets through, docs/ring.md).
        # __class__ needs MICROPY_CPYTHON_COMPAT, on in every ESP32/RP2040 build.
        if buf.__class__ is by:
            raise TypeError("read-only buffer")
        n = int(ln(buf))
        if n < 0:  # never (st: as in write)
            n = int(ln(st))
        d = int(ptr8(buf))
        sp = ptr32(a)
        used = sp[_USED]
        if n > used:
            n = used
        res = n
        cap = sp[_CAP]
        rd = sp[_RD]
        if n == used:
            sp[_RD] = 0
        else:
            w = rd + n
            if w >= cap:
                w -= cap
            sp[_RD] = w
        sp[_USED] = used - n
        base = int(sp) + _DATA
        s = base + rd
        w = cap - rd  # bytes before the wrap
        while n > 0:
            k = w
            if k > n:
                k = n
            n -= k
            e = d + k
            if ((d ^ s) & 3) == 0 and k < _BIG:
                while d & 3 and d != e:
                    ptr8(d)[0] = ptr8(s)[0]
                    d += 1
                    s += 1
                w = d + ((e - d) & -32)
                while d != w:
                    ptr32(d)[0] = ptr32(s)[0]
                    ptr32(d)[1] = ptr32(s)[1]
                    ptr32(d)[2] = ptr32(s)[2]
                    ptr32(d)[3] = ptr32(s)[3]
                    ptr32(d)[4] = ptr32(s)[4]
                    ptr32(d)[5] = ptr32(s)[5]
                    ptr32(d)[6] = ptr32(s)[6]
                    ptr32(d)[7] = ptr32(s)[7]
                    d += 32
                    s += 32
                w = d + ((e - d) & -4)
                while d != w:
                    ptr32(d)[0] = ptr32(s)[0]
                    d += 4
                    s += 4
            elif k >= _BIGX:
                _copy(d, s, k)
                s += k
                d = e
            else:
                w = d + ((e - d) & -8)
                while d != w:
                    ptr8(d)[0] = ptr8(s)[0]
                    ptr8(d)[1] = ptr8(s)[1]
                    ptr8(d)[2] = ptr8(s)[2]
                    ptr8(d)[3] = ptr8(s)[3]
                    ptr8(d)[4] = ptr8(s)[4]
                    ptr8(d)[5] = ptr8(s)[5]
                    ptr8(d)[6] = ptr8(s)[6]
                    ptr8(d)[7] = ptr8(s)[7]
                    d += 8
                    s += 8
            while d != e:
                ptr8(d)[0] = ptr8(s)[0]
                d += 1
                s += 1
            s = base
            w = cap
        return res

    @micropython.viper
    def peekinto(buf) -> int:
        # readinto, then put the read position back.
        sp = ptr32(a)
        rd = sp[_RD]
        used = sp[_USED]
        n = int(readinto(buf))
        sp[_RD] = rd
        sp[_USED] = used
        return n

    return write, readinto, peekinto


# ---- lowwater.process.ChunkStats -----------------------------------------------------
# The viper twin of lowwater.process._stats_py (same results, no allocation):
# min, max, sum and count of the little-endian unsigned samples in src[:n]
# (width 1 or 2 bytes) into out[0:4] (min is 0 for no samples), then the chunk
# is added to the window in out[4:9]: min, max, sum of chunk means, samples,
# chunks (layout: lowwater.process). n must not exceed len(src)
# (ChunkRing.oldest_len() does not). One call per chunk does both, so the
# firmware's step pays one native call for its statistics.


@micropython.viper
def chunk_stats(src: ptr8, n: int, width: int, out: ptr32):
    lo = 0xFFFF
    hi = 0
    s = 0
    i = 0
    if width == 2:
        cnt = n >> 1
        e = cnt << 1
        while i < e:
            v = src[i] | (src[i + 1] << 8)
            s += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            i += 2
    else:
        cnt = n
        while i < n:
            v = src[i]
            s += v
            if v < lo:
                lo = v
            if v > hi:
                hi = v
            i += 1
    out[3] = cnt
    out[0] = lo if cnt else 0
    out[1] = hi
    out[2] = s
    if cnt:
        if lo < out[4]:
            out[4] = lo
        if hi > out[5]:
            out[5] = hi
        out[6] = out[6] + s // cnt
        out[7] = out[7] + cnt
    out[8] = out[8] + 1


# smooth(src, n, width, dst) -> n: processing filter of lowwater.process, a
# 2-tap moving average dst[i] = (x[i] + x[i-1]) >> 1 over whole samples (the
# first sample is its own predecessor); byte-identical to process._smooth_py.


@micropython.viper
def smooth(src: ptr8, n: int, width: int, dst: ptr8) -> int:
    i = 0
    if width == 2:
        n = n & -2
        prev = src[0] | (src[1] << 8) if n else 0
        while i < n:
            v = src[i] | (src[i + 1] << 8)
            a = (v + prev) >> 1
            prev = v
            dst[i] = a & 0xFF
            dst[i + 1] = a >> 8
            i += 2
    else:
        prev = src[0] if n else 0
        while i < n:
            v = src[i]
            dst[i] = (v + prev) >> 1
            prev = v
            i += 1
    return n
