"""`lowwater plot` and `lowwater report` on synthetic telemetry logs, and prof's records on the host."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import mprunner
from lowwater_tools import cli
from lowwater_tools.telemetry import plot
from lowwater_tools.telemetry import report as cmd_report
from lowwater_tools.errors import UserError
from lowwater_tools.telemetry import Parser, parse_bytes


def make_log(leak_per_chunk=0.0, checks=20, every=256, events=True, t0=1000) -> bytes:
    """A run as the firmware writes it: boot, then mem+stat per check, events, end."""
    out = [f"LW1 boot t={t0} board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0"]
    lw = None
    dropped = 0
    for n in range(1, checks + 1):
        t = t0 + 25 * n
        chunks = n * every
        alloc = 49088 + int(leak_per_chunk * chunks)
        free = 131072 - 1536 - alloc
        if events and n == 10:
            free -= 50000  # a burst that crosses warn
        lw = free if lw is None else min(lw, free)
        lvl = "warn" if free < 40960 else "ok"
        out.append(f"LW1 mem t={t} n={n} free={free} alloc={alloc} lw={lw} lvl={lvl} gc_us={40 + n}")
        if events and n in (10, 11):
            out.append(f"LW1 lvl t={t} from={'ok' if n == 10 else 'warn'} to={'warn' if n == 10 else 'ok'} free={free}")
        if events and n == 10:
            out.append(f"LW1 shed t={t} what=store bytes=4096 entries=8")
            dropped += 3
        out.append(
            f"LW1 stat t={t} chunks={chunks} processed={chunks - dropped} dropped={dropped} errors=0 "
            "smin=1 smax=9 smean=5"
        )
        if events and n == 12:
            out.append(f"LW1 err t={t} where=step exc=ValueError")
    out.append(
        f"LW1 end t={t0 + 25 * checks + 5} chunks={checks * every} processed={checks * every - dropped} "
        f"dropped={dropped} errors=0 lw={lw} gc_max_us={40 + checks} gc_mean_us=50 checks={checks} warn=1 "
        "critical=0"
    )
    return ("noise before\r\n>>> " + "\r\n".join(out) + "\r\nMicroPython v1.29 traceback noise\r\n").encode()


@pytest.fixture
def logs(tmp_path):
    tidy = tmp_path / "tidy.log"
    tidy.write_bytes(make_log())
    leaky = tmp_path / "leaky.log"
    leaky.write_bytes(make_log(leak_per_chunk=1.0, events=False))
    return tmp_path, tidy, leaky


def _recs(data: bytes):
    return parse_bytes(data)[0]


# ---------------------------------------------------------------- report


def test_report_verdicts():
    ok = cmd_report.build(_recs(make_log()))
    assert ok["leak"]["verdict"] == "ok" and ok["leak"]["x"] == "chunks"
    assert abs(ok["leak"]["slope"]) < 1, ok["leak"]
    bad = cmd_report.build(_recs(make_log(leak_per_chunk=1.0, events=False)))
    assert bad["leak"]["verdict"] == "leak", bad["leak"]
    assert 990 <= bad["leak"]["slope"] <= 1010  # 1 B per chunk = 1000 B per 1000 chunks
    small = cmd_report.build(_recs(make_log(leak_per_chunk=0.03, events=False)))
    assert small["leak"]["verdict"] == "ok"  # 30 B per 1000 chunks: under the documented 64
    assert cmd_report.build(_recs(make_log(leak_per_chunk=0.1, events=False)))["leak"]["verdict"] == "leak"


def test_report_figures():
    rep = cmd_report.build(_recs(make_log()))
    assert rep["chunks"] == 20 * 256 and rep["dropped"] == 3 and rep["errors"] == 0
    assert rep["budget"] == {"heap": 131072, "warn": 40960, "min": 20480}
    assert rep["low_water"] < 40960 and rep["low_water_level"] == "warn"
    assert rep["margin_over_min"] == rep["low_water"] - 20480
    assert rep["gc_us"]["p50"] == 50 and rep["gc_us"]["max"] == 60 and rep["gc_us"]["n"] == 20
    assert rep["level_changes"] == 2 and rep["ended"] is True
    assert rep["duration_s"] == pytest.approx(0.505)


def test_report_unknown_when_too_short():
    rep = cmd_report.build(_recs(make_log(checks=3, events=False)))
    assert rep["leak"]["verdict"] == "unknown" and rep["leak"]["slope"] is None
    assert "leak: unknown" in cmd_report.text(rep)


def test_report_leak_fits_the_last_boot_only():
    data = make_log(leak_per_chunk=1.0, events=False) + make_log(events=False, t0=5)
    assert cmd_report.build(_recs(data))["leak"]["verdict"] == "ok"


def test_report_cli_text_and_json(logs, capsys):
    _, tidy, leaky = logs
    assert cli.main(["report", str(tidy)]) == 0
    out = capsys.readouterr().out
    assert "chunks: 5120 produced" in out and "3 dropped" in out
    assert "low-water:" in out and "warn 40960" in out
    assert "gc pauses: n=20 p50 50 us" in out
    assert "leak: ok" in out
    assert cli.main(["report", str(leaky), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["leak"]["verdict"] == "leak" and rep["chunks"] == 5120


def test_report_threshold_option(logs, capsys):
    _, _, leaky = logs
    assert cli.main(["report", str(leaky), "--json", "--leak-threshold", "5000"]) == 0
    assert json.loads(capsys.readouterr().out)["leak"]["verdict"] == "ok"


@pytest.mark.parametrize("content", [b"", b"just noise\nno records here\n", b"\x00\xff" * 100])
def test_bad_logs_are_user_errors(tmp_path, capsys, content):
    p = tmp_path / "bad.log"
    p.write_bytes(content)
    for cmd in (["report", str(p)], ["plot", str(p), "-o", str(tmp_path / "x.png")]):
        assert cli.main(cmd) == 1
        err = capsys.readouterr().err
        assert err.startswith("lowwater: ") and "no telemetry records" in err and "Traceback" not in err


def test_missing_log_is_a_user_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope.log")]) == 1
    assert "cannot read" in capsys.readouterr().err


# ---------------------------------------------------------------- plot


def test_series_finds_the_events():
    s = plot.series(_recs(make_log()))
    assert len(s["mem"]) == 20
    assert [to for _, to in s["levels"]] == ["warn", "ok"]
    assert s["sheds"] == [(pytest.approx(0.25), 4096)]
    assert [d for _, d in s["drops"]] == [3]
    assert [e for _, e in s["errors"]] == ["ValueError"]
    assert s["mem"][0][0] == pytest.approx(0.025)


def test_plot_png_and_svg(logs):
    d, tidy, _ = logs
    recs = _recs(tidy.read_bytes())
    png = plot.plot(recs, d / "mem.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot.plot(recs, d / "mem.svg", profile={"warn_free": 1, "min_free": 1})
    text = svg.read_text()
    ET.fromstring(text)  # well-formed
    for label in (
        "free heap",
        "low-water",
        "warn_free 40960 B",
        "min_free 20480 B",
        "shed",
        "chunks dropped",
        "gc pause",
    ):
        assert label in text, label


def test_plot_budget_from_profile_without_boot(tmp_path):
    data = b"\n".join(line for line in make_log(events=False).split(b"\r\n") if b" boot " not in line)
    out = plot.plot(_recs(data), tmp_path / "p.svg", profile={"warn_free": 12345, "min_free": 2345})
    assert "warn_free 12345 B" in out.read_text()


def test_plot_refuses_what_it_cannot_draw(tmp_path):
    with pytest.raises(UserError, match="nothing to plot"):
        plot.plot(_recs(b"LW1 stat t=1 chunks=1\n"), tmp_path / "x.png")
    with pytest.raises(UserError, match="use a"):
        plot.plot(_recs(make_log()), tmp_path / "x.jpeg")


def test_plot_cli_default_output_and_csv(logs, capsys):
    d, tidy, _ = logs
    assert cli.main(["plot", str(tidy)]) == 0
    assert (d / "tidy.png").exists()
    assert capsys.readouterr().out.strip().endswith("tidy.png")


# ---------------------------------------------------------------- prof records reach the host


def test_prof_report_records_parse_on_the_host():
    code = (
        "from lowwater import prof\n"
        "f = prof.profile(lambda: bytearray(1000), name='alloc1k')\n"
        "for i in range(10): f()\n"
        "prof.report()\n"
    )
    res = mprunner.run_code(code, heap=131072, timeout=60)
    assert res.returncode == 0, res.out
    recs = [r for r in Parser().feed(res.out.encode()) if r.kind == "prof"]
    assert len(recs) == 1, res.out
    f = recs[0].fields
    assert f["fn"] == "alloc1k" and f["calls"] == 10
    assert f["b_max"] == 1032 and f["b_mean"] == 1032  # bytearray(1000) + its 32 B object on the unix port
    assert f["us_mean"] >= 0 and f["us_max"] >= f["us_mean"]


def test_probe_agrees_with_mem_info():
    # micropython.mem_info() prints the largest free run (in 32 B blocks on the
    # unix port) but returns nothing: compare the two from outside.
    code = (
        "import gc, micropython\n"
        "from lowwater import prof\n"
        "keep = [bytearray(i * 37 % 900 + 16) for i in range(150)]\n"
        "for i in range(0, 150, 3): keep[i] = None\n"
        "s = prof.snapshot()\n"
        "print('LARGEST', s.largest, s.method)\n"
        "gc.collect()\n"
        "micropython.mem_info()\n"
    )
    res = mprunner.run_code(code, heap=131072, timeout=60)
    assert res.returncode == 0, res.out
    largest = int(res.out.split("LARGEST ")[1].split()[0])
    blocks = prof_blocks(res.out.encode())
    assert blocks is not None, res.out
    assert blocks * 32 - 64 <= largest <= blocks * 32, (largest, blocks * 32)


def prof_blocks(text: bytes):
    from lowwater_tools.paths import device_module

    return device_module("prof").parse_max_free(text)


# ------------------------------------------------ a real `make run` capture

# Raw serial bytes captured by `lowwater monitor --capture` from a virtual board
# running the firmware as `make run` starts it (soft reset, boot, flash log):
# the same file docs/img/make_run_unix.png was drawn from.
CAPTURE = Path(__file__).parent / "data" / "make_run_unix.log"


def test_plot_and_report_a_real_make_run_capture(tmp_path, capsys):
    out = tmp_path / "mem.png"
    assert cli.main(["plot", str(CAPTURE), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    capsys.readouterr()
    assert cli.main(["report", str(CAPTURE), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["chunks"] > 10_000 and rep["dropped"] == 0
    assert rep["low_water"] > rep["budget"]["warn"] > rep["budget"]["min"]
    assert rep["leak"]["verdict"] == "ok"


# ------------------------------------------------ bounded memory, any input


def _long_log(path: Path, checks: int, spike_at: int | None = None) -> Path:
    """A long run: mem+stat per check, gc pauses ~90 us with rare 12 ms ones."""
    with open(path, "w") as f:
        f.write("LW1 boot t=0 board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0\n")
        lw = 10**9
        for n in range(1, checks + 1):
            free = 60000 - (n % 97) * 8 - (50000 if n == spike_at else 0)
            lw = min(lw, free)
            gc = 12000 + n % 500 if n % 1000 == 0 else 85 + n % 11
            f.write(f"LW1 mem t={n * 20} n={n} free={free} alloc={71000 - free} lw={lw} lvl=ok gc_us={gc}\n")
            f.write(f"LW1 stat t={n * 20} chunks={n * 256} processed={n * 256} dropped=0 errors=0\n")
    return path


def _peak(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_report_and_plot_series_memory_does_not_grow_with_the_log(tmp_path, monkeypatch):
    # Small caps so a few MB of log are "long"; the code paths are those of any size.
    monkeypatch.setattr(cmd_report, "MAX_POINTS", 256)
    monkeypatch.setattr(plot, "MAX_BUCKETS", 64)
    from lowwater_tools.telemetry.lw1 import iter_log

    small = _long_log(tmp_path / "s.log", 3000)
    big = _long_log(tmp_path / "b.log", 12000)

    def rep(p):
        return lambda: cmd_report.build(iter_log(p))

    def ser(p):
        def go():
            s = plot.Series()
            for r in iter_log(p):
                s.add(r)

        return go

    for make in (rep, ser):
        p_small, p_big = _peak(make(small)), _peak(make(big))
        # 4x the log, the same peak (a list of records would be ~4x)
        assert p_big < p_small * 1.3 + 64 * 1024, (make.__name__, p_small, p_big)


def test_thinned_leak_fit_keeps_the_verdict(monkeypatch):
    monkeypatch.setattr(cmd_report, "MAX_POINTS", 64)
    leaky = cmd_report.build(_recs(make_log(leak_per_chunk=1.0, checks=1000, events=False)))
    assert leaky["leak"]["verdict"] == "leak" and 990 <= leaky["leak"]["slope"] <= 1010
    assert leaky["leak"]["samples"] <= 64
    tidy = cmd_report.build(_recs(make_log(checks=1000, events=False)))
    assert tidy["leak"]["verdict"] == "ok"


def test_decimated_series_keeps_one_record_spikes(tmp_path, monkeypatch):
    monkeypatch.setattr(plot, "MAX_BUCKETS", 32)
    s = plot.Series()
    from lowwater_tools.telemetry.lw1 import iter_log

    for r in iter_log(_long_log(tmp_path / "x.log", 5000, spike_at=3333)):
        s.add(r)
    pts = s.points()
    assert len(s.buckets) <= 32 and len(pts["free"]) <= 64
    assert min(v for _, v in pts["free"]) == 60000 - (3333 % 97) * 8 - 50000  # the one-record dip
    assert max(p[2] for p in pts["gc"]) == max(12000 + n % 500 for n in range(1000, 5001, 1000))
    assert s.summary.gc.median() in range(85, 96) and s.mems == 5000


def _weird_inputs(d: Path) -> list[Path]:
    big = "9" * 400
    a = d / "bigint.log"
    a.write_text(
        f"LW1 boot t=0 board=unix heap={big} warn=40960 min=20480 chunk=256 count=16 ver=0.1.0\n"
        f"LW1 mem t={big} n=1 free={big} alloc={big} lw=-{big} lvl=ok gc_us={big}\n"
        "LW1 mem t=20 n=2 free=5000 alloc=100 lw=5000 lvl=ok gc_us=5\n"
        f"LW1 stat t=20 chunks={big} processed=1 dropped={big} errors=0\n"
    )
    b = d / "weird.csv"
    rows = [
        "host_time,seq,kind,t,board,heap,warn,min,n,free,alloc,lw,lvl,gc_us,chunks,dropped",
        "nan,0,boot,0,unix,131072,40960,20480,,,,,,,,",
        "inf,1,mem,10,,,,,1,50000,1000,50000,ok,50,,",
        "-inf,2,mem,20,,,,,2," + "7" * 4400 + ",1000,49000,ok,60,,",  # past Python's int() digit limit
        "1.5,3,mem,30,,,,,3,49000," + "x" * (128 * 1024 + 10) + ",49000,ok,70,,",  # past csv's field limit
        "2.5,4,boot,40,\udcff\udcfeboard,131072,40960,20480,,,,,,,,",  # a non-UTF-8 board name
        "3.5,5,mem,50,,,,,4,48000,1000,48000,ok,80,,",
        "1e400,6,stat,50,,,,,,,,,,,100,0",
    ]
    b.write_text("\n".join(rows) + "\n", encoding="utf-8", errors="surrogateescape")
    c = d / "nonutf8.log"
    c.write_bytes(b"LW1 boot t=0 board=\xff\xfe heap=1 warn=1 min=1\nLW1 mem t=1 n=1 free=10 lw=10 lvl=ok gc_us=1\n")
    e = d / "one-line.log"  # a single 1 MiB line without a newline, then records
    e.write_bytes(b"x" * (1 << 20) + b"\nLW1 mem t=1 n=1 free=10 lw=10 lvl=ok gc_us=1\n")
    return [a, b, c, e]


def test_values_the_parser_accepts_never_crash_report_or_plot(tmp_path, capsys):
    for log in _weird_inputs(tmp_path):
        for cmd in (["report", str(log)], ["report", str(log), "--json"], ["plot", str(log), "-o", str(log) + ".png"]):
            assert cli.main(cmd) == 0, (cmd, capsys.readouterr().err)
            out, err = capsys.readouterr()
            assert "Traceback" not in err
            if "--json" in cmd:
                json.loads(out)
    assert cli.main(["report", str(tmp_path / "weird.csv"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["low_water"] == 48000 and rep["records"] == 6  # the cells that are no LW1 value are left out


def test_report_of_a_device_is_one_line_not_a_memory_error(capsys):
    for cmd in (["report", "/dev/zero"], ["plot", "/dev/zero", "-o", "/dev/null.png"]):
        assert cli.main(cmd) == 1
        err = capsys.readouterr().err
        assert err.startswith("lowwater: /dev/zero is a device, not a log file") and err.count("\n") == 1


def test_report_fail_on(logs, capsys):
    _, tidy, leaky = logs
    assert cli.main(["report", str(tidy), "--fail-on", "leak"]) == 0
    capsys.readouterr()
    assert cli.main(["report", str(tidy), "--fail-on", "drops,errors"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lowwater: --fail-on: drops (3 chunk(s) dropped)")
    assert cli.main(["report", str(leaky), "--fail-on", "all", "--json"]) == 3
    rep = json.loads(capsys.readouterr().out)
    assert rep["failed"] and rep["failed"][0].startswith("leak")
    with pytest.raises(SystemExit) as e:
        cli.main(["report", str(tidy), "--fail-on", "nope"])
    assert e.value.code == 1 and "unknown condition" in capsys.readouterr().err


def test_report_help_says_fail_on_and_exit_status_3(capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--fail-on" in text and "exit status 3" in text and "leak" in text and "drops" in text


def test_report_says_the_units(logs, capsys):
    d, tidy, _ = logs
    assert cli.main(["report", str(tidy)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "units: board bytes (unix: 131,072 B heap)"
    esp = d / "esp.log"
    esp.write_bytes(make_log().replace(b"board=unix heap=131072", b"board=esp32 heap=154000"))
    assert cli.main(["report", str(esp), "--json"]) == 0
    u = json.loads(capsys.readouterr().out)["units"]
    assert (u["scale"], u["board_heap"], u["heap"], u["factor"]) == ("unix-port", 110000, 154000, 1.4)


def test_plot_marks_gc_outliers_and_counts_drops(tmp_path):
    from lowwater_tools.telemetry.lw1 import iter_log

    svg = plot.plot(iter_log(_long_log(tmp_path / "g.log", 3000)), tmp_path / "g.svg").read_text()
    assert "median 90 us" in svg or "median 9" in svg
    assert "over 10x median: 3 time step(s)" in svg and "max 12,000 us" in svg
    tidy = plot.plot(_recs(make_log()), tmp_path / "t.svg").read_text()
    assert "chunks dropped (3)" in tidy and "shed (1)" in tidy and "error (1)" in tidy
