# lowwater.telemetry (device writer): every record exactly as docs/telemetry.md
# says, on str and bytes streams, and no allocation per record on MicroPython.
import io
import sys

import ptest
from lowwater.telemetry import Telemetry

KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/+-"

# The documented keys of each kind, in order (docs/telemetry.md).
KEYS = {
    "boot": "t board heap warn min chunk count ver",
    "mem": "t n free alloc lw lvl gc_us",
    "lvl": "t from to free",
    "shed": "t what bytes entries",
    "stat": "t chunks processed dropped errors smin smax smean",
    "err": "t where exc",
    "end": "t chunks processed dropped errors lw gc_max_us gc_mean_us checks warn critical",
}


def is_int(v):
    d = v[1:] if v.startswith("-") else v
    return len(d) > 0 and all(c in "0123456789" for c in d)


def check_line(line):
    """Assert one line is `LW1 kind k=v ...` per the doc; return (kind, keys, values)."""
    assert line.startswith("LW1 "), line
    parts = line.split(" ")
    kind = parts[1]
    assert kind and all(c in KEY_CHARS for c in kind) and kind[0] not in "0123456789_", line
    keys, values = [], []
    for p in parts[2:]:
        assert p.count("=") == 1, line
        k, v = p.split("=")
        assert k and all(c in KEY_CHARS for c in k) and k[0] not in "0123456789", line
        assert v and (is_int(v) or all(c in TOKEN_CHARS for c in v)), line
        keys.append(k)
        values.append(v)
    assert keys[0] == "t" and is_int(values[0]), line
    return kind, keys, values


def lines_of(text):
    assert text.endswith("\n"), repr(text)
    return text[:-1].split("\n")


def write_all(tel):
    tel.boot("unix", 131072, 40960, 20480, 256, 16, "0.1.0")
    tel.mem(1, 98304, 32768, 98304, "ok", 41)
    tel.lvl("ok", "warn", 40000)
    tel.shed("store", 4096, 12)
    tel.stat(256, 250, 6, 0, 1021, 3075, 2048)
    tel.err("chunk", "ValueError")
    tel.end(4096, 4000, 96, 1, 30000, 95, 12, 16, 3, 1)


EXPECTED = (
    "LW1 boot t=120 board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0\n"
    "LW1 mem t=120 n=1 free=98304 alloc=32768 lw=98304 lvl=ok gc_us=41\n"
    "LW1 lvl t=120 from=ok to=warn free=40000\n"
    "LW1 shed t=120 what=store bytes=4096 entries=12\n"
    "LW1 stat t=120 chunks=256 processed=250 dropped=6 errors=0 smin=1021 smax=3075 smean=2048\n"
    "LW1 err t=120 where=chunk exc=ValueError\n"
    "LW1 end t=120 chunks=4096 processed=4000 dropped=96 errors=1 lw=30000 gc_max_us=95 gc_mean_us=12 "
    "checks=16 warn=3 critical=1\n"
)


def clock():
    return 120


def test_every_kind_is_written_exactly_as_documented_to_a_str_stream():
    out = io.StringIO()
    write_all(Telemetry(out, clock=clock))
    assert out.getvalue() == EXPECTED, out.getvalue()


def test_a_bytes_stream_gets_the_same_bytes():
    out = io.BytesIO()
    write_all(Telemetry(out, clock=clock))
    assert out.getvalue() == EXPECTED.encode(), out.getvalue()


def test_each_kind_has_the_documented_keys_in_order():
    out = io.StringIO()
    write_all(Telemetry(out))
    lines = lines_of(out.getvalue())
    assert len(lines) == len(KEYS)
    for line in lines:
        kind, keys, values = check_line(line)
        assert keys == KEYS[kind].split(" "), (kind, keys)


def test_t_is_ticks_ms_by_default():
    from lowwater._compat import ticks_diff, ticks_ms

    out = io.StringIO()
    t0 = ticks_ms()
    Telemetry(out).mem(1, 2, 3, 4, "ok", 5)
    t1 = ticks_ms()
    t = int(check_line(lines_of(out.getvalue())[0])[2][0])
    assert 0 <= t <= 0x3FFFFFFF
    assert ticks_diff(t, t0) >= 0 and ticks_diff(t1, t) >= 0


def test_ints_zero_negative_and_wide():
    out = io.StringIO()
    values = [0, 1, 9, 10, -1, -10, 1234567890, 0x3FFFFFFF, -0x3FFFFFFF, 0x40000000, -(1 << 40), 10**15]
    tel = Telemetry(out, clock=clock)
    for v in values:
        tel.mem(v, v, v, v, "warn", v)
    for line, v in zip(lines_of(out.getvalue()), values):
        s = str(v)
        assert line == "LW1 mem t=120 n=%s free=%s alloc=%s lw=%s lvl=warn gc_us=%s" % (s, s, s, s, s), line


