# Ring throughput and heap cost, side by side: ByteRing (viper path and plain
# twin), ChunkRing, micropython.RingIO, collections.deque and list. Runs on the
# unix port and on CPython (there: the twin, ChunkRing and deque only).
#
# One sample moves `bytes` bytes through one ring: write a ring-full of chunks,
# read them all back into a destination, repeat. Every variant does the same
# work (bytes in from a source buffer, bytes out to a destination buffer):
# - ByteRing / RingIO: write(src), readinto(dst);
# - ChunkRing: claim()[:] = src, commit(k); dst[:] = oldest(), release()
#   (the copies stand in for sensor.readinto(slot) and the consumer);
# - deque / list: append(bytes(src)); dst[:] = popleft() / pop(0).
# Output (emit): per configuration, per variant, the sample times in us, one
# per repetition, taken in rotated order within each repetition.
import gc

import _bt
from lowwater.ring import ByteRing, ChunkRing

try:
    from collections import deque
except ImportError:  # a port without collections.deque
    deque = None

try:
    from micropython import RingIO
except ImportError:  # CPython, or a port without RingIO
    RingIO = None


def _stream(w, r, src, dst, n, rounds):
    for _ in range(rounds):
        for _ in range(n):
            w(src)
        for _ in range(n):
            r(dst)


def _chunks(c, src, dst, n, rounds):
    cl = c.claim
    cm = c.commit
    ol = c.oldest
    rl = c.release
    k = len(src)
    for _ in range(rounds):
        for _ in range(n):
            cl()[:] = src
            cm(k)
        for _ in range(n):
            dst[:] = ol()
            rl()


def _deque(d, src, dst, n, rounds):
    ap = d.append
    pl = d.popleft
    for _ in range(rounds):
        for _ in range(n):
            ap(bytes(src))
        for _ in range(n):
            dst[:] = pl()


def _list(lst, src, dst, n, rounds):
    ap = lst.append
    pl = lst.pop
    for _ in range(rounds):
        for _ in range(n):
            ap(bytes(src))
        for _ in range(n):
            dst[:] = pl(0)


