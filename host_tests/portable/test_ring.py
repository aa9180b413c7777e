# lowwater.ring on both runtimes: ByteRing (viper path and plain twin) and
# ChunkRing, against small models, plus the allocation claims of docs/ring.md.
import gc

import ptest
from lowwater._compat import VIPER, mem_total
from lowwater.ring import ByteRing, ChunkRing

# The ByteRing paths this runtime has: the plain twin always, viper where the
# port has the emitter (MicroPython's unix port does; CPython never).
PATHS = (False, True) if VIPER is not None else (False,)

# a 70 KB ring needs one contiguous block: more than the default heap leaves
# (two of them in turn, each after the test module compiled from source)
MP_HEAP = {"test_byte_ring_beyond_the_ringio_limit": 393216}


def _rings(cap, overwrite=False):
    return [ByteRing(cap, overwrite, fast=f) for f in PATHS]


def _read_all(r):
    buf = bytearray(len(r))
    n = r.readinto(buf)
    assert n == len(buf)
    return bytes(buf)


# ---- ByteRing: behaviour ------------------------------------------------------------


def test_byte_ring_is_a_fifo():
    for r in _rings(16):
        assert (r.capacity, len(r), r.space()) == (16, 0, 16)
        assert r.write(b"abc") == 3
        assert r.write(bytearray(b"defg")) == 4
        assert (len(r), r.space()) == (7, 9)
        buf = bytearray(5)
        assert r.readinto(buf) == 5
        assert buf == b"abcde"
        assert _read_all(r) == b"fg"
        assert (len(r), r.space()) == (0, 16)


def test_byte_ring_peek_keeps_the_bytes():
    for r in _rings(8):
        r.write(b"hello")
        buf = bytearray(3)
        assert r.peekinto(buf) == 3 and buf == b"hel"
        assert r.peekinto(buf) == 3 and buf == b"hel"
        assert len(r) == 5
        assert _read_all(r) == b"hello"


def test_byte_ring_full_accepts_what_fits():
    for r in _rings(10):
        assert r.write(b"0123456") == 7
        assert r.write(b"abcdef") == 3
        assert r.write(b"x") == 0
        assert r.space() == 0 and len(r) == 10
        assert r.dropped == 0
        assert _read_all(r) == b"0123456abc"


def test_byte_ring_empty_and_zero_length():
    for r in _rings(4):
        buf = bytearray(b"zzz")
        assert r.readinto(buf) == 0 and buf == b"zzz"
        assert r.peekinto(buf) == 0 and buf == b"zzz"
        assert r.write(b"") == 0
        r.write(b"ab")
        assert r.readinto(bytearray(0)) == 0
        assert r.peekinto(bytearray(0)) == 0
        assert r.write(b"") == 0
        assert len(r) == 2
        # a short read leaves the rest of the destination alone
        assert r.readinto(buf) == 2 and buf == b"abz"


def test_byte_ring_wraps_around():
    for r in _rings(10):
        src = bytes(range(100, 200))
        sent = bytearray()
        out = bytearray()
        buf = bytearray(7)
        for step in range(40):
            chunk = src[(step * 6) % 90 : (step * 6) % 90 + 6]
            k = r.write(chunk)
            sent += chunk[:k]
            n = r.readinto(memoryview(buf)[: 3 + step % 5])
            out += buf[:n]
        out += _read_all(r)
        assert out == sent  # every accepted byte comes out once, in order
        assert len(out) > 100


def test_byte_ring_wrapped_contents_are_exact():
    for r in _rings(7):
        r.write(b"abcde")
        buf = bytearray(3)
        r.readinto(buf)  # "de" left at offsets 3..4
        assert r.write(b"fghij") == 5  # offsets 5, 6, then 0, 1, 2
        assert r.peekinto(bytearray(9)) == 7
        assert _read_all(r) == b"defghij"
        r.write(b"12")
        assert _read_all(r) == b"12"


def test_byte_ring_capacity_one():
    for r in _rings(1):
        assert r.write(b"ab") == 1
        assert r.write(b"c") == 0
        assert _read_all(r) == b"a"
    for r in _rings(1, overwrite=True):
        assert r.write(b"ab") == 2
        assert r.write(b"c") == 1
        assert r.dropped == 2
        assert _read_all(r) == b"c"


