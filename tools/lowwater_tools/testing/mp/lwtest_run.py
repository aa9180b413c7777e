# Runs one test function inside MicroPython (the 64-bit unix port or the 32-bit
# runtime) for the lowwater pytest plugin (lowwater_tools.testing.plugin), with
# the memory markers of lowwater_tools.testing.memory when it passes them.
# usage: micropython -m lwtest_run MODULE TEST [path=DIR:DIR] [pad=BYTES]
#          [limit_memory=BYTES] [no_alloc=TOLERANCE:WARMUPS] [limit_leaks=BYTES:WARMUPS:RUNS]
# Output protocol: the last line is LWTEST PASS, LWTEST FAIL or LWTEST SKIP <reason>;
# on a failure the traceback (and, for a memory marker, where the memory went) precedes it.
import gc
import sys

_opts = {}
for _a in sys.argv[3:]:
    _k, _, _v = _a.partition("=")
    _opts[_k] = _v
for _p in reversed(_opts.get("path", "").split(":")):
    if _p:
        sys.path.insert(0, _p)

_mod, _test = sys.argv[1], sys.argv[2]


def _ints(v):
    return [int(x) if x else None for x in v.split(":")]


def _hold(pieces, i, want):
    # Fill pieces[i:] with bytearrays, largest first, until `want` more bytes
    # are held or nothing more fits; returns the next free slot.
    n = want
    while i < len(pieces) and want >= 64:
        if n > want:
            n = want
        try:
            pieces[i] = bytearray(n - 32)  # less the object and the rounding to a block
        except MemoryError:
            n = n * 3 // 4
            if n < 64:
                break
            continue
        want -= n
        i += 1
    return i


def _ballast(limit):
    # Leave the body `limit` bytes of heap, as contiguous as the heap allows.
    # 1. Hold every free byte (largest pieces first, then the holes).
    # 2. Give back pieces, largest first, until `limit` bytes are free: the
    #    first one is usually the heap's big free region.
    # 3. Hold the excess again: the allocator takes the lowest address that
    #    fits, so the `limit` bytes left are the given-back region's tail.
    # A piece that a stale pointer keeps alive (the GC is conservative; the
    # 32-bit runtime also scans a shadow stack) does not come back: the next
    # one is given back instead. The body fails with MemoryError when its live
    # heap would exceed the limit; exact to a few hundred bytes.
    gc.collect()
    pieces = [None] * 256
    top = _hold(pieces, 0, gc.mem_free())
    j = 0
    while gc.mem_free() < limit and j < top:
        pieces[j] = None
        j += 1
        gc.collect()
    over = gc.mem_free() - limit
    if over >= 64:
        k = 0
        while k < len(pieces) and pieces[k] is not None:
            k += 1
        # slots 0..j-1 are free again; _hold fills from the first
        _hold(pieces, k, over)
    gc.collect()
    return pieces


def _heap_diff(prof, fn, calls):
    # Where the memory went, as far as MicroPython can tell without a line
    # tracer: the heap before and after `calls` more calls of the body.
    a = prof.snapshot()
    t0 = _total()
    for _ in range(calls):
        fn()
    t1 = _total()
    b = prof.snapshot()
    print(
        "where: %d more call(s) of %s: live heap %d -> %d B (%+d B kept), largest free block %d -> %d B"
        % (calls, _test, a.alloc, b.alloc, b.alloc - a.alloc, a.largest, b.largest)
    )
    if t0 is not None:
        print("where: heap requested by those calls (mem_total): %d B" % (t1 - t0))


def _total():
    try:
        import micropython

        return micropython.mem_total()
    except (ImportError, AttributeError):
        return None


def _first_alloc(fn):
    # The line of the body's first heap allocation: one more call under
    # heap_lock(), whose MemoryError traceback points at it. (A frame that the
    # VM takes from the heap falls back to the C stack under the lock, unseen.)
    try:
        import micropython

        lock, unlock = micropython.heap_lock, micropython.heap_unlock
    except (ImportError, AttributeError):
        return
    err = None
    lock()
    try:
        fn()
    except MemoryError as e:
        err = e
    unlock()  # exactly once: the lock nests, an extra unlock would wrap its count
    if err is not None:
        print("where: the first allocation of one more call (under heap_lock):")
        sys.print_exception(err)
        return
    print("where: one more call under heap_lock allocated nothing (a heap-allocated frame, or a first-call cost)")


