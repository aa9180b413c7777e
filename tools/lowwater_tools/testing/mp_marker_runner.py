# Runs one portable test on the MicroPython unix port under the memory markers
# of lowwater_tools.testing.memory (it builds this command: mp_argv). Output
# protocol as host_tests/portable/_mprun.py: last line LWTEST PASS/FAIL/SKIP.
# usage: micropython mp_marker_runner.py MODULE TEST [path=DIR:DIR]
#          [limit_memory=BYTES] [no_alloc=TOLERANCE:WARMUPS] [limit_leaks=BYTES:WARMUPS:RUNS]
import gc
import sys

_opts = {}
for _a in sys.argv[3:]:
    _k, _, _v = _a.partition("=")
    _opts[_k] = _v
for _p in reversed(_opts.get("path", "").split(":")):
    if _p:
        sys.path.insert(0, _p)

from lowwater import prof  # noqa: E402

_mod, _test = sys.argv[1], sys.argv[2]


def _ints(v):
    return [int(x) if x else None for x in v.split(":")]


def _grab(pieces, budget):
    # Fill pieces with bytearrays, largest first, until `budget` bytes (None:
    # every free byte) are held or nothing more fits.
    n = gc.mem_free()
    for i in range(len(pieces)):
        free = gc.mem_free()
        if budget is not None:
            if budget < 32:
                break
            free = min(free, budget)
        if n > free:
            n = free
        while n >= 32:
            try:
                pieces[i] = bytearray(n)
                break
            except MemoryError:
                n = n * 3 // 4
        if pieces[i] is None:
            break
        if budget is not None:
            budget -= n


def _ballast(limit):
    # Leave the body `limit` bytes of heap, as contiguous as the heap allows:
    # reserve them (largest blocks first), hold back every other free byte in
    # up to 256 pieces (then the holes of a fragmented heap), free the reserve.
    # The body fails with MemoryError when its live heap would exceed the
    # limit. Holes smaller than a bytearray (~64 B) stay free: exact to a few
    # hundred bytes.
    gc.collect()
    reserve = [None] * 16
    _grab(reserve, limit)
    pieces = [None] * 256
    _grab(pieces, None)
    reserve = None
    gc.collect()
    return pieces


def _main():
    fn = getattr(__import__(_mod), _test)
    call = fn
    na = _opts.get("no_alloc")
    if na is not None:
        tol, warm = _ints(na)
        for _ in range(warm or 0):
            fn()
        call = prof.no_alloc(fn, tol)
        call.name = _test
    ll = _opts.get("limit_leaks")
    limit = _opts.get("limit_memory")
    pieces = _ballast(int(limit)) if limit else None
    try:
        if ll:
            size, warm, runs = _ints(ll)
            r = prof.LeakCheck(call, warm, runs, size).run()
        else:
            call()
            r = None
    except MemoryError:
        pieces = None
        if limit:
            raise AssertionError(
                "limit_memory: %s needed more than %s B of heap (MemoryError with the rest "
                "of the heap held back; MicroPython)" % (_test, limit)
            )
        raise
    pieces = None
    if r is not None and r.leaked:
        raise AssertionError(
            "limit_leaks: %s retains %.1f B per run, over the limit of %d B per run "
            "(%d runs after %d warm-ups; MicroPython, gc.mem_alloc)" % (_test, r.slope, size, runs, warm)
        )
    return pieces


try:
    _main()
except BaseException as e:  # noqa: B036 - report everything, SystemExit included
    # A test skips by raising an exception class named Skip (the suite's
    # ptest.Skip, or a project's own): this script imports no test helper.
    if type(e).__name__ == "Skip":
        print("\nLWTEST SKIP", e)
        sys.exit(0)
    sys.print_exception(e)
    print("LWTEST FAIL")
    sys.exit(1)
print("\nLWTEST PASS")
