# lowwater.prof.linetrace: bytes per source line of one call, under
# sys.settrace (docs/profiling.md): lines, print_lines.
import gc
import sys
from array import array

from lowwater import _compat
from lowwater._compat import mem_alloc, mem_total
from lowwater.prof import meter
from lowwater.prof.meter import ALLOC, TOTAL, TRACE, fn_name


def lines(fn, *a, **k):
    """Run fn(*a, **k) once under sys.settrace and attribute bytes to its lines:
    -> [(lineno, hits, bytes)] by line. Bytes use this runtime's counter
    (mem_total requests; CPython: net traced bytes, may be negative). Nested
    calls count for the calling line. Raises NotImplementedError without
    sys.settrace (the unix port's standard build)."""
    settrace = _compat.settrace
    if settrace is None:
        raise NotImplementedError("line profiling needs sys.settrace (a MICROPY_PY_SYS_SETTRACE build)")
    mode = meter.MODE
    if mode == TRACE:
        t = meter.tracer()
        t.ensure()
        count = t.traced
    elif mode == TOTAL:
        count = mem_total
    else:
        count = mem_alloc
    code = getattr(fn, "__code__", None)
    name = fn_name(fn)
    rows = {}
    line = [None]  # the line being measured
    # Counter at its start and now: in an array on CPython, so no int object
    # of ours stays alive across a measured line.
    mark = array("q", [0, 0]) if mode == TRACE else [0, 0]

    def local(frame, event, arg):
        mark[1] = count()
        if line[0] is not None:
            rows[line[0]][1] += mark[1] - mark[0]
            line[0] = None
        if event == "line":
            ln = frame.f_lineno
            r = rows.get(ln)
            if r is None:
                r = rows[ln] = [0, 0]
            r[0] += 1
            line[0] = ln
        mark[0] = count()
        return local

    def glob(frame, event, arg):
        c = frame.f_code
        if event == "call" and (c is code if code is not None else c.co_name == name):
            mark[0] = count()
            return local
        return None

    g = gc.isenabled()
    if mode == ALLOC:
        gc.disable()
    settrace(glob)
    try:
        fn(*a, **k)
    finally:
        settrace(None)
        if g:
            gc.enable()
    return [(ln, rows[ln][0], rows[ln][1]) for ln in sorted(rows)]


def print_lines(rows, fn=None, file=None):
    """Print lines() output like memory_profiler: line, hits, bytes, source."""
    file = file or sys.stdout
    src = []
    code = getattr(fn, "__code__", None)
    if code is not None:
        try:
            with open(code.co_filename) as f:
                src = f.read().split("\n")
        except OSError:
            src = []
    print("%6s %6s %10s  %s" % ("line", "hits", "bytes", "source"), file=file)
    for ln, hits, b in rows:
        text = src[ln - 1].rstrip() if 0 < ln <= len(src) else ""
        print("%6d %6d %10d  %s" % (ln, hits, b, text), file=file)
