# lowwater._compat: the one place where CPython and MicroPython differ.
# Every other module imports what it needs from here; features are detected by
# trying them, never by port name.
import gc

try:
    import micropython
    from micropython import const

    MICROPYTHON = True
except ImportError:  # CPython
    micropython = None
    MICROPYTHON = False

    def const(x):
        return x


try:
    from time import ticks_ms, ticks_us, ticks_diff, ticks_add
except ImportError:  # CPython
    import time as _time

    _TICKS_MASK = const(0x3FFFFFFF)
    _TICKS_HALF = const(0x20000000)

    def ticks_us():
        return (_time.perf_counter_ns() // 1000) & _TICKS_MASK

    def ticks_ms():
        return (_time.perf_counter_ns() // 1000000) & _TICKS_MASK

    def ticks_diff(a, b):
        return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF

    def ticks_add(a, d):
        return (a + d) & _TICKS_MASK


# micropython.mem_total() counts every heap request (unix port only); it is the
# only counter that sees short-lived frame allocations (docs/micropython-facts.md).
mem_total = getattr(micropython, "mem_total", None)
heap_lock = getattr(micropython, "heap_lock", None)
heap_unlock = getattr(micropython, "heap_unlock", None)

# gc.mem_free / gc.mem_alloc exist on MicroPython only.
mem_free = getattr(gc, "mem_free", None)
mem_alloc = getattr(gc, "mem_alloc", None)

# The viper emitter: a separate module so a port without it fails at import
# instead of at call time, and the plain twins run. VIPER is None or the module.
# How a port says it cannot run it: from source, SyntaxError (no emitter);
# as .mpy, ValueError "native code in .mpy unsupported" (a port without native
# code, e.g. the wasm32 runtime) or "incompatible .mpy arch" (an .mpy built for
# another CPU: an xtensawin file on an RP2040). Any other ValueError is a bug
# in _viper and propagates.
try:
    from lowwater import _viper as VIPER
except (ImportError, SyntaxError):
    VIPER = None
except ValueError as _e:
    if ".mpy" not in str(_e):
        raise
    VIPER = None


def print_exception(exc, file=None):
    """Print a traceback on either runtime (sys.print_exception on MicroPython)."""
    import sys

    pe = getattr(sys, "print_exception", None)
    if pe is not None:
        if file is None:
            pe(exc)
        else:
            pe(exc, file)
        return
    import traceback

    traceback.print_exception(type(exc), exc, exc.__traceback__, file=file or sys.stdout)


# --- lowwater.prof (issue 4): profiler hooks, detected by trying ------------
# sys.settrace: CPython, and MicroPython builds with MICROPY_PY_SYS_SETTRACE
# (not the unix port's standard build). os.dupterm: most board ports, not unix.
import os as _os
import sys as _sys

settrace = getattr(_sys, "settrace", None)
dupterm = getattr(_os, "dupterm", None)


def get_tracemalloc():
    """CPython's tracemalloc module (imported on first use), None on MicroPython."""
    try:
        import tracemalloc
    except ImportError:  # MicroPython
        return None
    return tracemalloc
