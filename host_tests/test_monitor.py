"""`lowwater monitor`: serial telemetry over a pty or socket://, CSV/capture, reconnects, port errors."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

import pytest
import serial

from lowwater_tools.telemetry.monitor import explain_open_error
from lowwater_tools.paths import ROOT
from lowwater_tools.telemetry import parse_bytes, read_log

LOWWATER = [sys.executable, "-m", "lowwater_tools.cli"]

SESSION1 = (
    b"\x1b[0mets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n\xff\xfe\x00garbage\r\n"
    b"MicroPython v1.29.0 on 2026-01-01; ESP32 module with ESP32\r\n>>> "
    b"LW1 boot t=100 board=esp32 heap=110000 warn=28672 min=14336 chunk=256 count=8 ver=0.1.0\r\n"
    b"LW1 mem t=200 n=1 free=60000 alloc=50000 lw=60000 lvl=ok gc_us=900\r\n"
    b"LW1 stat t=200 chunks=256 processed=256 dropped=0 errors=0 smin=1 smax=9 smean=5\r\n"
    b"noise in between\r\n"
    b"LW1 lvl t=250 from=ok to=warn free=20000\r\n"
    b"LW1 mem t=300 n=2 free=20000 alloc=90000 lw=20000 lvl=warn gc_us=1100\r\n"
)
SESSION2 = (
    b"rst:0xc (SW_CPU_RESET)\r\n"
    b"LW1 boot t=50 board=esp32 heap=110000 warn=28672 min=14336 chunk=256 count=8 ver=0.1.0\r\n"
    b"LW1 mem t=150 n=1 free=61000 alloc=49000 lw=61000 lvl=ok gc_us=800\r\n"
    b"LW1 stat t=150 chunks=256 processed=250 dropped=6 errors=0 smin=1 smax=9 smean=5\r\n"
)


def kinds(data: bytes):
    return [r.kind for r in parse_bytes(data)[0]]


class Board:
    """A socket:// 'board' on 127.0.0.1: accepts one client, sends its bytes in small
    pieces (records split across sends), then closes at once or after `hold` s."""

    def __init__(self, port: int = 0):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(1)
        self.srv.settimeout(0.1)
        self.port = self.srv.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self.thread = None
        self.accepted = threading.Event()
        self._quit = threading.Event()

    def serve(self, data: bytes, piece: int = 7, hold: float = 0.0):
        def run():
            try:
                end = time.monotonic() + 10
                while not self._quit.is_set() and time.monotonic() < end:
                    try:
                        conn, _ = self.srv.accept()
                        break
                    except socket.timeout:
                        continue
                else:
                    return
                self.accepted.set()
                with conn:
                    for i in range(0, len(data), piece):
                        conn.sendall(data[i : i + piece])
                        time.sleep(0.001)
                    self._quit.wait(hold)
            except OSError:
                pass
            finally:
                self.srv.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self._quit.set()
        if self.thread:
            self.thread.join(timeout=15)
            assert not self.thread.is_alive()
        self.srv.close()


@pytest.fixture
def boards_():
    made = []

    def make(port=0):
        b = Board(port)
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def monitor(*args, timeout=30):
    return subprocess.run(
        [*LOWWATER, "monitor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
    )


def test_socket_monitor_for_a_duration_writes_csv_capture_and_summary(boards_, tmp_path):
    board = boards_().serve(SESSION1, hold=10)
    csv_path, cap = tmp_path / "m.csv", tmp_path / "m.bin"
    t0 = time.monotonic()
    p = monitor("--port", board.url, "--duration", 2, "--csv", csv_path, "--capture", cap)
    assert p.returncode == 0, p.stderr
    assert 1.8 < time.monotonic() - t0 < 20
    recs, _ = read_log(csv_path)
    assert [r.kind for r in recs] == kinds(SESSION1) == ["boot", "mem", "stat", "lvl", "mem"]
    assert recs[0].fields["board"] == "esp32" and recs[4].fields["gc_us"] == 1100
    assert all(r.host_time for r in recs)
    assert cap.read_bytes() == SESSION1  # nothing lost, noise included
    out = p.stdout.splitlines()
    assert [line for line in out if line.startswith("LW1 ")] == [r.line for r in parse_bytes(SESSION1)[0]]
    assert "low-water: 20,000 B (budget: warn 28,672 B, min 14,336 B, heap 110,000 B): warn" in out
    assert "level changes: 1: ok->warn" in out


def test_reconnects_when_the_port_closes_and_comes_back(boards_, tmp_path):
    first = boards_().serve(SESSION1)  # sends, then closes the line and the port
    port = first.port
    csv_path = tmp_path / "r.csv"
    proc = subprocess.Popen(
        [*LOWWATER, "monitor", "--port", first.url, "--duration", "3", "--csv", str(csv_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        first.thread.join(timeout=10)
        time.sleep(0.5)  # the port is gone for a while: refused connections, backoff
        boards_(port).serve(SESSION2, hold=10)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert "port lost" in err and "reconnected" in err
    recs, _ = read_log(csv_path)
    assert [r.kind for r in recs] == kinds(SESSION1) + kinds(SESSION2)
    assert [r.seq for r in recs] == list(range(len(recs)))
    assert "boots: 2 (the board reset)" in out
    assert "chunks: 512" in out and "dropped: 6" in out  # summed over both boots


def test_no_reconnect_stops_when_the_port_drops(boards_, tmp_path):
    board = boards_().serve(SESSION1)
    t0 = time.monotonic()
    p = monitor("--port", board.url, "--duration", 20, "--no-reconnect", "--csv", tmp_path / "n.csv")
    assert time.monotonic() - t0 < 15
    assert p.returncode == 1
    assert "port lost" in p.stderr and "--no-reconnect" in p.stderr and "Traceback" not in p.stderr
    assert [r.kind for r in read_log(tmp_path / "n.csv")[0]] == kinds(SESSION1)


def _wait_open(pid: int, path: str, timeout: float = 10) -> bool:
    """True once process pid has `path` open (Linux /proc)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