def _make(name, cap, k):
    # (runner, object) for one variant
    if name == "viper":
        return _stream, ByteRing(cap, fast=True)
    if name == "twin":
        return _stream, ByteRing(cap, fast=False)
    if name == "ringio":
        return _stream, RingIO(cap)
    if name == "chunk":
        return _chunks, ChunkRing(k, cap // k)
    if name == "deque":
        return _deque, deque((), cap // k)
    return _list, []


def _sample(runner, obj, src, dst, n, rounds):
    # One timed sample; returns (us, heap bytes requested or None).
    gc.collect()
    m = _bt.mem_total() if _bt.mem_total else 0
    t0 = _bt.ticks_us()
    if runner is _stream:
        runner(obj.write, obj.readinto, src, dst, n, rounds)
    else:
        runner(obj, src, dst, n, rounds)
    us = _bt.ticks_diff(_bt.ticks_us(), t0)
    return us, (_bt.mem_total() - m if _bt.mem_total else None)


def variants():
    v = []
    if RingIO is not None:
        v.append("ringio")
    if _bt.MICROPYTHON and ByteRing(1).fast:
        v.append("viper")
    v += ["twin", "chunk"]
    if deque is not None:
        v.append("deque")
    if _bt.MICROPYTHON:
        v.append("list")  # on CPython list.pop(0) is just a slower deque
    return v


def throughput(cfg):
    out = []
    names = variants()
    for cap in cfg["caps"]:
        for k in cfg["chunks"]:
            n = cap // k  # chunks per ring-full
            rounds = max(1, cfg["per_sample"] // n)
            src = bytearray(k)
            for i in range(k):
                src[i] = i & 0xFF
            dst = bytearray(k)
            objs = {}
            for name in names:
                objs[name] = _make(name, cap, k)
            times = {}
            heap = {}
            for name in names:
                times[name] = []
                runner, obj = objs[name]
                # warm-up, and the check that every variant really moves the bytes
                _sample(runner, obj, src, dst, n, 1)
                assert dst == src, name
                dst[0] ^= 0xFF
                # heap bytes per chunk: a run minus an empty run (the harness's
                # own call frames), over `hrounds` ring-fulls
                h = _sample(runner, obj, src, dst, n, cfg["hrounds"])[1]
                if h is not None:
                    heap[name] = (h - _sample(runner, obj, src, dst, n, 0)[1]) / (n * cfg["hrounds"])
            for rep in range(cfg["reps"]):
                for name in _bt.order(names, rep):
                    runner, obj = objs[name]
                    times[name].append(_sample(runner, obj, src, dst, n, rounds)[0])
            out.append(
                {
                    "cap": cap,
                    "chunk": k,
                    "chunks": n * rounds,  # per sample
                    "times_us": times,
                    "heap_per_chunk": heap,  # write + read, bytes; {} on CPython
                }
            )
            objs = None
            gc.collect()
    return out


# -- access patterns (issue 12): the byte rings only (RingIO, ByteRing) --------
# - stream: the ring keeps half its capacity resident; each round writes one
#   k-byte chunk and reads it back as two reads of different sizes (k//3 and
#   the rest), so read and write offsets move through every alignment and the
#   copies wrap at the end of the buffer all the time;
# - odd: writes of k-1 bytes from an odd offset of the source, read back as
#   two reads of odd offsets and sizes (no co-aligned copy).
# On the viper path every stream copy is co-aligned (the destination and the
# ring move by the same amounts) and no odd one is (docs/ring.md).


def _pattern(w, r, src, d1, d2, n):
    for _ in range(n):
        w(src)
        r(d1)
        r(d2)


def patterns(cfg):
    names = [v for v in variants() if v in ("ringio", "viper", "twin")]
    cap = cfg["pattern_cap"]
    out = []
    for k in cfg["chunks"]:
        n = max(1, cfg["per_sample"] * 4 // max(k // 64, 1))
        base = bytearray(k + 1)
        for i in range(k + 1):
            base[i] = (i * 7) & 0xFF
        mv = memoryview(base)
        dbuf = bytearray(k + 1)
        dv = memoryview(dbuf)
        cases = {
            "stream": (mv[:k], dv[: k // 3], dv[k // 3 : k]),
            "odd": (mv[1:k], dv[1 : k // 2], dv[k // 2 : k]),
        }
        for pat in ("stream", "odd"):
            src, d1, d2 = cases[pat]
            objs = {}
            for name in names:
                obj = _make(name, cap, k)[1]
                if pat == "stream":
                    obj.write(bytearray(cap // 2))  # resident data
                objs[name] = obj
                _pattern(obj.write, obj.readinto, src, d1, d2, 3)  # warm-up
            times = {name: [] for name in names}
            for rep in range(cfg["reps"]):
                for name in _bt.order(names, rep):
                    obj = objs[name]
                    t0 = _bt.ticks_us()
                    _pattern(obj.write, obj.readinto, src, d1, d2, n)
                    times[name].append(_bt.ticks_diff(_bt.ticks_us(), t0))
            out.append({"pattern": pat, "chunk": k, "cap": cap, "chunks": n, "times_us": times})
            objs = None
            gc.collect()
    return out


def _empty(a=None):
    pass


def per_op(cfg):
    # Heap bytes per call of each ring operation, in a steady pattern that
    # wraps: the ring holds 100 odd bytes (ByteRing) or 3 chunks (ChunkRing)
    # ahead of every write/read pair, so offsets move through every case.
    if _bt.mem_total is None:
        return None
    n = cfg["ops"]
    k = cfg["op_chunk"]
    cap = cfg["op_cap"]
    res = {"calibration": _bt.heap_per_call([(_empty, None)], n)[0]}
    src = bytearray(k)
    dst = bytearray(k)
    pre = bytearray(100)
    paths = ["twin"]
    if ByteRing(1).fast:
        paths.insert(0, "viper")
    for path in paths:
        r = ByteRing(cap, fast=(path == "viper"))
        r.write(pre)
        h = _bt.heap_per_call(
            [(r.write, src), (r.peekinto, dst), (r.readinto, dst), (r.__len__, None), (r.space, None)], n
        )
        res[path] = {"write": h[0], "peekinto": h[1], "readinto": h[2], "len": h[3], "space": h[4]}
    c = ChunkRing(k, cap // k)
    for _ in range(3):
        c.claim()
        c.commit(k)
    h = _bt.heap_per_call(
        [(c.claim, None), (c.commit, k), (c.oldest, None), (c.oldest_len, None), (c.release, None), (c.__len__, None)],
        n,
    )
    res["chunk"] = {"claim": h[0], "commit": h[1], "oldest": h[2], "oldest_len": h[3], "release": h[4], "len": h[5]}
    return res


def cg_case(cfg):
    # One case for instruction counts (docs/ring.md): cfg["cg"] = {"variant":
    # ringio|viper|twin, "pattern": fill|stream|odd, "chunk": k, "n": rounds}.
    # Run it under `valgrind --tool=callgrind` with n rounds and with 0; the
    # difference over n is the instructions per round (one chunk written and
    # read back: fill-drain as throughput() does it, stream and odd as
    # patterns() does), set-up and warm-up cancelling out.
    c = cfg["cg"]
    k = c["chunk"]
    n = c["n"]
    cap = c.get("cap", 4096)
    obj = _make(c["variant"], cap, k)[1]
    if c["pattern"] == "fill":
        src = bytearray(k)
        dst = bytearray(k)
        m = cap // k
        _stream(obj.write, obj.readinto, src, dst, m, 4)  # warm-up
        _stream(obj.write, obj.readinto, src, dst, m, n // m)
        return
    base = bytearray(k + 1)
    mv = memoryview(base)
    dv = memoryview(bytearray(k + 1))
    if c["pattern"] == "stream":
        src, d1, d2 = mv[:k], dv[: k // 3], dv[k // 3 : k]
        obj.write(bytearray(cap // 2))
    else:
        src, d1, d2 = mv[1:k], dv[1 : k // 2], dv[k // 2 : k]
    _pattern(obj.write, obj.readinto, src, d1, d2, 64)  # warm-up
    _pattern(obj.write, obj.readinto, src, d1, d2, n)


def main():
    cfg = _bt.args()
    if "cg" in cfg:
        cg_case(cfg)
        return
    res = {"variants": variants(), "throughput": throughput(cfg), "per_op": per_op(cfg)}
    if _bt.MICROPYTHON:
        res["patterns"] = patterns(cfg)
    _bt.emit(res)


main()