def test_byte_ring_beyond_the_ringio_limit():
    # micropython.RingIO holds at most 65534 bytes; ByteRing any capacity.
    for fast in PATHS:
        gc.collect()
        r = ByteRing(70001, fast=fast)
        block = bytes(range(256)) * 4
        for _ in range(68):
            assert r.write(block) == 1024
        assert r.write(block) == 70001 - 68 * 1024
        assert r.space() == 0
        buf = bytearray(1024)
        for i in range(68):
            assert r.readinto(buf) == 1024 and buf == block, i
        assert len(r) == 70001 - 68 * 1024
        del r, buf


def test_byte_ring_overwrite_drops_the_oldest():
    for r in _rings(8, overwrite=True):
        assert r.write(b"abcdef") == 6
        assert r.write(b"ghij") == 4  # everything is accepted
        assert r.dropped == 2
        assert len(r) == 8 and r.space() == 0
        assert _read_all(r) == b"cdefghij"
        r.write(b"123")
        buf = bytearray(1)
        r.readinto(buf)  # "23" left, wrapped position
        r.write(b"456789xy")
        assert r.dropped == 2 + 2
        assert _read_all(r) == b"456789xy"


def test_byte_ring_overwrite_oversize_keeps_the_newest():
    for r in _rings(5, overwrite=True):
        r.write(b"ab")
        assert r.write(b"0123456789") == 10
        assert r.dropped == 2 + 5
        assert _read_all(r) == b"56789"
        r.write(b"xyz")
        r.readinto(bytearray(1))  # "yz" left, not at offset 0
        assert r.write(memoryview(b"ABCDEFG")) == 7
        assert r.dropped == 7 + 2 + 2
        assert _read_all(r) == b"CDEFG"


def test_byte_ring_without_overwrite_counts_no_drops():
    for r in _rings(4):
        r.write(b"abcdefgh")
        assert r.dropped == 0


def test_byte_ring_buffer_types():
    for r in _rings(32):
        back = bytearray(40)
        src = memoryview(back)
        back[:] = bytes(range(40))
        r.write(b"by")
        r.write(bytearray(b"ba"))
        r.write(src[3:9])  # unaligned memoryview slice
        dst = bytearray(20)
        n = r.readinto(memoryview(dst)[1:])  # unaligned destination
        assert n == 10
        assert dst[1:11] == b"byba" + bytes(range(3, 9))
        assert dst[0] == 0 and dst[11] == 0


def test_byte_ring_bad_arguments():
    ptest.raises(ValueError, ByteRing, 0)
    ptest.raises(ValueError, ByteRing, -5)
    ptest.raises(TypeError, ByteRing, "64")
    for r in _rings(8):
        r.write(b"abc")
        ptest.raises(TypeError, r.write, 5)
        ptest.raises(TypeError, r.write, None)
        # a non-buffer with a length: TypeError, except from MicroPython's
        # plain twin, whose hot frame has no room for a try (docs/ring.md)
        exc = (TypeError, NotImplementedError) if ptest.MICROPYTHON and not r.fast else TypeError
        ptest.raises(exc, r.write, [1, 2])
        ptest.raises(TypeError, r.readinto, 5)
        ptest.raises(TypeError, r.readinto, b"xyz")  # read-only destination
        ptest.raises(TypeError, r.peekinto, b"xyz")
        assert _read_all(r) == b"abc"  # failed calls changed nothing
        ptest.raises(TypeError, r.readinto, b"xyz")  # also when empty


def test_byte_ring_clear_keeps_counters():
    for r in _rings(4, overwrite=True):
        r.write(b"abcdef")
        r.clear()
        assert (len(r), r.space(), r.dropped) == (0, 4, 2)
        r.write(b"xy")
        assert _read_all(r) == b"xy"


def test_byte_ring_fast_selection():
    r = ByteRing(8, fast=False)
    assert r.fast is False
    assert ByteRing(8).fast is (VIPER is not None)
    if VIPER is None:
        ptest.raises(ValueError, ByteRing, 8, False, True)
    else:
        assert ByteRing(8, fast=True).fast is True
    assert isinstance(ByteRing(8), ByteRing)


def _model_write(model, data, cap, overwrite):
    # -> (new model, accepted, dropped); model is bytes, oldest first
    if overwrite:
        model += data
        drop = max(0, len(model) - cap)
        return model[drop:], len(data), drop
    k = min(len(data), cap - len(model))
    return model + data[:k], k, 0