def test_pty_port_with_noise_and_split_records(tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)  # the board end: raw before any client connects
    name = os.ttyname(slave)
    csv_path = tmp_path / "p.csv"
    proc = subprocess.Popen(
        [*LOWWATER, "monitor", "--port", name, "--duration", "2", "--csv", str(csv_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert _wait_open(proc.pid, name)
        time.sleep(0.3)  # pyserial flushes the input once it has configured the port
        for i in range(0, len(SESSION1), 5):
            os.write(master, SESSION1[i : i + 5])
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert [r.kind for r in read_log(csv_path)[0]] == kinds(SESSION1)
    assert "records: 5 " in out


def test_ctrl_c_ends_with_the_summary(boards_):
    board = boards_().serve(SESSION1, hold=10)
    proc = subprocess.Popen(
        [*LOWWATER, "monitor", "--port", board.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert board.accepted.wait(10)
        time.sleep(0.5)  # the session is sent
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert "--- lowwater monitor: " + board.url in out and "end record: no" in out


@pytest.mark.parametrize(
    "port, hint",
    [
        ("/dev/lowwater-no-such-port", "no such port"),
        ("socket://127.0.0.1:{free}", "connection refused"),
        ("nosuchscheme://x", "cannot open"),
    ],
)
def test_port_that_cannot_be_opened_is_one_line(port, hint):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    free = s.getsockname()[1]
    s.close()
    p = monitor("--port", port.format(free=free), "--duration", 1)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowwater: cannot open ") and hint in lines[0], p.stderr
    assert p.stdout == ""


def test_busy_port_says_so():
    master, slave = os.openpty()
    name = os.ttyname(slave)
    holder = serial.Serial(name, exclusive=True)  # another program has the port
    try:
        p = monitor("--port", name, "--duration", 1)
    finally:
        holder.close()
        os.close(master)
        os.close(slave)
    assert p.returncode == 1
    assert (
        p.stderr.strip() == f"lowwater: cannot open {name}: port busy: is another program using it? "
        "(mpremote, a serial terminal, another monitor)"
    )


def test_open_errors_are_translated():
    assert "permission denied" in explain_open_error(serial.SerialException(errno.EACCES, "x"))
    assert "port busy" in explain_open_error(serial.SerialException(errno.EBUSY, "x"))
    assert "no such port" in explain_open_error(serial.SerialException(errno.ENOENT, "x"))


def test_plot_option(boards_, tmp_path):
    out = tmp_path / "p.png"
    try:
        import lowwater_tools.telemetry.plot  # noqa: F401  (written by another helper)

        have_plot = True
    except ModuleNotFoundError:
        have_plot = False
    board = boards_().serve(SESSION1, hold=10)
    p = monitor("--port", board.url, "--duration", 1, "--plot", out)
    if have_plot:
        assert p.returncode == 0, p.stderr
        assert out.exists() and out.stat().st_size > 0
    else:
        assert p.returncode == 1
        assert p.stderr.strip() == "lowwater: plotting not available (lowwater_tools.telemetry.plot is missing)"


# ---------------------------------------------------------------- attach, then reset


class Repl(Board):
    """A socket:// board that behaves like a MicroPython REPL sitting at its prompt:
    Ctrl-C and Ctrl-B give `>>> `, Ctrl-D soft-reboots and runs `main` (SESSION1
    without the banner: the boot record comes only after the reset). Keeps what it
    received in .got."""

    def serve_repl(self, after_reset: bytes):
        self.got = b""

        def run():
            try:
                end = time.monotonic() + 15
                conn = None
                while conn is None and not self._quit.is_set() and time.monotonic() < end:
                    try:
                        conn, _ = self.srv.accept()
                    except socket.timeout:
                        continue
                if conn is None:
                    return
                self.accepted.set()
                conn.settimeout(0.1)
                with conn:
                    conn.sendall(b"LW1 mem t=9 n=7 free=1 alloc=1 lw=1 lvl=ok gc_us=1\r\n")  # before the reset
                    while not self._quit.is_set() and time.monotonic() < end:
                        try:
                            data = conn.recv(64)
                        except socket.timeout:
                            continue
                        if not data:
                            return
                        self.got += data
                        for c in data:
                            if c in (3, 2):
                                conn.sendall(b"\r\n>>> ")
                            elif c == 4:
                                conn.sendall(b"MPY: soft reboot\r\n" + after_reset)
            except OSError:
                pass
            finally:
                self.srv.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self


def test_reset_after_attaching_sees_the_boot_record(tmp_path):
    board = Repl()
    try:
        board.serve_repl(SESSION1[SESSION1.index(b"LW1 boot") :])
        p = monitor("--port", board.url, "--reset", "--duration", 2, "--csv", tmp_path / "r.csv")
    finally:
        board.stop()
    assert p.returncode == 0, p.stderr
    assert board.got.startswith(b"\r\x03\x03\r\x02") and board.got.count(b"\x04") == 1
    lines = p.stdout.splitlines()
    # the previous run's last record is kept in the CSV, not shown or summed
    assert lines[0].startswith("LW1 boot ") and "n=7" not in p.stdout
    assert [r.kind for r in read_log(tmp_path / "r.csv")[0]][:2] == ["mem", "boot"]
    assert "records: 5 boot=1 lvl=1 mem=2 stat=1" in lines
    assert "boot record: yes" in lines
    assert "stopped: after 2 s (time limit)" in lines
    assert "end record: no (the board was still running)" in lines
    assert "units: board bytes (esp32: 110,000 B heap)" in lines


def test_without_reset_a_missed_boot_is_said_plainly(boards_):
    board = boards_().serve(SESSION1[SESSION1.index(b"LW1 mem") :], hold=10)
    p = monitor("--port", board.url, "--duration", 1.5, "--board", "esp32")
    assert p.returncode == 0, p.stderr
    assert "boot record: no (the board was running before the monitor attached)" in p.stdout
    # no boot record: the profile's budget, said to be board bytes from the profile
    assert "budget from the profile (no boot record seen)" in p.stdout


def test_unix_port_scales_the_profile_budget_when_the_boot_was_missed(boards_):
    board = boards_().serve(SESSION1[SESSION1.index(b"LW1 mem") :], hold=10)
    p = monitor("--port", board.url, "--duration", 1.5, "--board", "esp32", "--unix-port")
    assert p.returncode == 0, p.stderr
    # esp32's 110,000/28,672/14,336 board bytes as the 64-bit unix port's bytes (x1.4)
    assert "(budget: warn 40,140 B, min 20,070 B, heap 154,000 B)" in p.stdout
    assert (
        "units: unix-port heap bytes, not board bytes (esp32: 110,000 B board heap = 154,000 B here, x1.40)" in p.stdout
    )


ANSI = __import__("re").compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_make_run_on_the_virtual_board_prints_boot_and_ends_neutral():
    """`make run` as a user sees it (on a terminal): the boot record, the units,
    a summary without red, exit 0. Bounded: 3 s of monitoring, 150 s in all."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 140, 0, 0))
    proc = subprocess.Popen(
        [*LOWWATER, "vboard", "--board", "esp32", "--deploy", "--mpy", "--monitor", "--duration", "3"],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "140"},
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    try:
        end = time.monotonic() + 150
        while time.monotonic() < end:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        os.close(master)
    raw = out.decode("utf-8", "replace")
    text = ANSI.sub("", raw)
    assert proc.returncode == 0, text[-3000:]
    assert "LW1 boot t=" in text and "board=esp32 heap=154000" in text  # the boot record, printed
    summary = text[text.index("lowwater monitor: /dev/") :]
    assert "boot record" in summary and "yes" in summary
    assert "stopped" in summary and "after 3 s (time limit)" in summary
    assert "still running" in summary
    assert "unix-port heap bytes" in summary and "154,000 B" in summary
    assert "boots 1" in text  # the live panel counted the boot
    tail = raw[raw.index("lowwater monitor: /dev/") :]
    assert "\x1b[31m" not in tail and "\x1b[1;31m" not in tail  # no red in the summary


def test_reset_without_a_prompt_gives_up_and_shows_the_records(boards_):
    board = boards_().serve(SESSION1[SESSION1.index(b"LW1 mem") :], hold=10)  # no REPL: never a `>>> `
    p = monitor("--port", board.url, "--reset", "--reset-timeout", 0.5, "--duration", 2)
    assert p.returncode == 0, p.stderr
    assert "no REPL prompt within 0.5 s: the board was not reset" in p.stderr
    assert "records: 4 lvl=1 mem=2 stat=1" in p.stdout  # held while waiting, then shown
    assert "boot record: no" in p.stdout
