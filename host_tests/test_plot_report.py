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
