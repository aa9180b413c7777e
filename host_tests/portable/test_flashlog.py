# lowwater.flashlog on both runtimes: framing, rotation, recovery after a torn
# write at any byte, corruption and garbage, allocation per append.
import os

import ptest
from lowwater import flashlog
from lowwater.flashlog import FlashLog, HEADER_SIZE

_HDR = HEADER_SIZE


# --- helpers: a unique scratch folder under $TMPDIR (or /tmp) on both runtimes --------


def _tmpdir():
    base = os.getenv("TMPDIR") or "/tmp"
    d = base + "/lw_flashlog_" + "".join("%02x" % b for b in os.urandom(6))
    os.mkdir(d)
    return d


def _rmtree(d):
    try:
        names = os.listdir(d)
    except OSError:
        return
    for n in names:
        p = d + "/" + n
        try:
            os.remove(p)
        except OSError:
            _rmtree(p)
    os.rmdir(d)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _files(d):
    return sorted(n for n in os.listdir(d) if flashlog.file_index(n) >= 0)


def _total(d):
    return sum(os.stat(d + "/" + n)[6] for n in os.listdir(d))


def _payload(r, i):
    # Varied lengths, with MAGIC bytes inside to tempt the resync.
    n = r.randint(0, 40)
    b = bytearray(r.bytes(n))
    if n > 3:
        b[n // 2] = 0xA5
    return bytes(b) + b"#%d" % i


def _with_dir(fn):
    d = _tmpdir()
    try:
        fn(d)
    finally:
        _rmtree(d)


# --- framing -----------------------------------------------------------------


def test_crc32_twin_agrees_with_binascii():
    import binascii

    r = ptest.Rand(3)
    assert flashlog.crc32_py(b"") == 0
    assert flashlog.crc32_py(b"123456789") == 0xCBF43926  # the CRC-32 check value
    for n in (1, 7, 64, 300):
        a, b = r.bytes(n), r.bytes(n // 2 + 1)
        assert flashlog.crc32_py(a) == binascii.crc32(a)
        assert flashlog.crc32_py(b, flashlog.crc32_py(a)) == binascii.crc32(b, binascii.crc32(a))


def test_log_written_with_the_twin_reads_with_the_default():
    # append() seals with crc_update (16-bit halves); the Scanner checks with
    # binascii.crc32 where the port has it, else with the twin.
    def t(d):
        log = FlashLog(d)
        for i in range(20):
            log.append(b"twin %d \xa5" % i)
        log.close()
        saved = flashlog._crc
        for crc in (saved, flashlog.crc32_py):
            flashlog._crc = crc
            try:
                log = FlashLog(d)
                assert log.seq == 20 and log.stats["recovered_truncated_bytes"] == 0
                assert [p for _, p in log.read()] == [b"twin %d \xa5" % i for i in range(20)]
                assert log.stats["crc_errors"] == 0
                log.close()
            finally:
                flashlog._crc = saved

    _with_dir(t)


def test_crc_update_allocates_nothing():
    data = bytes(range(200))
    st = [0xFFFF, 0xFFFF]
    flashlog.crc_table()
    flashlog.crc_update(st, data, len(data))

    def one():
        flashlog.crc_update(st, data, 200)

    ptest.assert_no_alloc(one, 50, "crc_update")


def test_crc_values_stay_small_ints_on_a_32_bit_board():
    # A 32-bit board boxes ints >= 2**30. Trace crc_update and FlashLog's
    # _head/_seal line by line (sys.settrace: CPython) over records whose CRC
    # is >= 2**30, and check that every int local stays below 2**16.
    import sys

    settrace = getattr(sys, "settrace", None)
    if settrace is None:
        ptest.skip("no sys.settrace on this runtime")
    seen = [0, 0]  # largest int local, lines traced

    def local_trace(frame, event, arg):
        for v in frame.f_locals.values():
            if type(v) is int and v > seen[0]:
                seen[0] = v
            elif type(v) is list and len(v) == 2 and max(v) > seen[0]:
                seen[0] = max(v)
        seen[1] += 1
        return local_trace

    def trace(frame, event, arg):
        if frame.f_code.co_name in ("crc_update", "_seal", "_head"):
            return local_trace
        return None

    def t(d):
        log = FlashLog(d, max_file_bytes=1 << 16)
        r = ptest.Rand(11)
        big = 0
        settrace(trace)
        try:
            for i in range(64):
                log.append(r.bytes(i))
                if log._h[11] >= 0x40:  # this record's CRC is >= 2**30
                    big += 1
        finally:
            settrace(None)
        log.close()
        assert big > 16, big
        assert seen[1] > 1000 and seen[0] < 1 << 16, seen
        log = FlashLog(d)
        assert len(list(log.read())) == 64 and log.stats["crc_errors"] == 0
        log.close()

    _with_dir(t)


def test_header_layout():
    def t(d):
        log = FlashLog(d)
        assert log.append(b"hi") == 1
        log.close()
        raw = _read(d + "/00000001.log")
        assert len(raw) == _HDR + 2
        assert raw[0] == 0xA5 and raw[2:4] == b"\x02\x00" and raw[4:8] == b"\x01\x00\x00\x00"
        x = 0x5A
        for b in raw[2:8]:
            x ^= b
        assert raw[1] == x
        crc = flashlog.crc32(raw[12:], flashlog.crc32(raw[:8]))
        assert raw[8:12] == bytes([crc & 0xFF, (crc >> 8) & 0xFF, (crc >> 16) & 0xFF, crc >> 24])
        assert raw[12:] == b"hi"

    _with_dir(t)


# --- append / read -------------------------------------------------------------


def test_round_trip_and_from_seq():
    def t(d):
        r = ptest.Rand(1)
        log = FlashLog(d, max_file_bytes=4096, max_files=4)
        assert log.seq == 0 and list(log.read()) == []
        want = [b"", b"\xa5" * 12, bytes(range(256)), b"x" * (4096 - _HDR)]
        want += [_payload(r, i) for i in range(50)]
        for i, p in enumerate(want):
            assert log.append(p) == i + 1
        log.flush()
        got = list(log.read())
        assert [s for s, _ in got] == list(range(1, len(want) + 1))
        assert [p for _, p in got] == want
        assert [s for s, _ in log.read(from_seq=40)] == list(range(40, len(want) + 1))
        assert list(log.read(from_seq=len(want) + 1)) == []
        st = log.stats
        assert st["records"] == len(want) and st["seq"] == len(want)
        assert st["bytes"] == sum(_HDR + len(p) for p in want)
        assert st["crc_errors"] == 0 and st["skipped_bytes"] == 0
        assert st["recovered_truncated_bytes"] == 0
        log.close()

    _with_dir(t)


def test_record_larger_than_a_file_is_refused():
    def t(d):
        log = FlashLog(d, max_file_bytes=100, max_files=2)
        ptest.raises(ValueError, log.append, b"x" * (100 - _HDR + 1))
        assert log.append(b"x" * (100 - _HDR)) == 1  # exactly one full file
        assert log.append(b"y") == 2  # rotated
        assert [p for _, p in log.read()] == [b"x" * 88, b"y"]
        log.close()
        ptest.raises(ValueError, FlashLog, d, 12, 4)
        ptest.raises(ValueError, FlashLog, d, 100, 1)

    _with_dir(t)


def test_rotation_bounds_files_and_bytes():
    def t(d):
        maxf, nfiles = 160, 3
        log = FlashLog(d, max_file_bytes=maxf, max_files=nfiles)
        for i in range(1, 301):
            assert log.append(_payload(ptest.Rand(i), i)) == i
            assert len(_files(d)) <= nfiles
            assert _total(d) <= nfiles * maxf
            for n in _files(d):
                assert os.stat(d + "/" + n)[6] <= maxf
        got = list(log.read())
        seqs = [s for s, _ in got]
        # a contiguous run of the newest records, ending at the last one
        assert seqs == list(range(seqs[0], 301)) and seqs[0] > 1
        assert all(_payload(ptest.Rand(s), s) == p for s, p in got)
        assert log.stats["files"] == nfiles
        log.close()

    _with_dir(t)


def test_restart_resumes_seq_across_rotation():
    def t(d):
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        for i in range(10):
            log.append(b"a%d" % i)
        log.close()
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log.seq == 10 and log.stats["recovered_truncated_bytes"] == 0
        assert log.append(b"b") == 11
        # no close(): a process killed after write() (the data is in the file)
        log2 = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log2.seq == 11
        assert log2.append(b"c") == 12
        seqs = [s for s, _ in log2.read()]
        assert seqs == sorted(seqs) and seqs[-2:] == [11, 12]
        log2.close()
        log.close()

    _with_dir(t)


# --- recovery ----------------------------------------------------------------


def _three_records(d):
    log = FlashLog(d, max_file_bytes=4096, max_files=4)
    recs = [b"first", b"\xa5second\xa5", b"third record \xa5\x00\xff"]
    for p in recs:
        log.append(p)
    log.close()
    return recs, _read(d + "/00000001.log")


def test_torn_tail_at_every_byte_of_the_last_record():
    def t(d):
        recs, raw = _three_records(d)
        start = len(raw) - _HDR - len(recs[2])
        for cut in range(start, len(raw)):
            _rmtree(d)
            os.mkdir(d)
            _write(d + "/00000001.log", raw[:cut])
            log = FlashLog(d, max_file_bytes=4096, max_files=4)
            assert log.seq == 2, (cut, log.seq)
            assert log.stats["recovered_truncated_bytes"] == cut - start
            assert [p for _, p in log.read()] == recs[:2], cut
            assert log.append(b"after") == 3
            assert [(s, p) for s, p in log.read()] == [(1, recs[0]), (2, recs[1]), (3, b"after")], cut
            assert log.stats["skipped_bytes"] == cut - start
            log.close()
            # the torn file is left alone; the next start is clean and resumes at 3
            assert _files(d) == (["00000001.log", "00000002.log"] if cut > start else ["00000001.log"])
            log = FlashLog(d, max_file_bytes=4096, max_files=4)
            assert log.seq == 3 and log.stats["recovered_truncated_bytes"] == 0
            log.close()

    _with_dir(t)


def test_newest_file_with_no_intact_record():
    def t(d):
        recs, raw = _three_records(d)
        _write(d + "/00000002.log", b"\xa5\x00garbage")  # a torn first record
        _write(d + "/00000003.log", b"")  # rotation interrupted before any write
        log = FlashLog(d, max_file_bytes=4096, max_files=4)
        assert log.seq == 3 and log.append(b"x") == 4
        assert _files(d)[-1] == "00000003.log"  # the empty newest file is reused
        assert [p for _, p in log.read()] == recs + [b"x"]
        log.close()

    _with_dir(t)


def test_empty_files_and_empty_folder():
    def t(d):
        _write(d + "/00000001.log", b"")
        _write(d + "/00000002.log", b"")
        _write(d + "/notes.txt", b"not a log file")
        log = FlashLog(d + "/", max_file_bytes=4096, max_files=4)
        assert log.seq == 0 and list(log.read()) == []
        assert log.append(b"one") == 1
        assert list(log.read()) == [(1, b"one")]
        log.close()
        assert _read(d + "/notes.txt") == b"not a log file"
        log = FlashLog(d + "/sub")  # a missing folder is created
        assert log.seq == 0 and log.append(b"z") == 1
        log.close()

    _with_dir(t)


def test_corrupted_byte_skips_only_that_record():
    def t(d):
        recs, raw = _three_records(d)
        a = _HDR + len(recs[0])
        b = a + _HDR + len(recs[1])
        for pos in range(a, b):
            for flip in (0x01, 0x80):
                bad = bytearray(raw)
                bad[pos] ^= flip
                _write(d + "/00000001.log", bad)
                log = FlashLog(d, max_file_bytes=4096, max_files=4)
                got = list(log.read())
                assert got == [(1, recs[0]), (3, recs[2])], (pos, got)
                st = log.stats
                assert st["skipped_bytes"] == b - a
                log.close()

    _with_dir(t)


def test_garbage_between_records_is_skipped():
    def t(d):
        recs, raw = _three_records(d)
        a = _HDR + len(recs[0])
        r = ptest.Rand(9)
        fake = bytearray(raw[a : a + _HDR + len(recs[1])])
        fake[-1] ^= 0xFF  # a well-formed header whose CRC fails
        junk = r.bytes(50) + b"\xa5" * 20 + bytes(fake) + b"\xa5"
        _write(d + "/00000001.log", raw[:a] + junk + raw[a:])
        log = FlashLog(d, max_file_bytes=4096, max_files=4)
        assert log.seq == 3
        assert [p for _, p in log.read()] == recs
        st = log.stats
        assert st["skipped_bytes"] == len(junk)
        assert st["crc_errors"] >= 1
        log.close()

    _with_dir(t)


def test_scanner_accounts_for_every_byte():
    def t(d):
        r = ptest.Rand(5)
        log = FlashLog(d, max_file_bytes=1 << 16, max_files=2)
        for i in range(40):
            log.append(_payload(r, i))
        log.close()
        raw = bytearray(_read(d + "/00000001.log"))
        for _ in range(30):
            raw[r.randint(0, len(raw) - 1)] = r.next() & 0xFF
        _write(d + "/00000001.log", raw)
        sc = flashlog.Scanner(32)
        good = 0
        with open(d + "/00000001.log", "rb") as f:
            for seq, off, n, data in sc.records(f, len(raw)):
                assert len(data) == n and raw[off + _HDR : off + _HDR + n] == data
                good += _HDR + n
        assert 0 < good < len(raw)

    _with_dir(t)


# --- foreign names, wrapping indices, duplicates ---------------------------------


def _names(d):
    return sorted(os.listdir(d))


def test_foreign_names_in_the_log_folder_are_ignored():
    def t(d):
        _write(d + "/00000002.LOG", b"upper case: not ours")
        os.mkdir(d + "/00000003.log")  # a directory with a log file's name
        _write(d + "/7.log", b"short name")
        _write(d + "/000000009.log", b"nine digits")
        foreign = ["000000009.log", "00000002.LOG", "00000003.log", "7.log"]
        log = FlashLog(d, max_file_bytes=64, max_files=3)  # must not raise
        assert log.seq == 0
        for i in range(1, 31):
            assert log.append(b"rec %d" % i) == i
        log.close()
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log.seq == 30
        assert [s for s, _ in log.read()] == list(range(30 - len(list(log.read())) + 1, 31))
        log.close()
        names = _names(d)
        for n in foreign:
            assert n in names, names
        assert _read(d + "/00000002.LOG") == b"upper case: not ours"
        assert len([n for n in names if n not in foreign]) <= 3, names

    _with_dir(t)


def test_a_stray_99999999_log_never_makes_nine_digit_names():
    def t(d):
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        for i in range(1, 6):
            log.append(b"rec %d" % i)
        log.close()
        _write(d + "/99999999.log", b"")  # planted, or left by some tool
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log.seq == 5
        for i in range(6, 41):
            assert log.append(b"rec %d" % i) == i
            for n in os.listdir(d):
                assert len(n) == 12, n
        log.close()
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log.seq == 40  # flushed records stay visible after reopen
        seqs = [s for s, _ in log.read()]
        assert seqs == list(range(seqs[0], 41)) and len(_files(d)) <= 3
        log.close()

    _with_dir(t)


def test_file_indices_wrap_after_99999999():
    def t(d):
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        log.append(b"one")
        log.close()
        os.rename(d + "/00000001.log", d + "/99999998.log")
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log.seq == 1
        for i in range(2, 21):
            assert log.append(b"rec %d" % i) == i
        log.close()
        assert _files(d) == ["00000002.log", "00000003.log", "00000004.log"], _files(d)  # via 0 and 1
        log = FlashLog(d, max_file_bytes=64, max_files=3)
        assert log.seq == 20 and log.append(b"x") == 21
        seqs = [s for s, _ in log.read()]
        assert seqs == list(range(seqs[0], 22)), seqs
        log.close()

    _with_dir(t)


def test_duplicated_file_and_replayed_record_never_repeat_or_lower_seqs():
    def t(d):
        log = FlashLog(d, max_file_bytes=64, max_files=5)
        for i in range(1, 10):
            log.append(b"rec %d" % i)
        log.close()
        names = _files(d)
        assert len(names) == 3, names
        first = _read(d + "/" + names[0])
        # a duplicated file: the oldest one copied as the newest
        _write(d + "/00000004.log", first)
        # a replayed record: the oldest record appended again to the middle file
        with open(d + "/" + names[1], "ab") as f:
            f.write(first[: _HDR + 5])
        log = FlashLog(d, max_file_bytes=64, max_files=5)
        assert log.seq == 9, log.seq  # never below a seq already in the log
        assert log.append(b"next") == 10
        got = [s for s, _ in log.read()]
        assert got == list(range(1, 11)), got
        assert log.stats["duplicates"] == 4, log.stats  # the copied file's 3, the replayed 1
        log.close()

    _with_dir(t)


# --- allocation ----------------------------------------------------------------


def test_append_allocates_nothing():
    def t(d):
        log = FlashLog(d, max_file_bytes=1 << 20, max_files=2)
        data = bytes(range(64))

        def one():
            log.append(data)

        ptest.assert_no_alloc(one, 300, "FlashLog.append")
        log.close()

    _with_dir(t)