def _random_ops(seed, cap, overwrite, fast, steps):
    rnd = ptest.Rand(seed)
    r = ByteRing(cap, overwrite, fast=fast)
    model = b""
    dropped = 0
    back = bytearray(2 * cap + 16)
    for i in range(len(back)):
        back[i] = rnd.next() & 0xFF
    src = memoryview(back)
    dst_back = bytearray(2 * cap + 16)
    dst = memoryview(dst_back)
    for step in range(steps):
        op = rnd.randint(0, 9)
        off = rnd.randint(0, 7)  # aligned and unaligned addresses
        if op < 5:
            n = rnd.randint(0, cap + 3) if rnd.randint(0, 4) == 0 else rnd.randint(0, cap // 2 + 1)
            data = src[off : off + n]
            got = r.write(data)
            model, want, d = _model_write(model, bytes(data), cap, overwrite)
            dropped += d
            assert got == want, (seed, step, got, want)
        elif op < 9:
            n = rnd.randint(0, cap + 2)
            view = dst[off : off + n]
            for i in range(off, off + n):
                dst_back[i] = 0xA5
            peek = op == 8
            got = r.peekinto(view) if peek else r.readinto(view)
            k = min(n, len(model))
            assert got == k, (seed, step, got, k)
            assert bytes(view[:k]) == bytes(model[:k]), (seed, step)
            assert bytes(view[k:]) == b"\xa5" * (n - k)
            if not peek:
                model = model[k:]
        elif rnd.randint(0, 3) == 0:
            r.clear()
            model = b""
        assert len(r) == len(model), (seed, step)
        assert r.space() == cap - len(model)
        assert r.dropped == dropped
    return r, model


def test_byte_ring_random_operations_match_a_model():
    for fast in PATHS:
        for seed, cap in ((1, 1), (2, 3), (3, 8), (4, 13), (5, 64), (6, 100)):
            for overwrite in (False, True):
                _random_ops(seed, cap, overwrite, fast, 300)


def test_viper_path_and_twin_agree():
    # The same random operations, aligned and unaligned, through both paths:
    # identical returns, contents and counters at every step.
    if VIPER is None:
        ptest.skip("no viper emitter on this runtime: only the twin exists")
    for seed in range(1, 9):
        rnd = ptest.Rand(seed)
        cap = (1, 5, 8, 31, 64, 100, 257, 1024)[seed - 1]
        overwrite = seed % 2 == 0
        a = ByteRing(cap, overwrite, fast=True)
        b = ByteRing(cap, overwrite, fast=False)
        assert a.fast and not b.fast
        back = ptest.Rand(seed + 100).bytes(2 * cap + 40)
        da = bytearray(2 * cap + 40)
        db = bytearray(2 * cap + 40)
        for step in range(400):
            op = rnd.randint(0, 3)
            off = rnd.randint(0, 11)
            n = rnd.randint(0, cap + cap // 2 + 2)
            if op < 2:
                src = memoryview(back)[off : off + n]
                assert a.write(src) == b.write(src), (seed, step)
            else:
                va = memoryview(da)[off : off + n]
                vb = memoryview(db)[off : off + n]
                if op == 2:
                    assert a.readinto(va) == b.readinto(vb), (seed, step)
                else:
                    assert a.peekinto(va) == b.peekinto(vb), (seed, step)
                assert da == db, (seed, step)
            assert (len(a), a.space(), a.dropped) == (len(b), b.space(), b.dropped), (seed, step)


# ---- ByteRing: allocation -----------------------------------------------------------


def test_byte_ring_viper_path_allocates_nothing():
    if VIPER is None:
        ptest.skip("no viper emitter on this runtime")
    # 256-byte chunks through a 1000-byte ring: positions move, reads and
    # writes wrap; the 3-byte offsets make the addresses unaligned.
    r = ByteRing(1000)
    back = bytearray(300)
    src = memoryview(back)[3:259]
    dst = memoryview(bytearray(300))[1:257]
    r.write(b"abc")

    def cycle():
        r.write(src)
        r.peekinto(dst)
        r.readinto(dst)
        len(r)
        r.space()

    ptest.assert_no_alloc(cycle, 1000)
    ro = ByteRing(100, overwrite=True)

    def over():
        ro.write(src)  # oversize: keeps the newest 100, drops the rest
        ro.write(b"1234567")
        ro.readinto(dst)

    ptest.assert_no_alloc(over, 1000)
    ptest.assert_no_alloc(r.clear, 1000)


def test_byte_ring_twin_heap_cost_is_as_documented():
    # docs/ring.md: a write that neither wraps nor is cut allocates nothing;
    # a read allocates one memoryview (32 bytes on the 64-bit unix port),
    # wrapped reads and writes one or two more.
    if not ptest.MICROPYTHON:
        ptest.skip("heap accounting is MicroPython-only")
    r = ByteRing(4096, fast=False)
    src = bytearray(256)
    dst = bytearray(256)

    def write_then_clear():
        r.write(src)
        r.clear()

    assert ptest.heap_bytes(write_then_clear, 1000) == 0
    view = ptest.heap_bytes(lambda: memoryview(src), 1000) // 1000

    def write_read():
        r.write(src)
        r.readinto(dst)

    assert ptest.heap_bytes(write_read, 1000) == 1000 * view
    assert ptest.heap_bytes(r.space, 1000) == 0
    assert ptest.heap_bytes(r.__len__, 1000) == 0
    # the rare cases, one call each: views only, no frame on the heap
    # (docs/ring.md's table)
    src = bytearray(40)

    def ring(pre, read, over=False):
        q = ByteRing(64, over, fast=False)
        q.write(bytearray(pre))
        q.readinto(bytearray(read))
        return q

    cases = (  # name, ring, op, src written first (the bytes then wrap), views
        ("write wraps", ring(50, 50), "write", False, 3),
        ("write cut", ring(50, 0), "write", False, 2),
        ("write to a full ring", ring(64, 0), "write", False, 1),
        ("overwrite, wraps", ring(50, 0, True), "write", False, 3),
        ("read wraps", ring(50, 50), "readinto", True, 2),
        ("peek wraps", ring(50, 50), "peekinto", True, 2),
        ("read empty", ring(0, 0), "readinto", False, 0),
    )
    for name, q, op, fill, views in cases:
        if fill:
            q.write(src)
        arg = src if op == "write" else dst
        fn = getattr(q, op)
        gc.collect()
        m = mem_total()
        fn(arg)  # one call: the next one would find the ring changed
        got = mem_total() - m
        assert got == views * view, (name, got, views * view)


# ---- ChunkRing ----------------------------------------------------------------------


def test_chunk_ring_claim_commit_release():
    r = ChunkRing(4, 3)
    assert (r.chunk_size, r.count, len(r)) == (4, 3, 0)
    assert r.oldest() is None and r.oldest_len() == 0
    mv = r.claim()
    assert len(mv) == 4
    mv[0:2] = b"ab"
    r.commit(2)
    assert len(r) == 1 and r.committed == 1
    old = r.oldest()
    assert len(old) == 4 and r.oldest_len() == 2
    assert bytes(old[: r.oldest_len()]) == b"ab"
    r.release()
    assert len(r) == 0 and r.oldest() is None


def test_chunk_ring_is_zero_copy():
    r = ChunkRing(8, 2)
    mv = r.claim()
    r.commit()
    assert r.oldest() is mv  # the same preallocated view, no copy
    assert r.oldest_len() == 8


def test_chunk_ring_full_and_claim_twice():
    r = ChunkRing(2, 2)
    a = r.claim()
    assert r.claim() is a  # no commit yet: the same slot
    r.commit()
    b = r.claim()
    assert b is not a
    r.commit(1)
    assert r.claim() is None
    assert r.dropped == 0 and r.high_water == 2
    r.release()
    c = r.claim()
    assert c is a  # the freed slot comes round again
    r.commit(0)
    assert r.oldest() is b and r.oldest_len() == 1
    r.release()
    assert r.oldest() is c and r.oldest_len() == 0


def test_chunk_ring_overwrite_reclaims_the_oldest():
    r = ChunkRing(1, 3, overwrite=True)
    for ch in b"abcde":
        mv = r.claim()
        mv[0] = ch
        r.commit()
    assert r.dropped == 2 and r.committed == 5 and len(r) == 3
    out = []
    while len(r):
        out.append(r.oldest()[0])
        r.release()
    assert bytes(out) == b"cde"


def test_chunk_ring_high_water():
    r = ChunkRing(4, 5)
    for _ in range(3):
        r.claim()
        r.commit()
    assert r.high_water == 3
    r.claim()  # the claimed slot is in use too
    assert r.high_water == 4
    r.release()
    r.release()
    r.commit()
    assert r.high_water == 4 and len(r) == 2


def test_chunk_ring_misuse():
    r = ChunkRing(4, 2)
    ptest.raises(ValueError, r.commit)  # commit without claim
    ptest.raises(ValueError, r.release)  # release when empty
    r.claim()
    ptest.raises(ValueError, r.commit, 5)
    ptest.raises(ValueError, r.commit, -1)
    r.commit(4)
    ptest.raises(ValueError, r.commit)
    ptest.raises(ValueError, ChunkRing, 0, 4)
    ptest.raises(ValueError, ChunkRing, 4, 0)


def test_chunk_ring_slots_do_not_overlap():
    r = ChunkRing(3, 4)
    views = []
    for i in range(4):
        mv = r.claim()
        for j in range(3):
            mv[j] = 16 * i + j
        r.commit()
        views.append(mv)
    for i in range(4):
        assert bytes(r.oldest()) == bytes([16 * i, 16 * i + 1, 16 * i + 2])
        r.release()


def test_chunk_ring_random_operations_match_a_model():
    for seed, cs, count, overwrite in ((1, 1, 1, False), (2, 4, 3, True), (3, 16, 8, False), (4, 5, 5, True)):
        rnd = ptest.Rand(seed)
        r = ChunkRing(cs, count, overwrite)
        model = []  # the committed chunks' valid bytes, oldest first
        claimed = None  # the view of the claimed slot
        dropped = committed = high = 0
        for step in range(800):
            op = rnd.randint(0, 3)
            if op == 0:
                mv = r.claim()
                if claimed is not None:
                    assert mv is claimed, (seed, step)
                elif len(model) == count and not overwrite:
                    assert mv is None, (seed, step)
                else:
                    if len(model) == count:
                        model.pop(0)
                        dropped += 1
                    assert mv is not None and len(mv) == cs
                    claimed = mv
                    high = max(high, len(model) + 1)
            elif op == 1:
                if claimed is None:
                    ptest.raises(ValueError, r.commit)
                    continue
                n = rnd.randint(0, cs)
                data = ptest.Rand(seed * 1000 + step).bytes(n)
                claimed[:n] = data
                r.commit(n)
                committed += 1
                model.append(data)
                claimed = None
            elif op == 2:
                if not model:
                    ptest.raises(ValueError, r.release)
                    continue
                n = r.oldest_len()
                assert bytes(r.oldest()[:n]) == model[0], (seed, step)
                r.release()
                model.pop(0)
            elif model:
                assert bytes(r.oldest()[: r.oldest_len()]) == model[0], (seed, step)
            else:
                assert r.oldest() is None and r.oldest_len() == 0
            assert len(r) == len(model), (seed, step)
            assert (r.dropped, r.committed, r.high_water) == (dropped, committed, high), (seed, step)


def test_chunk_ring_allocates_nothing():
    r = ChunkRing(64, 4)
    ro = ChunkRing(16, 3, overwrite=True)

    def cycle():
        mv = r.claim()
        mv[0] = 1
        r.commit(10)
        r.oldest()
        r.oldest_len()
        len(r)
        r.release()

    def overwrite():
        ro.claim()
        ro.commit()  # full after 3: claim() then reclaims the oldest

    ptest.assert_no_alloc(cycle, 1000)
    ptest.assert_no_alloc(overwrite, 1000)
    ptest.assert_no_alloc(r.claim, 1000)  # claimed and not committed: same slot


# ---- lowwater._viper.chunk_stats (the viper twin used by lowwater.process) ----------
# Lives here because lowwater._viper ships with the ring; move it next to the
# process tests if they get a module of their own.


def test_viper_chunk_stats_matches_the_plain_twin():
    if VIPER is None:
        ptest.skip("no viper emitter on this runtime")
    from array import array

    from lowwater.process import _stats_py

    rnd = ptest.Rand(11)
    back = memoryview(bytearray(ptest.Rand(12).bytes(300)))
    a = array("i", bytes(48))  # lowwater.process layout: chunk, window, closed window
    b = array("i", bytes(48))
    for step in range(300):
        width = 1 + step % 2
        off = rnd.randint(0, 5)
        n = rnd.randint(0, 260) if step > 3 else step  # n = 0..3 first
        src = back[off : off + n]
        VIPER.chunk_stats(src, n, width, a)
        _stats_py(src, n, width, b)
        assert list(a) == list(b), (step, width, off, n, list(a), list(b))
    ptest.assert_no_alloc(lambda: VIPER.chunk_stats(src, n, 2, a), 1000, "chunk_stats")


def test_chunkring_fill_and_take_match_claim_commit_oldest_release():
    a = ChunkRing(4, 3, overwrite=True)
    b = ChunkRing(4, 3, overwrite=True)
    k = [0]

    def src(v):
        k[0] += 1
        v[0] = k[0]
        return 1 + k[0] % 4

    for step in range(20):
        n = a.fill(src)
        v = b.claim()
        k[0] -= 1
        b.commit(src(v))
        assert n == b._lens[(b._rd + len(b) - 1) % 3]
        if step % 3 == 2:  # leave some in the ring so it wraps and overwrites
            continue
        va = a.take()
        assert va[0] == b.oldest()[0] and a.taken == b.oldest_len()
        b.release()
    assert (a.committed, a.dropped, len(a)) == (b.committed, b.dropped, len(b))
    assert ChunkRing(4, 1).take() is None
    full = ChunkRing(4, 1)
    assert full.fill(src) >= 1 and full.fill(src) == -1  # full, no overwrite


def test_chunkring_fill_and_take_allocate_nothing():
    r = ChunkRing(256, 4, overwrite=True)
    data = bytearray(256)

    def rd(v):
        v[:] = data
        return 256

    ptest.assert_no_alloc(lambda: r.fill(rd) and r.take(), 1000, "fill + take")


def test_viper_copies_at_every_relative_alignment():
    # Every copy path of lowwater._viper (inline words, inline bytes, _copy's
    # words, halfwords and bytes; one piece or wrapped into two) against the
    # twin, for every source, ring and destination offset mod 4. One filler
    # byte stays ahead of the data until the data is written (an emptied ring
    # restarts at offset 0), so the data lands at ring offset pre + 1 and the
    # read starts there; the last `pre` wraps most sizes.
    if VIPER is None:
        ptest.skip("no viper emitter on this runtime")
    back = bytearray(ptest.Rand(3).bytes(700))
    for cap, sizes, pres in (
        (96, (1, 7, 8, 9, 15, 16, 17, 31, 33, 47, 63, 64, 65, 80), (0, 1, 2, 3, 55)),
        (600, (127, 128, 129, 200, 333, 517), (0, 1, 2, 3, 559)),
    ):
        for so in range(4):
            for do in range(4):
                for n in sizes:
                    for pre in pres:
                        a = ByteRing(cap, fast=True)
                        b = ByteRing(cap, fast=False)
                        for r in (a, b):
                            r.write(bytearray(pre + 1))
                            r.readinto(bytearray(pre))
                            r.write(memoryview(back)[so : so + n])
                            r.readinto(bytearray(1))  # read offset now at pre + 1
                        da = bytearray(n + 4)
                        db = bytearray(n + 4)
                        ka = a.readinto(memoryview(da)[do : do + n])
                        kb = b.readinto(memoryview(db)[do : do + n])
                        assert ka == kb == n, (cap, so, do, n, pre, ka, kb)
                        assert da == db, (cap, so, do, n, pre)
                        assert da[do : do + n] == back[so : so + n], (cap, so, do, n, pre)


def _methods_only(fast):
    # (in a frame of its own: no stale reference to the ring stays behind)
    r = ByteRing(64, fast=fast)
    return r.write, r.readinto, r.peekinto


def _junk():
    return [bytearray(b"\xee" * 88) for _ in range(200)]


def test_byte_ring_methods_outlive_the_ring():
    # write/readinto/peekinto are closures; kept without the ring, they must
    # keep its memory alive (the viper ones work on its address).
    for f in PATHS:
        w, rd, pk = _methods_only(f)
        for _ in range(3):
            gc.collect()
        junk = _junk()  # reuses whatever the collections freed
        assert w(b"abcdefgh" * 8) == 64
        out = bytearray(64)
        assert pk(out) == 64 and rd(out) == 64 and out == b"abcdefgh" * 8
        assert sum(1 for j in junk if j != b"\xee" * 88) == 0, f  # none written into


def test_byte_ring_methods_through_the_class():
    # the hot methods live in the instance dict; the class still has them
    for r in _rings(8):
        assert ByteRing.write(r, b"abc") == 3
        buf = bytearray(2)
        assert ByteRing.peekinto(r, buf) == 2 and buf == b"ab"
        assert type(r).readinto(r, buf) == 2 and buf == b"ab"
        assert len(r) == 1