def _lines(prof, fn):
    # Bytes per source line, where this build has sys.settrace (lowwater.prof.lines).
    try:
        rows = prof.lines(fn)
    except NotImplementedError:
        return
    rows = sorted(rows, key=lambda r: -r[2])[:5]
    print("where: bytes by line of one more call (lowwater.prof.lines):")
    for ln, hits, b in rows:
        print("  line %d: %d B over %d hit(s)" % (ln, b, hits))


def _pad(box, n):
    # box[0] = n bytes held; False when they do not fit. In a frame of its own
    # and never read back by the caller: a stale value-stack slot in a live
    # frame pointing at the pad would keep it alive (the GC is conservative;
    # the 32-bit runtime also scans a shadow stack).
    try:
        box[0] = bytearray(n)
    except MemoryError:
        return False
    return True


def _load(name, pad):
    # Import the test module (and, through it, lowwater) from source; with
    # pad=BYTES (the module's MP_PAD), while that much heap is held in one
    # block, freed before the test runs. The compiler leaves the heap
    # fragmented (parse trees and code objects interleaved): test_app.py
    # started with a largest free block of 8 to 13 KB (of 100 KB free, 64-bit,
    # 192 KiB heap) depending on the module's layout, and a firmware's 4 KB
    # ring fitted or not. As lowwater._handlers.boot frees a placeholder for
    # the firmware's buffers. A heap with no room for both imports without it.
    box = [None]
    if pad:
        gc.collect()
        if _pad(box, pad):
            try:
                return __import__(name)
            except MemoryError:
                pass
            finally:
                box[0] = None
                gc.collect()
    return __import__(name)


def _main():
    fn = getattr(_load(_mod, int(_opts.get("pad") or 0)), _test)
    na = _opts.get("no_alloc")
    ll = _opts.get("limit_leaks")
    limit = _opts.get("limit_memory")
    if na is None and ll is None and not limit:
        fn()
        return None
    from lowwater import prof

    call = fn
    if na is not None:
        tol, warm = _ints(na)
        for _ in range(warm or 0):
            fn()
        call = prof.no_alloc(fn, tol)
        call.name = _test
    pieces = _ballast(int(limit)) if limit else None
    try:
        if ll:
            size, warm, runs = _ints(ll)
            r = prof.LeakCheck(call, warm, runs, size).run()
        else:
            call()
            r = None
    except MemoryError as e:
        pieces = None
        if limit:
            print("where: the allocation that went over the limit:")
            sys.print_exception(e)
            raise AssertionError(
                "limit_memory: %s needed more than %s B of heap (MemoryError with the rest "
                "of the heap held back; MicroPython)" % (_test, limit)
            )
        raise
    except prof.AllocationError:
        pieces = None
        _first_alloc(fn)
        _heap_diff(prof, fn, 1)
        _lines(prof, fn)
        raise
    pieces = None
    if r is not None and r.leaked:
        _heap_diff(prof, fn, runs)
        _lines(prof, fn)
        raise AssertionError(
            "limit_leaks: %s retains %.1f B per run, over the limit of %d B per run "
            "(%d runs after %d warm-ups; MicroPython, gc.mem_alloc)" % (_test, r.slope, size, runs, warm)
        )
    return pieces


try:
    _main()
except BaseException as e:  # noqa: B036 - report everything, SystemExit included
    # A test skips by raising an exception class named Skip (lwtest.Skip, or a
    # project's own): matched by name, so this script imports no test helper.
    if type(e).__name__ == "Skip":
        print("\nLWTEST SKIP", e)
        sys.exit(0)
    sys.print_exception(e)
    print("LWTEST FAIL")
    sys.exit(1)
print("\nLWTEST PASS")
