# lowwater.prof: where heap and time go (docs/profiling.md); the opt-in package
# lowwater-prof. One concept per module, each imported on first use of one of
# its names, so `prof.snapshot()` compiles heap.py (and the shared meter.py)
# and nothing else:
#   calls      @profile, enable, enabled, reset, stats, report
#   guard      no_alloc, AllocationError
#   heap       Snapshot, snapshot, diff, set_heap, parse_max_free
#   leaks      LeakCheck, LeakResult, slope
#   linetrace  lines, print_lines
#   meter      METHOD, TOLERANCE, close: what "bytes" means on this runtime
#   tm         CPython only: tracemalloc (never imported on MicroPython)
# The same code runs on MicroPython and CPython; runtime features come from
# lowwater._compat.
from lowwater import _compat  # noqa: F401 - prof._compat, as before the split

_NAMES = {
    "profile": "calls",
    "enable": "calls",
    "enabled": "calls",
    "reset": "calls",
    "stats": "calls",
    "report": "calls",
    "no_alloc": "guard",
    "AllocationError": "guard",
    "Snapshot": "heap",
    "snapshot": "heap",
    "diff": "heap",
    "set_heap": "heap",
    "parse_max_free": "heap",
    "LeakCheck": "leaks",
    "LeakResult": "leaks",
    "slope": "leaks",
    "lines": "linetrace",
    "print_lines": "linetrace",
    "METHOD": "meter",
    "TOLERANCE": "meter",
    "close": "meter",
    "_BLOCK": "meter",
}


_MODULES = ("calls", "guard", "heap", "leaks", "linetrace", "meter", "tm")


def __getattr__(name):
    # A public name: import its module and keep the name here. A module name
    # (`from lowwater.prof import meter`, which MicroPython resolves through
    # this function): import the module. Anything else: AttributeError.
    mod = _NAMES.get(name)
    if mod is None:
        if name not in _MODULES:
            raise AttributeError(name)
        mod = name
    m = __import__("lowwater.prof." + mod, None, None, (mod,))
    value = m if mod == name else getattr(m, "BLOCK" if name == "_BLOCK" else name)
    globals()[name] = value
    return value