def test_clock_values_are_written_as_ints():
    out = io.StringIO()
    ts = [0, 5, 0x3FFFFFFF]

    def clk():
        return ts.pop(0)

    tel = Telemetry(out, clock=clk)
    for _ in range(3):
        tel.err("loop", "OSError")
    assert out.getvalue() == (
        "LW1 err t=0 where=loop exc=OSError\n"
        "LW1 err t=5 where=loop exc=OSError\n"
        "LW1 err t=1073741823 where=loop exc=OSError\n"
    )


def test_record_writes_later_kinds_with_ints_tokens_and_bools():
    out = io.StringIO()
    tel = Telemetry(out, clock=clock)
    tel.record("prof", "name", "ring.put", "us", 12, "neg", -3, "hot", True, "cold", False)
    tel.record("log")
    assert out.getvalue() == "LW1 prof t=120 name=ring.put us=12 neg=-3 hot=1 cold=0\nLW1 log t=120\n"
    for line in lines_of(out.getvalue()):
        check_line(line)


def test_record_rejects_bad_input_and_writes_nothing():
    out = io.StringIO()
    tel = Telemetry(out, clock=clock)
    for args in (
        ("Prof", "a", 1),  # kind not lowercase
        ("", "a", 1),
        ("9x", "a", 1),
        ("prof", "a"),  # odd pairs
        ("prof", "Key", 1),  # bad key
        ("prof", "a b", 1),
        ("prof", "t", 1),  # t is stamped by the writer
        ("prof", "a", "two words"),  # bad token
        ("prof", "a", "x=y"),
        ("prof", "a", ""),
        ("prof", "a", 1.5),  # not an int or token
        ("prof", "a", None),
        ("prof", "a", 1, "b", "ok", "c", "bad value"),  # bad late value
    ):
        ptest.raises(ValueError, tel.record, *args)
    assert out.getvalue() == ""


def test_token_values_are_checked_in_boot_shed_and_err():
    tel = Telemetry(io.StringIO(), clock=clock)
    ptest.raises(ValueError, tel.boot, "my board", 1, 1, 1, 1, 1, "0.1")
    ptest.raises(ValueError, tel.shed, "a=b", 1, 1)
    ptest.raises(ValueError, tel.err, "chunk", "")


def test_disabled_writer_writes_nothing_and_touches_no_stream():
    class Refuses:
        def write(self, x):
            raise AssertionError("written")

    tel = Telemetry(Refuses(), enabled=False)
    write_all(tel)
    tel.record("prof", "a", 1)
    assert tel.stream is None
    # still validates record() arguments: a quiet run finds the same bugs
    ptest.raises(ValueError, tel.record, "prof", "a")


def test_default_stream_is_stdout():
    assert Telemetry().stream is sys.stdout


def test_stream_taking_neither_str_nor_bytes_is_refused():
    class Picky:
        def write(self, x):
            raise TypeError("no")

    e = ptest.raises(ValueError, Telemetry, Picky())
    assert "stream" in str(e)


def test_custom_stream_with_only_write_works():
    class Collect:
        def __init__(self):
            self.parts = []

        def write(self, x):
            self.parts.append(bytes(x) if not isinstance(x, str) else x.encode())
            return len(x)

    c = Collect()
    write_all(Telemetry(c, clock=clock))
    assert b"".join(c.parts) == EXPECTED.encode()


def _bio_writer():
    bio = io.BytesIO(bytearray(512))
    return bio, Telemetry(bio)


def test_mem_record_allocates_nothing():
    bio, tel = _bio_writer()

    def one():
        bio.seek(0)
        tel.mem(123456, 98304, 32768, -98304, "critical", 41)

    ptest.assert_no_alloc(one, 500)


def test_periodic_and_rare_records_allocate_nothing():
    bio, tel = _bio_writer()

    def lvl():
        bio.seek(0)
        tel.lvl("ok", "warn", 40000)

    def stat():
        bio.seek(0)
        tel.stat(256, 250, 6, 0, 1021, 3075, 2048)

    def shed():
        bio.seek(0)
        tel.shed("store", 4096, 12)

    def err():
        bio.seek(0)
        tel.err("chunk", "ValueError")

    def boot():
        bio.seek(0)
        tel.boot("unix", 131072, 40960, 20480, 256, 16, "0.1.0")

    for fn in (lvl, stat, shed, err, boot):
        ptest.assert_no_alloc(fn, 100)


def test_mem_record_to_stdout_allocates_nothing():
    # The real stream of a board: sys.stdout. Writes 3 lines to the test's output.
    tel = Telemetry()
    if not ptest.MICROPYTHON:
        ptest.skip("mem_total is MicroPython-only")
    assert ptest.heap_bytes(lambda: tel.mem(1, 2, 3, 4, "ok", 5), 2) == 0
