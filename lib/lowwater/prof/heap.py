# lowwater.prof.heap: heap snapshots (free, alloc, largest free block,
# fragmentation) and their diff (docs/profiling.md).
import gc

from lowwater import _compat
from lowwater._compat import const
from lowwater.prof import meter
from lowwater.prof.meter import BLOCK, TRACE

_PROBE_STEPS = const(24)  # bound of the largest-block binary search
_CAP = const(512)  # bytes of mem_info() text captured through dupterm


class Snapshot:
    """Heap state in bytes: free, alloc, largest free block, frag = 1 - largest/free.

        a = prof.snapshot(); ...; print(prof.diff(a, prof.snapshot()))
    method: "meminfo" (mem_info() text via os.dupterm), "probe" (binary search
    for the largest bytearray), "tracemalloc" (CPython model) or "diff"."""

    def __init__(self, free, alloc, largest, method, frag=None):
        self.free = free
        self.alloc = alloc
        self.largest = largest
        self.method = method
        if frag is None:
            frag = 1.0 - largest / free if free > 0 else 0.0
        self.frag = frag

    def as_dict(self):
        return {
            "free": self.free,
            "alloc": self.alloc,
            "largest": self.largest,
            "frag": self.frag,
            "method": self.method,
        }

    def __repr__(self):
        return "<Snapshot free=%d alloc=%d largest=%d frag=%.3f %s>" % (
            self.free,
            self.alloc,
            self.largest,
            self.frag,
            self.method,
        )


class _Model:
    # CPython: the heap that snapshots are taken against (set_heap) and the
    # traced bytes at its zero. One per process (_MODEL below): set_heap()
    # applies to every later snapshot, so it is module-level on purpose.
    def __init__(self):
        self.heap = 131072  # the unix board's heap
        self.base = None  # traced bytes at the model heap's zero


_MODEL = _Model()


def set_heap(nbytes):
    """CPython only: the heap snapshots are computed against; the bytes traced
    now become its zero (default: 131072, zero at the first snapshot)."""
    if nbytes <= 0:
        raise ValueError("heap must be > 0")
    _MODEL.heap = nbytes
    _MODEL.base = None


def snapshot(method=None):
    """Collect, then measure the heap: a Snapshot.

    MicroPython: free/alloc from gc.mem_free()/gc.mem_alloc(); largest from the
    mem_info() text captured through os.dupterm where the port has it, else by
    probe (method="probe" forces it): a bounded binary search for the largest
    bytearray that can be allocated, exact to one heap block. CPython: alloc is
    tracemalloc's traced bytes above those at the first snapshot (or set_heap),
    free = heap - alloc, largest = free (no fragmentation model)."""
    gc.collect()
    if meter.MODE == TRACE:
        t = meter.tracer()
        m = _MODEL
        if not t.tm.is_tracing():
            m.base = None  # a new trace counts from 0 again: so does the model heap
        t.ensure()
        alloc = t.traced()
        if m.base is None:
            m.base = alloc
        alloc = alloc - m.base if alloc > m.base else 0
        free = m.heap - alloc if m.heap > alloc else 0
        return Snapshot(free, alloc, free, "tracemalloc")
    free = _compat.mem_free()
    alloc = _compat.mem_alloc()
    largest = None
    if method != "probe":
        largest = _meminfo_largest()
    if largest is None:
        largest = _probe(free)
        method = "probe"
    else:
        method = "meminfo"
    return Snapshot(free, alloc, largest, method)


def diff(a, b):
    """b - a, field by field, as a Snapshot (method "diff")."""
    return Snapshot(b.free - a.free, b.alloc - a.alloc, b.largest - a.largest, "diff", b.frag - a.frag)


def _probe(free):
    # Largest bytearray payload that can be allocated now, to one heap block.
    # A failed try makes the allocator collect first, so earlier tries' garbage
    # never hides space. Cost: <= _PROBE_STEPS allocations (zero-filled) and
    # collections; it churns the heap, never call it in a hot loop.
    lo = 0
    hi = free + 1
    b = None
    n = 0
    while hi - lo > BLOCK and n < _PROBE_STEPS:
        mid = (lo + hi) // 2
        try:
            b = bytearray(mid)
            lo = mid
        except MemoryError:
            hi = mid
        b = None  # noqa: F841 - drop the probe buffer before the next try
        n += 1
    gc.collect()
    return lo


def parse_max_free(text):
    """Blocks of the `max free sz: N` figure of micropython.mem_info() text, or None."""
    key = b"max free sz: "
    i = text.find(key)
    if i < 0:
        return None
    i += len(key)
    n = 0
    j = i
    while j < len(text) and 48 <= text[j] <= 57:
        n = n * 10 + text[j] - 48
        j += 1
    return n if j > i else None


def _meminfo_largest():
    # Board ports: capture mem_info()'s text through os.dupterm into a
    # preallocated buffer (it still goes to the console too). Unix: no dupterm.
    d = _compat.dupterm
    if d is None or _compat.micropython is None:
        return None
    try:
        import io

        class _Cap(io.IOBase):
            def __init__(self):
                self.buf = bytearray(_CAP)
                self.n = 0

            def write(self, data):
                buf = self.buf
                n = self.n
                for c in data:
                    if n < _CAP:
                        buf[n] = c
                        n += 1
                self.n = n
                return len(data)

            def readinto(self, buf):
                return None

        cap = _Cap()
        old = d(cap)
        try:
            _compat.micropython.mem_info()
        finally:
            d(old)
        blocks = parse_max_free(memoryview(cap.buf)[: cap.n])
    except Exception:  # no IOBase, dupterm refuses the stream, ...: probe instead
        return None
    return None if blocks is None else blocks * BLOCK
