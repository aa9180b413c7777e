"""`lowwater run` (firmware on the unix port, telemetry live) and the shared live view (lowwater_tools.telemetry.live)."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time

import pytest
from rich.console import Console

from lowwater_tools import boards
from lowwater_tools.telemetry.live import LiveView, heap_bar, render_summary, summary_rows
from lowwater_tools.paths import ROOT
from lowwater_tools.telemetry import Summary, parse_bytes, read_log

LOWWATER = [sys.executable, "-m", "lowwater_tools.cli"]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

# A stand-in firmware (MicroPython): the records of docs/telemetry.md, Ctrl-C ->
# `end`. MODE picks a misbehaviour. It stops by itself after 20 s so a broken
# test can never leave it running.
FAKE = r"""
import gc, os, sys, time
import lowwater.config
MODE = "%s"
n = int(os.getenv("LOWWATER_CHUNKS") or "0")
print("fake firmware banner")
print("env board=%%s chunks=%%s" %% (os.getenv("LOWWATER_BOARD"), os.getenv("LOWWATER_CHUNKS")))
print("heap_total=%%d" %% (gc.mem_free() + gc.mem_alloc()))
print("LW1 boot t=%%d board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0" %% time.ticks_ms())
i = 0
lvl = "ok"
start = time.ticks_ms()
keep = []
while True:
    try:
        while (n == 0 or i < n) and time.ticks_diff(time.ticks_ms(), start) < 20000:
            i += 1
            free = 100000 - (i %% 10) * 9000
            new = "critical" if free < 20480 else "warn" if free < 40960 else "ok"
            if new != lvl:
                print("LW1 lvl t=%%d from=%%s to=%%s free=%%d" %% (time.ticks_ms(), lvl, new, free))
                lvl = new
            print("LW1 mem t=%%d n=%%d free=%%d alloc=1 lw=%%d lvl=%%s gc_us=%%d" %% (time.ticks_ms(), i, free, free, lvl, 10 + i %% 5))
            print("LW1 stat t=%%d chunks=%%d processed=%%d dropped=0 errors=0 smin=1 smax=2 smean=1" %% (time.ticks_ms(), i * 16, i * 16))
            if MODE == "oom" and i == 3:
                while True:
                    keep.append(bytearray(4096))
            time.sleep_ms(5 if n else 20)
        break
    except KeyboardInterrupt:
        if MODE != "stubborn":
            break
if MODE == "exit3":
    sys.exit(3)
if MODE != "noend":
    print("LW1 end t=%%d chunks=%%d processed=%%d dropped=0 errors=0 lw=19000 gc_max_us=20 gc_mean_us=12 checks=%%d warn=0 critical=0" %% (time.ticks_ms(), i * 16, i * 16, i))
