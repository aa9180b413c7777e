# lowwater.window: the window summary, one place for its layout. The firmware
# fills a summary array per window (Firmware._window) and packs it into the
# flash log's window record; the host (`lowwater soak`, `lowwater log`) unpacks
# the record with the same module (docs/reliability.md).
#
# Window record, little-endian (RECORD bytes):
#   0 u8 "W"  1 u8 version  2 u16 tag(seq)  4 u32 seq  8 u32 chunks produced
#   12 u32 processed  16 u32 dropped  20 u32 errors  24 u16 min  26 u16 max  28 u16 mean
#
# Allocation: pack() allocates nothing (small ints into a preallocated
# bytearray); unpack() builds a tuple (host side, or rare).
from array import array

from lowwater._compat import const

RECORD = const(30)
KIND = const(0x57)  # "W"
VERSION = const(1)

# Figures of a summary array, in record order.
PRODUCED = const(0)
PROCESSED = const(1)
DROPPED = const(2)
ERRORS = const(3)
MIN = const(4)
MAX = const(5)
MEAN = const(6)
FIELDS = ("produced", "processed", "dropped", "errors", "min", "max", "mean")

# Bytes of each figure in the record, from offset 8 on.
_SIZES = b"\x04\x04\x04\x04\x02\x02\x02"
_OFFS = b"\x08\x0c\x10\x14\x18\x1a\x1c"
_N = const(7)


def summary():
    """A new summary array (array('i') of the FIELDS, all 0)."""
    return array("i", bytes(4 * _N))


def tag(seq):
    """The 16-bit check value of a window record: derived from its seq alone, so a
    reader can tell a record from another one's payload. Small ints on any board."""
    return ((seq & 0x3FFF) * 40503 + 0x1234) & 0xFFFF


def _put(b, off, v, n):
    # The low n bytes of v (negative: 0), little-endian, into b at off.
    if v < 0:
        v = 0
    i = 0
    while i < n:
        b[off + i] = v & 0xFF
        v >>= 8
        i += 1


def pack(b, seq, w):
    """Write the record of window `seq` with summary w into b (RECORD bytes)."""
    b[0] = KIND
    b[1] = VERSION
    _put(b, 2, tag(seq), 2)
    _put(b, 4, seq, 4)
    _figures(b, w)


def _figures(b, w):
    # A frame of its own with 3 locals: pack's would exceed the VM's on-stack
    # limit and go on the heap (docs/performance.md).
    i = 0
    while i < _N:
        _put(b, _OFFS[i], w[i], _SIZES[i])
        i += 1


def _get(b, off, n):
    v = 0
    while n:
        n -= 1
        v = (v << 8) | b[off + n]
    return v


def unpack(data):
    """(seq, produced, processed, dropped, errors, min, max, mean) of a window
    record; ValueError naming what is wrong (length, kind/version, tag)."""
    if len(data) != RECORD:
        raise ValueError("length %d" % len(data))
    if data[0] != KIND or data[1] != VERSION:
        raise ValueError("kind/version")
    seq = _get(data, 4, 4)
    if _get(data, 2, 2) != tag(seq):
        raise ValueError("tag")
    out = [seq]
    off = 8
    for i in range(_N):
        out.append(_get(data, off, _SIZES[i]))
        off += _SIZES[i]
    return tuple(out)
