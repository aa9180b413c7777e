# Portable test helpers of the lowwater pytest plugin: imported by tests that
# run on CPython AND on MicroPython (the plugin puts this folder on sys.path and
# on MICROPYPATH). No pytest here: the same module runs inside MicroPython.
#
#     import lwtest
#     lwtest.skip("no viper emitter on this runtime")   # a skip on this runtime only
#     lwtest.assert_no_alloc(f.update)                    # heap_lock AND mem_total
import gc

try:
    import micropython
except ImportError:  # CPython
    micropython = None

MICROPYTHON = micropython is not None


def runtime_bits():
    """Word size of this runtime: 32 on the boards and the micropython32 runtime,
    64 on the unix port and CPython (small ints stop at 2^30 on 32-bit)."""
    import sys

    return 32 if sys.maxsize < (1 << 32) else 64


def runtime_name():
    """'cpython', 'micropython' (64-bit unix port) or 'micropython32'."""
    if not MICROPYTHON:
        return "cpython"
    return "micropython32" if runtime_bits() == 32 else "micropython"


class Skip(Exception):
    """Raise it (or call skip()) and the plugin reports the item as skipped on
    this runtime. The MicroPython runner knows a skip by the class name Skip,
    so a project's own Skip class works too."""


def skip(reason):
    raise Skip(reason)


def raises(exc, fn, *args, **kwargs):
    """Call fn and return the exception of type exc it raised; fail otherwise."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))


def _empty():
    pass


def _requested(fn, rng):
    gc.collect()
    t0 = micropython.mem_total()
    for _ in rng:
        fn()
    return micropython.mem_total() - t0


def heap_bytes(fn, n=1000):
    """Heap bytes fn() requests over n calls on MicroPython (mem_total delta,
    minus the loop's own overhead); None on CPython.

    mem_total counts every heap request, including frames that are freed at once
    and that heap_lock() does not catch."""
    if not MICROPYTHON:
        return None
    fn()  # warm up: lazy state, interned attributes
    rng = range(n)
    base = _requested(_empty, rng)
    return _requested(fn, rng) - base


def assert_no_alloc(fn, n=1000, what=None):
    """Fail unless fn() allocates nothing, by BOTH checks: no MemoryError under
    micropython.heap_lock() and a zero mem_total delta over n calls.
    Skips on CPython, which has neither."""
    if not MICROPYTHON:
        skip("heap_lock/mem_total are MicroPython-only")
    name = what or getattr(fn, "__name__", "fn")
    delta = heap_bytes(fn, n)
    assert delta == 0, "%s requested %d heap bytes over %d calls" % (name, delta, n)
    rng = range(n)
    micropython.heap_lock()
    try:
        for _ in rng:
            fn()
    except MemoryError:
        micropython.heap_unlock()
        raise AssertionError("%s allocated under heap_lock" % name)
    micropython.heap_unlock()
