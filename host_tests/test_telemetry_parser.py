"""lowwater_tools.telemetry: the host-side LW1 parser, tick unwrapping, CSV and summaries."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowwater_tools.errors import UserError
from lowwater_tools.telemetry import (
    MAX_LINE,
    TICKS_PERIOD,
    CsvLog,
    Parser,
    Record,
    Summary,
    csv_columns,
    parse_bytes,
    percentile,
    read_log,
    ticks_diff,
    unwrap_ticks,
    write_csv,
)

DOC_EXAMPLE = (
    b"LW1 boot t=0 board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0\n"
    b"LW1 mem t=120 n=1 free=98304 alloc=32768 lw=98304 lvl=ok gc_us=41\n"
    b"LW1 stat t=120 chunks=256 processed=256 dropped=0 errors=0 smin=1021 smax=3075 smean=2048\n"
)


def parse(data: bytes):
    return parse_bytes(data)


def feed_split(data: bytes, cuts) -> tuple[list[Record], dict]:
    p = Parser()
    out = []
    prev = 0
    for c in sorted(set(cuts)):
        out += p.feed(data[prev:c])
        prev = c
    out += p.feed(data[prev:])
    out += p.close()
    return out, p.stats.as_dict()


def key(recs):
    return [(r.kind, r.fields, r.line, r.seq) for r in recs]


def accounted(stats) -> bool:
    s = stats if isinstance(stats, dict) else stats.as_dict()
    return s["bytes"] == s["record_bytes"] + s["skipped_bytes"] + s["pending"]


# ---------------------------------------------------------------- the format


def test_doc_example_parses_to_typed_fields():
    recs, stats = parse(DOC_EXAMPLE)
    assert [r.kind for r in recs] == ["boot", "mem", "stat"]
    boot = recs[0]
    assert boot.fields == {
        "t": 0,
        "board": "unix",
        "heap": 131072,
        "warn": 40960,
        "min": 20480,
        "chunk": 256,
        "count": 16,
        "ver": "0.1.0",
    }
    assert boot.t == 0 and boot.seq == 0 and boot.host_time is None
    assert recs[1].t == 120 and recs[1].fields["lvl"] == "ok" and recs[2].seq == 2
    assert recs[0].line == DOC_EXAMPLE.split(b"\n")[0].decode()
    assert stats.records == 3 and stats.lines == 3 and stats.skipped_lines == 0
    assert stats.by_kind == {"boot": 1, "mem": 1, "stat": 1}
    assert accounted(stats)


def test_field_order_kept_and_negative_ints_and_tokens():
    (rec,), _ = parse(b"LW1 x z=1 a=-5 b=+5 c=1.5 d=a:b/c-d_e e=-\n")
    assert list(rec.fields) == ["z", "a", "b", "c", "d", "e"]
    assert rec.fields == {"z": 1, "a": -5, "b": "+5", "c": "1.5", "d": "a:b/c-d_e", "e": "-"}
    assert rec.t is None


def test_record_without_fields_and_unknown_kinds_are_kept():
    recs, _ = parse(b"LW1 end\nLW1 prof t=3 fn=ring_put us=12\n")
    assert [(r.kind, r.fields) for r in recs] == [("end", {}), ("prof", {"t": 3, "fn": "ring_put", "us": 12})]


def test_crlf_and_repl_noise_on_the_same_line():
    data = (
        b"MicroPython v1.29.0 on 2026-01-01; linux [GCC] version\r\n"
        b'Type "help()" for more information.\r\n'
        b">>> LW1 mem t=1 free=5\r\n"
        b"\x01\x02\x04OKLW1 mem t=2 free=6\r\n"
        b"raw REPL; CTRL-B to exit\r\n>\x04\x04>LW1 mem t=3 free=7\r\r\n"
        b"\xff\xfe\xc3(LW1 mem t=4 free=8\n"
        b"printed without newline LW1 mem t=5 free=9\n"
    )
    recs, stats = parse(data)
    assert [r.t for r in recs] == [1, 2, 3, 4, 5]
    assert [r.line for r in recs] == [f"LW1 mem t={i} free={i + 4}" for i in range(1, 6)]
    assert stats.skipped_lines == 3
    assert accounted(stats)


@pytest.mark.parametrize(
    "line",
    [
        b"LW1 mem t=1 junk",  # trailing garbage
        b"LW1 mem t=1 ",  # trailing blank
        b"LW1 mem  t=1",  # two spaces
        b"LW1 Mem t=1",  # kind not lowercase
        b"LW1 1mem t=1",  # kind starts with a digit
        b"LW1 mem T=1",  # key not lowercase
        b"LW1 mem t=",  # empty value
        b"LW1 mem t=1=2",  # = in a value
        b'LW1 mem t="x"',  # quotes
        b"LW1 mem t=1 t=2",  # repeated key
        b"LW1 mem t=1\x00",  # control byte
        b"LW1 mem t=1\tn=2",  # tab
        b"LW1 mem t=\xc3\xa9",  # non-ASCII
        b"LW2 mem t=1",  # another format version
        b"lw1 mem t=1",
        b"LW1",
        b"LW1 ",
        b"LW1 mem t=1 \r",
    ],
)
def test_not_exactly_the_format_is_not_a_record(line):
    recs, stats = parse(line + b"\n")
    assert recs == []
    assert stats.skipped_lines == 1 and stats.skipped_bytes == len(line) + 1


def test_first_prefix_that_parses_wins():
    # two records glued (newline lost): the first is broken, the second is found
    (rec,), _ = parse(b"LW1 mem t=1 n=LW1 mem t=2\n")
    assert rec.t == 2
    (rec,), _ = parse(b"LW1 stat t=1 LW1 mem t=2\n")
    assert rec.line == "LW1 mem t=2"


def test_on_noise_gets_the_lines_that_are_not_records():
    seen = []
    p = Parser(on_noise=seen.append)
    p.feed(b"Traceback (most recent call last):\r\nLW1 mem t=1\r\nMemoryError: memory allocation failed\n")
    p.close()
    assert seen == [b"Traceback (most recent call last):\r", b"MemoryError: memory allocation failed"]


def test_on_noise_errors_do_not_break_parsing():
    def boom(line):
        raise RuntimeError("display broke")

    p = Parser(on_noise=boom)
    assert [r.t for r in p.feed(b"noise\nLW1 mem t=1\n")] == [1]


# ---------------------------------------------------------------- streaming


def test_records_split_across_chunks():
    p = Parser()
    assert p.feed(b"LW1 mem t=1") == []
    assert p.stats.pending == 11
    assert p.feed(b"2 free=") == []
    (rec,) = p.feed(b"5\r\nLW1 m")
    assert rec.fields == {"t": 12, "free": 5}
    assert [r.t for r in p.feed(b"em t=13\n")] == [13]
    assert p.stats.pending == 0 and accounted(p.stats)


def test_close_skips_a_truncated_final_record():
    p = Parser()
    p.feed(b"LW1 mem t=1\nLW1 mem t=2 free=98")  # cut off: free=98304 was printed
    assert p.close() == []
    assert p.stats.records == 1 and p.stats.skipped_lines == 1
    assert p.stats.pending == 0 and accounted(p.stats)


def test_close_returns_a_final_record_ended_by_cr():
    p = Parser()
    p.feed(b"LW1 mem t=1\r\nLW1 end t=2\r")
    (rec,) = p.close()
    assert rec.line == "LW1 end t=2" and rec.seq == 1
    assert p.close() == []  # idempotent
    assert accounted(p.stats)


def test_parser_goes_on_after_close():
    p = Parser()
    p.feed(b"LW1 mem t=1\nLW1 mem t=")
    p.close()
    assert [(r.t, r.seq) for r in p.feed(b"LW1 mem t=3\n")] == [(3, 1)]


def test_overlong_line_is_dropped_with_bounded_memory():
    p = Parser()
    for _ in range(256):  # 1 MiB without a newline
        assert p.feed(b"x" * 4096) == []
        assert len(p._buf) <= MAX_LINE and p.stats.pending <= MAX_LINE
    assert [r.t for r in p.feed(b"LW1 mem t=1\nLW1 mem t=2\n")] == [2]
    s = p.stats
    assert s.records == 1 and s.skipped_lines == 1 and s.lines == 2
    assert s.skipped_bytes == 256 * 4096 + len(b"LW1 mem t=1\n")
    assert accounted(s)


def test_line_of_exactly_max_line_bytes_can_be_a_record():
    rec = b"LW1 mem t=1 pad=" + b"x" * (MAX_LINE - 16)
    assert len(rec) == MAX_LINE
    recs, _ = feed_split(rec + b"\n", range(0, MAX_LINE + 1, 1000))
    assert len(recs) == 1
    recs, _ = feed_split(rec + b"x\n", range(0, MAX_LINE + 1, 1000))
    assert recs == []


def test_feed_accepts_bytearray_and_memoryview_and_empty():
    p = Parser()
    assert p.feed(b"") == []
    assert p.feed(bytearray(b"LW1 a t=1\n"))[0].t == 1
    assert p.feed(memoryview(b"LW1 a t=2\n"))[0].t == 2


# ---------------------------------------------------------------- properties

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_TAIL = _LOWER + "0123456789_"
_kind = st.builds(str.__add__, st.sampled_from(_LOWER), st.text(_TAIL, max_size=7))
_key = st.builds(str.__add__, st.sampled_from(_LOWER + "_"), st.text(_TAIL, max_size=6))
_value = st.one_of(st.integers(-(10**12), 10**12).map(str), st.text(_TAIL + "ABCXYZ.:/+-", min_size=1, max_size=10))
_fields = st.dictionaries(_key, _value, max_size=10)


@st.composite
def record_lines(draw):
    kind = draw(_kind)
    fields = draw(_fields)
    text = " ".join(["LW1", kind, *(f"{k}={v}" for k, v in fields.items())])
    model = {k: int(v) if re.fullmatch(r"-?[0-9]+", v) else v for k, v in fields.items()}
    noise_before = draw(st.sampled_from([b"", b">>> ", b"\x04", b"\x01\x04OK", b"\xff\xfe", b"=== "]))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return ("rec", kind, model, text, noise_before + text.encode() + ending)


_noise_line = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")).filter(lambda b: b"LW1 " not in b)
_long_noise = st.integers(MAX_LINE - 2, MAX_LINE + 300).map(lambda n: b"\xaa" * n)
_items = st.lists(
    st.one_of(
        record_lines(), _noise_line.map(lambda b: ("noise", b + b"\n")), _long_noise.map(lambda b: ("noise", b + b"\n"))
    ),
    max_size=30,
)

_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=40))
def test_random_bytes_never_raise_and_every_byte_is_accounted(data, cuts):
    p = Parser()
    prev = 0
    for c in sorted(set(min(c, len(data)) for c in cuts)):
        p.feed(data[prev:c])
        assert accounted(p.stats)
        prev = c
    p.feed(data[prev:])
    assert accounted(p.stats)
    p.close()
    s = p.stats
    assert accounted(s) and s.pending == 0 and s.bytes == len(data)
    assert s.records == sum(s.by_kind.values())
    assert s.lines == s.records + s.skipped_lines


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_items, st.lists(st.integers(0, 10**6), max_size=20))
def test_records_on_their_own_lines_are_all_recovered_from_noise(items, cuts):
    data = b"".join(it[-1] for it in items)
    recs, stats = feed_split(data, [c % (len(data) + 1) for c in cuts])
    expected = [(it[1], it[2], it[3]) for it in items if it[0] == "rec"]
    assert [(r.kind, r.fields, r.line) for r in recs] == expected
    assert [r.seq for r in recs] == list(range(len(expected)))
    assert stats["skipped_lines"] == len(items) - len(expected)
    assert accounted(stats) and stats["bytes"] == len(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(_items.map(lambda its: b"".join(it[-1] for it in its)), st.binary(max_size=600)),
    st.binary(max_size=30),
    st.lists(st.integers(0, 10**6), max_size=30),
)
def test_chunk_split_invariance(data, tail, cuts):
    data = data + tail  # often ends in a partial line
    whole = feed_split(data, [])
    assert feed_split(data, range(len(data) + 1)) == whole  # byte by byte
    assert feed_split(data, [c % (len(data) + 1) for c in cuts]) == whole


# ---------------------------------------------------------------- ticks


def test_ticks_diff_matches_the_board():
    assert ticks_diff(5, 3) == 2
    assert ticks_diff(3, 5) == -2
    assert ticks_diff(2, TICKS_PERIOD - 3) == 5  # across the wrap
    assert ticks_diff(TICKS_PERIOD - 3, 2) == -5


def R(kind, t=None, host=None, **kw):
    f = dict(kw)
    if t is not None:
        f["t"] = t
    return Record(kind, f, "", 0, host)


def test_unwrap_across_the_2_30_wrap():
    ts = [TICKS_PERIOD - 200, TICKS_PERIOD - 100, 0, 100, 50_000]
    assert unwrap_ticks([R("mem", t) for t in ts]) == [0, 100, 200, 300, 50_200]


def test_unwrap_many_wraps_stays_monotonic():
    t, recs = 0, []
    for _ in range(40):  # 40 steps of 0.1 period: four wraps
        t = (t + TICKS_PERIOD // 10) % TICKS_PERIOD
        recs.append(R("mem", t))
    tl = unwrap_ticks(recs)
    assert tl == [i * (TICKS_PERIOD // 10) for i in range(40)]


def test_unwrap_boot_starts_a_new_segment_and_small_steps_back_count_zero():
    recs = [R("boot", 1000), R("mem", 1500), R("mem", 1490), R("boot", 7), R("mem", 107)]
    assert unwrap_ticks(recs) == [0, 500, 500, 500, 600]


def test_unwrap_boot_gap_from_host_time_and_untimed_records():
    recs = [
        R("boot", 10, host=100.0),
        R("mem", 20, host=100.01),
        R("err", None, host=100.5),
        R("boot", 0, host=102.01),
        R("mem", 30, host=102.04),
    ]
    assert unwrap_ticks(recs) == [0, 10, None, 2010, 2040]


def test_unwrap_reset_without_boot_record_stays_monotonic():
    tl = unwrap_ticks([R("mem", 900_000), R("mem", 900_100), R("mem", 40), R("mem", 90)])
    assert tl == [0, 100, 100, 150]


# ---------------------------------------------------------------- CSV


def test_csv_column_order_is_documented_then_first_seen():
    cols = csv_columns(["zeta", "free", "t", "board", "alpha", "lw"])
    assert cols == ["host_time", "seq", "kind", "t", "board", "free", "lw", "zeta", "alpha"]
    assert csv_columns(["seq", "kind", "x"]) == ["host_time", "seq", "kind", "t", ".seq", ".kind", "x"]


def test_csv_round_trip(tmp_path):
    recs, _ = parse(DOC_EXAMPLE + b"LW1 prof t=130 fn=ring_put us=12 seq=4\nLW1 end\n")
    recs[0].host_time = 1700000000.25
    path = tmp_path / "r.csv"
    write_csv(recs, path)
    header = path.read_text().splitlines()[0]
    assert header.startswith("host_time,seq,kind,t,board,heap,warn,min,chunk,count,ver,n,free,")
    back, stats = read_log(path)
    assert [(r.kind, r.fields, r.seq) for r in back] == [(r.kind, r.fields, r.seq) for r in recs]
    assert back[0].host_time == 1700000000.25 and back[1].host_time is None
    assert back[3].fields["seq"] == 4  # a key named like a column survives as ".seq"
    assert stats.records == 5 and stats.by_kind["prof"] == 1
    assert back[1].line.startswith("LW1 mem t=120 ")


def test_write_csv_to_a_file_object():
    f = io.StringIO()
    write_csv(parse(DOC_EXAMPLE)[0], f)
    assert len(f.getvalue().splitlines()) == 4


def test_csvlog_equals_write_csv_and_is_flushed_as_it_goes(tmp_path):
    recs, _ = parse(
        DOC_EXAMPLE + b"LW1 lvl t=130 from=ok to=warn free=30000\n"
        b"LW1 prof t=131 fn=x us=3\nLW1 mem t=140 free=1 lw=1\n"
        b"LW1 end t=150 chunks=1 gc_max_us=9 critical=1\n"
    )
    for i, r in enumerate(recs):
        r.host_time = 1000.0 + i
    path = tmp_path / "live.csv"
    with CsvLog(path) as log:
        for i, r in enumerate(recs):
            log.add(r)
            # readable at every step, without closing: a crash here loses nothing
            assert [x.seq for x in read_log(path)[0]] == list(range(i + 1))
    want = io.StringIO()
    write_csv(recs, want)
    assert path.read_text() == want.getvalue()
    assert not (tmp_path / "live.csv.tmp").exists()


def test_read_log_raw_capture_with_noise(tmp_path):
    path = tmp_path / "cap.bin"
    path.write_bytes(b"\x00\xff garbage\r\n" + DOC_EXAMPLE.replace(b"\n", b"\r\n") + b"LW1 mem t=9")
    recs, stats = read_log(path)
    assert [r.kind for r in recs] == ["boot", "mem", "stat"]
    assert stats.skipped_lines == 2 and accounted(stats)


def test_read_log_missing_or_unreadable_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        read_log(tmp_path / "nope.csv")
    with pytest.raises(UserError, match="cannot read"):
        read_log(tmp_path)
    with pytest.raises(UserError, match="cannot write"):
        write_csv([], tmp_path / "no" / "dir.csv")


def test_read_log_csv_with_a_bad_row_counts_it_skipped(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("host_time,seq,kind,t,free\n,0,mem,1,5\n,zz,mem,2,6\n,2,BAD,3,7\n,3,mem,4,\n")
    recs, stats = read_log(path)
    assert [(r.seq, r.fields) for r in recs] == [(0, {"t": 1, "free": 5}), (3, {"t": 4})]
    assert stats.skipped_lines == 2


# ---------------------------------------------------------------- summary


RUN = b"""\
LW1 boot t=1000 board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0
LW1 mem t=1100 n=1 free=90000 alloc=41072 lw=90000 lvl=ok gc_us=10
LW1 stat t=1100 chunks=256 processed=256 dropped=0 errors=0 smin=1 smax=2 smean=1
LW1 lvl t=1150 from=ok to=warn free=39000
LW1 mem t=1200 n=2 free=39000 alloc=92072 lw=39000 lvl=warn gc_us=30
LW1 shed t=1201 what=store bytes=4096 entries=8
LW1 err t=1202 where=process exc=MemoryError
LW1 lvl t=1250 from=warn to=critical free=20000
LW1 mem t=1300 n=3 free=20000 alloc=111072 lw=20000 lvl=critical gc_us=20
LW1 stat t=1300 chunks=768 processed=760 dropped=8 errors=1 smin=1 smax=2 smean=1
LW1 end t=1400 chunks=800 processed=790 dropped=9 errors=1 lw=19000 gc_max_us=45 gc_mean_us=20 checks=3 warn=1 critical=1
"""


def test_summary_of_a_run():
    recs, _ = parse(RUN)
    s = Summary.of(recs)
    assert (s["chunks"], s["processed"], s["dropped"], s["errors"]) == (800, 790, 9, 1)
    assert s["low_water"] == 19000 and s["low_water_level"] == "critical"
    assert (s["heap"], s["warn"], s["min"]) == (131072, 40960, 20480)  # end's warn= is a count
    assert s["checks"] == {"ok": 1, "warn": 1, "critical": 1}
    assert s["gc_us"] == {"n": 3, "median": 20, "p99": 30, "max": 45, "last": 20}
    assert [(c["from"], c["to"]) for c in s["level_changes"]] == [("ok", "warn"), ("warn", "critical")]
    assert s["duration_ms"] == 400 and s["ended"] and s["boots"] == 1
    assert s["err_records"] == 1 and s["memory_errors"] == 1 and s["last_level"] == "critical"
    assert s["board"] == "unix" and s["ver"] == "0.1.0" and s["records"] == 11


def test_summary_sums_segments_across_a_reset():
    recs, _ = parse(
        b"LW1 boot t=5 board=b heap=100 warn=50 min=20\nLW1 stat t=9 chunks=10 processed=9 dropped=1 errors=0\n"
        b"LW1 boot t=1 board=b heap=100 warn=50 min=20\nLW1 stat t=4 chunks=3 processed=3 dropped=0 errors=2\n"
    )
    s = Summary.of(recs)
    assert (s["chunks"], s["processed"], s["dropped"], s["errors"], s["boots"]) == (13, 12, 1, 2, 2)
    assert s["duration_ms"] == 7 and not s["ended"]


def test_summary_without_boot_uses_the_profile_and_says_none_when_unknown():
    s = Summary.of(
        [R("mem", 1, free=30000, lvl="warn")],
        profile={"name": "p", "heap": 100000, "warn_free": 40000, "min_free": 20000},
    )
    assert (s["board"], s["heap"], s["warn"], s["min"]) == ("p", 100000, 40000, 20000)
    assert s["low_water_level"] == "warn" and s["chunks"] is None and s["gc_us"] is None
    empty = Summary.of([])
    assert empty["records"] == 0 and empty["low_water"] is None and empty["duration_ms"] is None


def test_summary_incremental_equals_at_once():
    recs, _ = parse(RUN)
    inc = Summary()
    for r in recs:
        inc.add(r)
    assert inc.result() == Summary.of(recs)


def test_percentile_nearest_rank():
    assert percentile([5], 99) == 5
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 101)), 50) == 50
    assert percentile([3, 1, 2], 100) == 3


# ---------------------------------------------------------------- log read: window records


def test_log_read_decodes_window_records(tmp_path, capsys):
    import json

    from lowwater_tools import cli
    from lowwater_tools.paths import device_module
    from lowwater_tools.reliability import log as logread

    win = device_module("window")
    log = logread.fl.FlashLog(str(tmp_path / "log"))
    for seq in (1, 2):
        s = win.summary()
        for i, v in enumerate((256 * seq, 250 * seq, 6, 0, 100, 900, 500 + seq)):
            s[i] = v
        b = bytearray(win.RECORD)
        win.pack(b, seq, s)
        log.append(bytes(b))
    log.append(b"not a window")
    wrong = bytearray(win.RECORD)
    win.pack(wrong, 99, win.summary())  # a window record under another seq: not decoded
    log.append(bytes(wrong))
    log.close()
    assert cli.main(["log", "read", str(tmp_path / "log")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seq=1 len=30 window produced=256 processed=250 dropped=6 errors=0 min=100 max=900 mean=501"
    assert lines[1].startswith("seq=2 len=30 window produced=512 processed=500 ")
    assert lines[2] == 'seq=3 len=12 text="not a window"'
    assert lines[3].startswith("seq=4 len=30 hex=5701")
    assert cli.main(["log", "read", str(tmp_path / "log"), "--json"]) == 0
    objs = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert objs[0]["window"]["dropped"] == 6 and "hex" in objs[0]
    assert "window" not in objs[2] and "window" not in objs[3]


def test_summary_units_never_fail_on_a_profile_that_does_not_load(monkeypatch):
    from lowwater_tools import boards
    from lowwater_tools.telemetry import lw1

    def broken(name):
        raise TypeError("a profile bug")

    lw1._board_profile.cache_clear()
    monkeypatch.setattr(boards, "load", broken)
    try:
        s = Summary.of(parse(DOC_EXAMPLE)[0])
    finally:
        lw1._board_profile.cache_clear()
    assert s["units"]["scale"] == "unknown" and s["heap"] == 131072  # the boot record's own figures


def test_summary_units_board_and_unix_port():
    esp = DOC_EXAMPLE.replace(b"board=unix heap=131072", b"board=esp32 heap=154000")
    u = Summary.of(parse(esp)[0])["units"]
    assert (u["scale"], u["board_heap"], u["heap"], u["factor"]) == ("unix-port", 110000, 154000, 1.4)
    assert u["text"].startswith("unix-port heap bytes, not board bytes (esp32: 110,000 B board heap")
    assert Summary.of(parse(DOC_EXAMPLE)[0])["units"]["scale"] == "board"
