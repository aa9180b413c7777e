# lowwater.prof.meter: what "bytes allocated" means on this runtime, shared by
# every concept of lowwater.prof (docs/profiling.md). Constants and two
# helpers, no state; the CPython tracemalloc code is in lowwater.prof.tm,
# imported only on CPython.
import sys

from lowwater import _compat
from lowwater._compat import const

# What "bytes allocated" counts, by what the runtime has (METHOD names it):
TOTAL = const(1)  # micropython.mem_total(): every heap request, freed or not
ALLOC = const(2)  # gc.mem_alloc() delta with the collector off (boards)
TRACE = const(3)  # CPython tracemalloc: peak traced bytes above the start

if _compat.MICROPYTHON:
    MODE = TOTAL if _compat.mem_total is not None else ALLOC
else:  # CPython
    MODE = TRACE
METHOD = ("", "mem_total", "mem_alloc", "tracemalloc")[MODE]

# A heap block is 4 machine words (MicroPython's gc); 64-bit: 32 B.
BLOCK = 32 if sys.maxsize > 0x7FFFFFFF else 16
CAL_N = const(64)  # calls per calibration measurement

# CPython's own machinery allocates inside any block (`for i in range(n)`
# alone: ~128 B of range and iterator objects; ints above 256); no_alloc
# tolerates this many bytes there. MicroPython: 0, exact.
TOLERANCE = 0 if _compat.MICROPYTHON else 256


def tracer():
    """CPython: the process's tracemalloc helper (lowwater.prof.tm.TRACER),
    imported on first use. MicroPython: None."""
    if MODE != TRACE:
        return None
    from lowwater.prof.tm import TRACER

    return TRACER


def close():
    """CPython: stop tracemalloc if lowwater.prof started it (it slows the whole
    process); profile/no_alloc/snapshot start it again on next use, and
    profiled calls in between record 0 bytes. MicroPython: nothing to do."""
    t = tracer()
    if t is not None:
        t.stop()


def fn_name(fn):
    return getattr(fn, "__name__", None) or "fn"


# Empty functions the calibrations measure the call mechanism on.
def nop0():
    pass


def nop1(x):
    pass


def nopk(x=0):
    pass