"""


@pytest.fixture
def fake(tmp_path):
    def make(mode="ok"):
        path = tmp_path / f"fake_{mode}.py"
        path.write_text(FAKE % mode)
        return path

    return make


def lowwater(*args, timeout=60):
    return subprocess.run(
        [*LOWWATER, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )


def test_bounded_run_prints_records_summary_csv_and_capture(fake, tmp_path):
    csv_path, cap = tmp_path / "run.csv", tmp_path / "run.bin"
    p = lowwater("run", "--board", "unix", "--main", fake(), "--chunks", 12, "--csv", csv_path, "--capture", cap)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    records = [line for line in lines if line.startswith("LW1 ")]
    # plain output: the record lines as received, then the summary
    assert records[0].startswith("LW1 boot ") and records[-1].startswith("LW1 end ")
    assert sum(line.startswith("LW1 mem ") for line in records) == 12
    assert "--- lowwater run: unix" in lines
    assert "chunks: 192" in lines and "dropped: 0" in lines and "end record: yes" in lines
    assert any(line.startswith("low-water: 19,000 B (budget: warn 40,960 B, min 20,480 B") for line in lines)
    assert any(line.startswith("gc pause: median ") and "p99" in line and "max 20 us" in line for line in lines)
    # the capture is every byte, noise included; the CSV is every record
    raw = cap.read_bytes()
    assert b"fake firmware banner" in raw
    from_capture, _ = parse_bytes(raw)
    from_csv, _ = read_log(csv_path)
    assert [r.line for r in from_capture] == records
    assert [(r.kind, r.fields) for r in from_csv] == [(r.kind, r.fields) for r in from_capture]
    assert all(r.host_time is not None for r in from_csv)
    # the firmware's environment: the profile's absolute path, N, lib/ importable
    assert f"env board={boards.profile_path('unix').resolve()} chunks=12".encode() in raw


def test_heap_is_the_boards_unix_heap_or_heap_option(fake, tmp_path):
    def total(*extra):
        cap = tmp_path / "h.bin"
        p = lowwater("run", "--main", fake(), "--chunks", 1, "--capture", cap, "--quiet", *extra)
        assert p.returncode == 0, p.stderr
        return int(re.search(rb"heap_total=(\d+)", cap.read_bytes()).group(1))

    want = boards.unix_heap(boards.load("esp32"))
    assert 0.8 * want < total("--board", "esp32") <= want
    assert 0.8 * 300_000 < total("--heap", 300_000) <= 300_000


def test_quiet_prints_only_the_summary(fake):
    p = lowwater("run", "--main", fake(), "--chunks", 3, "--quiet")
    assert p.returncode == 0
    assert not any(line.startswith("LW1") for line in p.stdout.splitlines())
    assert "chunks: 48" in p.stdout


def test_memory_error_crash_is_reported_clearly(fake):
    p = lowwater("run", "--main", fake("oom"), "--chunks", 10, "--heap", 60_000)
    assert p.returncode == 1
    assert "end record: no" in p.stdout
    err = p.stderr
    assert "Traceback" in err and "MemoryError: memory allocation failed" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lowwater: the firmware crashed (exit status 1)")
    assert "MemoryError: the firmware ran out of heap (60000 B unix heap" in last


def test_exit_status_and_missing_end_record_fail(fake):
    p = lowwater("run", "--main", fake("exit3"), "--chunks", 2)
    assert p.returncode == 1 and "crashed (exit status 3)" in p.stderr and "no end record" in p.stderr
    p = lowwater("run", "--main", fake("noend"), "--chunks", 2)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1] == "lowwater: the firmware printed no end record"


def test_duration_stops_like_ctrl_c(fake):
    p = lowwater("run", "--main", fake(), "--duration", 0.7, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "stopping: Ctrl-C sent to the firmware" in p.stderr
    assert p.stdout.splitlines().count("end record: yes") == 1


def test_firmware_that_ignores_ctrl_c_is_killed(fake):
    p = lowwater("run", "--main", fake("stubborn"), "--duration", 0.4, "--stop-timeout", 0.5, timeout=30)
    assert p.returncode == 1
    assert "did not stop within 0.5 s after Ctrl-C and was killed" in p.stderr


def _read_until(fd, pattern: bytes, timeout: float) -> bytes:
    out = b""
    end = time.monotonic() + timeout
    while pattern not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_ctrl_c_is_forwarded_and_the_run_ends_cleanly(fake):
    proc = subprocess.Popen(
        [*LOWWATER, "run", "--main", str(fake())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        seen = _read_until(proc.stdout.fileno(), b"LW1 mem ", 20)
        assert b"LW1 mem " in seen
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    out = seen + out
    assert b"LW1 end " in out and b"end record: yes" in out


def test_live_view_on_a_terminal(fake):
    master, slave = os.openpty()
    import fcntl
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 110, 0, 0))
    proc = subprocess.Popen(
        [*LOWWATER, "run", "--main", str(fake()), "--chunks", "40"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(slave)
    try:
        out = _read_until(master, b"end record", 30)
        out += _read_until(master, b"\xff", 1)  # the rest, until the pty closes
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        os.close(master)
    text = ANSI.sub("", out.decode("utf-8", "replace"))
    assert proc.returncode == 0, text[-2000:]
    assert "lowwater run: unix" in text and "free heap" in text and "low-water" in text
    assert "level ok -> warn" in text and "warn -> critical" in text  # level changes printed
    assert "\x1b[" in out.decode("utf-8", "replace")  # colour
    assert not any(line.startswith("LW1 mem") for line in text.splitlines())  # panel, not raw lines


def test_user_errors_are_one_line(fake, tmp_path):
    for args in (
        ["--board", "nope", "--main", fake()],
        ["--main", tmp_path / "missing.py"],
        ["--main", fake(), "--chunks", -1],
        ["--main", fake(), "--capture", tmp_path / "no" / "x"],
    ):
        p = lowwater("run", *args)
        assert p.returncode == 1
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("lowwater: "), p.stderr


def test_the_real_firmware_runs_bounded(tmp_path):
    p = lowwater("run", "--board", "unix", "--chunks", 600, "--csv", tmp_path / "r.csv", timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    recs, _ = read_log(tmp_path / "r.csv")
    kinds = [r.kind for r in recs]
    assert kinds[0] == "boot" and kinds[-1] == "end" and "mem" in kinds
    assert recs[-1].fields["chunks"] == 600


# ---------------------------------------------------------------- live view and summary rendering

RUN = (
    b"LW1 boot t=0 board=unix heap=131072 warn=40960 min=20480 chunk=256 count=16 ver=0.1.0\n"
    b"LW1 mem t=10 n=1 free=90000 alloc=1 lw=90000 lvl=ok gc_us=10\n"
    b"LW1 lvl t=20 from=ok to=warn free=39000\n"
    b"LW1 mem t=30 n=2 free=39000 alloc=1 lw=39000 lvl=warn gc_us=30\n"
    b"LW1 err t=31 where=process exc=MemoryError\n"
    b"LW1 stat t=40 chunks=32 processed=31 dropped=1 errors=1 smin=1 smax=2 smean=1\n"
    b"LW1 end t=50 chunks=32 processed=31 dropped=1 errors=1 lw=39000 gc_max_us=40 gc_mean_us=20 checks=2 warn=1 critical=0\n"
)


def test_heap_bar_marks_the_budget():
    # free 50 of 100: five cells filled; `|` at min (20 %) and warn (40 %)
    assert heap_bar(50, 100, 40, 20, width=10).plain == "[##|#|.....]"
    assert heap_bar(10, 100, 40, 20, width=10).plain == "[#.|.|.....]"
    assert heap_bar(None, 100, 40, 20, width=10).plain == "-" * 10


def test_live_view_plain_prints_record_lines(capsys):
    recs, _ = parse_bytes(RUN)
    with LiveView(plain=True) as view:
        for r in recs:
            view.add(r)
    assert capsys.readouterr().out.splitlines() == [r.line for r in recs]
    assert view.summary.result()["dropped"] == 1


def test_live_view_rich_panel_and_events():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system="standard")
    recs, _ = parse_bytes(RUN)
    with LiveView(console=console) as view:
        for r in recs:
            view.add(r)
    text = ANSI.sub("", buf.getvalue())
    assert "level ok -> warn  free=39000" in text
    assert "LW1 err t=31 where=process exc=MemoryError" in text
    assert "free heap" in text and "39,000 B of 131,072 B" in text
    assert "dropped 1" in text and "level changes 1" in text


def test_summary_rows_and_rendering():
    result = Summary.of(parse_bytes(RUN)[0])
    rows = dict(summary_rows(result))
    assert rows["chunks"] == "32" and rows["dropped"] == "1"
    assert rows["errors"] == "1 (1 err records, 1 MemoryError)"
    assert rows["low-water"] == "39,000 B (budget: warn 40,960 B, min 20,480 B, heap 131,072 B): warn"
    assert rows["gc pause"] == "median 20 us, p99 30 us, max 40 us (n=2)"
    assert rows["level changes"] == "1: ok->warn" and rows["end record"] == "yes"
    buf = io.StringIO()
    render_summary(result, console=Console(file=buf, force_terminal=True, width=120))
    text = ANSI.sub("", buf.getvalue())
    assert "low-water" in text and "39,000 B" in text and "summary" in text
    buf = io.StringIO()
    render_summary(result, console=Console(file=buf), plain=True, title="t")
    assert buf.getvalue().splitlines()[:2] == ["--- t", "board: unix (lowwater 0.1.0)"]


def test_sparkline_one_scale_and_budget_colours():
    from lowwater_tools.telemetry.live import sparkline

    t = sparkline([100, 150, 200, None, 100], 100, 200, warn=120, minimum=105)
    assert t.plain == "▁▄█ ▁"
    styles = [str(span.style) for span in t.spans]
    assert styles[0] == "bold red" and styles[1] == "green"  # 100 < min: critical; 150: ok


def test_live_history_cells_over_the_last_minutes():
    from lowwater_tools.telemetry.live import History

    now = [0.0]
    h = History(step=5, cells=4, clock=lambda: now[0])
    for t, free, lw in [(0, 900, 900), (1, 800, 800), (6, 950, 800), (16, 700, 700)]:
        now[0] = t
        h.add(free, lw)
    (flabel, free), (llabel, lw) = h.rows()
    assert (flabel, llabel) == ("free, history", "low-water, history")
    # cells: [0,5) lowest 800, [5,10) 950, [10,15) nothing, [15,20) 700 — one scale 700..950
    assert free.plain.startswith("▃█ ▁") and "700 B .. 950 B, last 0.3 min" in free.plain
    assert lw.plain == "▃▃ ▁"
    for t in range(20, 60, 5):  # only the last `cells` cells are kept
        now[0] = t
        h.add(500, 500)
    assert len(h.cells) == 4


def test_live_view_panel_has_units_and_history():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120, color_system="standard")
    recs, _ = parse_bytes(RUN)
    with LiveView(console=console) as view:
        for r in recs:
            view.add(r)
    text = ANSI.sub("", buf.getvalue())
    assert "units" in text and "board bytes (unix: 131,072 B heap)" in text
    assert "free, history" in text and "low-water, history" in text


def test_run_summary_end_record_no_stays_red_but_monitor_stop_is_neutral():
    result = Summary.of(parse_bytes(RUN.replace(b"LW1 end", b"LW1 xend"))[0])
    rows = dict(summary_rows(result))
    assert rows["end record"] == "no"
    rows = dict(summary_rows(result, stopped="after 10 s (time limit)"))
    assert rows["stopped"] == "after 10 s (time limit)"
    assert rows["end record"] == "no (the board was still running)"
    buf = io.StringIO()
    render_summary(result, console=Console(file=buf, force_terminal=True, width=120), stopped="after 10 s (time limit)")
    assert "\x1b[31m" not in buf.getvalue() and "\x1b[1;31m" not in buf.getvalue()
