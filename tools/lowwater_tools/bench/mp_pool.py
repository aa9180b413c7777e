# BlockPool and SizeClassPool against FirstFit (host_tests/portable/firstfit.py,
# the classic toy malloc) as the arena fills. MicroPython unix port or CPython.
#
# Every allocator gets `blocks` blocks of `size` payload bytes (FirstFit: an
# arena of exactly blocks * (size + its 4-byte header)). At each fill level
# f, round(f * blocks) blocks are taken and kept live; a sample then times
# `ops` alloc+free pairs of one more block. FirstFit walks every live block
# before the fill level (its arena fills from offset 0); the pools pop and
# push a free stack whatever the fill. SizeClassPool serves the request from
# its `size` class among the default 16..512-byte classes.
import gc

import _bt
from firstfit import FirstFit
from lowwater.pool import BlockPool, SizeClassPool

_HDR = 4  # FirstFit's header bytes


def _pairs_ff(ff, size, n):
    a = ff.alloc
    f = ff.free
    for _ in range(n):
        f(a(size))


def _pairs_heap(p, size, n):
    # MicroPython's own allocator: a new bytearray per "alloc", dropped at once
    # ("free"); the collections it triggers are part of the time (amortised).
    for _ in range(n):
        bytearray(size)


def _pairs_block(p, size, n):
    a = p.alloc
    f = p.free
    for _ in range(n):
        f(a())


def _pairs_class(p, size, n):
    a = p.alloc
    f = p.free
    for _ in range(n):
        f(a(size))


def main():
    cfg = _bt.args()
    size = cfg["size"]
    nb = cfg["blocks"]
    classes = tuple(range(16, 513, 16))
    counts = [nb if c == size else 2 for c in classes]
    out = []
    for fill in cfg["fills"]:
        gc.collect()
        ff = FirstFit(nb * (size + _HDR))
        bp = BlockPool(size, nb)
        sp = SizeClassPool(classes, counts=counts)
        live = int(fill * nb + 0.5)
        keep = []
        for _ in range(live):
            keep.append(ff.alloc(size))
            keep.append(bp.alloc())
            keep.append(sp.alloc(size))
        runs = {
            "firstfit": (_pairs_ff, ff, cfg["ops_ff"]),
            "blockpool": (_pairs_block, bp, cfg["ops_pool"]),
            "sizeclass": (_pairs_class, sp, cfg["ops_pool"]),
            "heap": (_pairs_heap, None, cfg["ops_pool"]),
        }
        gc.collect()
        times = {}
        heap = {}
        for name in runs:
            fn, obj, n = runs[name]
            times[name] = []
            fn(obj, size, 2)  # warm-up
            if _bt.mem_total is not None:
                m = _bt.mem_total()
                fn(obj, size, n)
                m = _bt.mem_total() - m
                m0 = _bt.mem_total()
                fn(obj, size, 0)
                heap[name] = (m - (_bt.mem_total() - m0)) / n
        scanned = ff.scanned
        _pairs_ff(ff, size, 10)
        scanned = (ff.scanned - scanned) / 10  # headers FirstFit examines per alloc
        for rep in range(cfg["reps"]):
            for name in _bt.order(list(runs), rep):
                fn, obj, n = runs[name]
                t0 = _bt.ticks_us()
                fn(obj, size, n)
                times[name].append(_bt.ticks_diff(_bt.ticks_us(), t0) / n)  # us per pair
        assert ff.live() == live and bp.used == live and sp.used == live
        out.append({"fill": fill, "live": live, "us_per_pair": times, "heap_per_pair": heap, "ff_scanned": scanned})
        keep = runs = ff = bp = sp = None
        gc.collect()
    _bt.emit({"size": size, "blocks": nb, "levels": out})


main()
