# Helpers shared by the benchmark scripts (bench/mp_*.py). Portable: the same
# file runs on the MicroPython unix port and on CPython, with lib/ importable.
# Runtime differences come from lowwater._compat only.
import gc
import json
import sys

from lowwater._compat import MICROPYTHON, mem_total, ticks_diff, ticks_us

__all__ = ("MICROPYTHON", "args", "emit", "heap_per_call", "mem_total", "order", "ticks_diff", "ticks_us")


def args():
    """The benchmark's configuration: a JSON file named by argv[1] (a file, not
    the text: the PyPI unix port dies on an argument of 256+ characters)."""
    with open(sys.argv[1]) as f:
        return json.load(f)


def emit(obj):
    """The result: one line `BENCH <json>` on stdout, read by the host driver."""
    print("BENCH " + json.dumps(obj))


def order(variants, rep):
    """variants rotated by rep: each one leads in turn (ABC, BCA, CAB, ...), so
    drift and noise over a repetition hit every variant alike."""
    k = rep % len(variants)
    return variants[k:] + variants[:k]


def heap_per_call(calls, n):
    """Heap bytes each call requests, per call, over n rounds (mem_total delta
    around each call alone; None on CPython). calls: list of (fn, arg or None),
    called in order every round, as a steady-state pattern."""
    if mem_total is None:
        return None
    tot = [0] * len(calls)
    idx = list(range(len(calls)))
    gc.collect()
    for _ in range(n):
        for i in idx:
            fn, a = calls[i]
            if a is None:
                t = mem_total()
                fn()
                tot[i] += mem_total() - t
            else:
                t = mem_total()
                fn(a)
                tot[i] += mem_total() - t
    return [t / n for t in tot]
