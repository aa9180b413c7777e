"""The virtual board, driven by the real mpremote and ampy (every call bounded by a timeout)."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from clients import mpr
from lowwater_tools import boards, launch
from lowwater_tools.errors import UserError
from lowwater_tools.paths import tool_exe
from lowwater_tools.vboard import HARD_RESET_LINE, SOFT_REBOOT, WDT_RESET_LINE, VirtualBoard, block_count

pytestmark = pytest.mark.timeout(120)

T = 30  # s: bound for one tool call


def ampy(vb, *args, timeout=T) -> str:
    r = subprocess.run(
        [tool_exe("ampy"), "--port", vb.port, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def hard_reset(vb):
    """machine.reset(): the only way to stop a started watchdog (it survives soft resets)."""
    hard = vb.hard_reset_count
    mpr(vb, "exec", "--no-follow", "import machine; machine.reset()")
    vb.wait(lambda b: b.hard_reset_count > hard and b.booted)


def put(vb, name, text):
    mpr(vb, "exec", f"with open({name!r}, 'w') as f:\n f.write({text!r})")


class Raw:
    """A bare serial connection to the board for REPL bytes (Ctrl-C, Ctrl-D)."""

    def __init__(self, vb):
        self.s = serial.Serial(vb.port, timeout=0.05)
        self.s.reset_input_buffer()
        self.buf = b""

    def send(self, data: bytes):
        self.s.write(data)

    def until(self, ending: bytes, timeout=10.0) -> bytes:
        """Output up to and including `ending`; what follows stays for the next call."""
        deadline = time.monotonic() + timeout
        while ending not in self.buf:
            assert time.monotonic() < deadline, f"no {ending!r} within {timeout}s; got {self.buf[-300:]!r}"
            self.buf += self.s.read(max(1, self.s.in_waiting))
        i = self.buf.index(ending) + len(ending)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def close(self):
        self.s.close()


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    img = tmp_path_factory.mktemp("vboard") / "unix.lfs"
    with VirtualBoard(board="unix", image=img, socket="127.0.0.1:0", timeout=15) as board:
        yield board


def test_exec_and_eval(vb):
    assert mpr(vb, "exec", "print('hello', 6 * 7)") == "hello 42\n"
    assert mpr(vb, "eval", "1 + 2") == "3\n"


def test_board_shape_image_root_and_heap(vb):
    prof = boards.load("unix")
    out = mpr(
        vb,
        "exec",
        "import sys, os, gc\n"
        "print(sys.path, os.getcwd(), os.statvfs('/')[:3])\n"
        "try:\n open('/etc/passwd')\nexcept OSError as e:\n print('host', e.errno)\n"
        "print('tmp' in os.listdir('/'), sys.argv)\n"
        "gc.collect(); print('free', gc.mem_free())",
    )
    lines = out.splitlines()
    assert lines[0] == f"['', '.frozen', '/lib'] / (4096, 4096, {block_count(prof['fs_size'])})"
    assert lines[1] == "host 2"  # / is the image: host paths are not there
    assert lines[2] == "False []"
    # User code sees the heap of a plain unix port with the profile's heap (BOOT_RESERVE).
    plain = subprocess.run(
        launch.command(["-c", "import gc; gc.collect(); print(gc.mem_free())"], boards.unix_heap(prof)),
        capture_output=True,
        text=True,
        timeout=T,
        env={"MICROPYPATH": ".frozen"},
    )
    free_vb = int(lines[3].split()[1])
    assert abs(free_vb - int(plain.stdout)) < 1536, (free_vb, plain.stdout)


def test_fs_commands(vb, tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("alpha\n")
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "x.py").write_text("X = 1\n")
    (tmp_path / "tree" / "sub" / "y.py").write_text("Y = 2\n")
    mpr(vb, "fs", "mkdir", ":fsdir")
    mpr(vb, "fs", "cp", str(src), ":fsdir/a.txt")
    assert "           6 a.txt" in mpr(vb, "fs", "ls", ":fsdir")
    assert mpr(vb, "fs", "cat", ":fsdir/a.txt") == "alpha\n"
    assert mpr(vb, "fs", "sha256sum", ":fsdir/a.txt").split()[-1] == hashlib.sha256(b"alpha\n").hexdigest()
    mpr(vb, "fs", "cp", "-r", str(tmp_path / "tree"), ":fsdir/")
    tree = mpr(vb, "fs", "tree", ":fsdir")
    for name in ("a.txt", "tree", "sub", "x.py", "y.py"):
        assert name in tree
    assert (
        mpr(vb, "exec", "import sys; sys.path.append('/fsdir/tree'); import x, sub.y as y; print(x.X + y.Y)") == "3\n"
    )
    mpr(vb, "fs", "rm", "-r", ":fsdir")
    assert "fsdir" not in mpr(vb, "fs", "ls", ":")


def test_100k_binary_round_trip(vb, tmp_path):
    data = random.Random(5).randbytes(100 * 1024)
    up = tmp_path / "up.bin"
    down = tmp_path / "down.bin"
    up.write_bytes(data)
    mpr(vb, "fs", "cp", str(up), ":r.bin", timeout=60)
    mpr(vb, "fs", "cp", ":r.bin", str(down), timeout=60)
    assert down.read_bytes() == data
    assert mpr(vb, "fs", "sha256sum", ":r.bin").split()[-1] == hashlib.sha256(data).hexdigest()
    mpr(vb, "fs", "rm", ":r.bin")


def test_soft_reset_clears_state_and_keeps_files(vb):
    mpr(vb, "fs", "touch", ":keep.txt")
    n = vb.soft_reset_count
    out = mpr(vb, "exec", "lw_x = 1", "+", "soft-reset", "+", "exec", "print('lw_x' in dir())")
    assert out == "False\n"
    assert vb.soft_reset_count >= n + 2  # mpremote's own reset on connect, then soft-reset
    assert "keep.txt" in mpr(vb, "fs", "ls", ":")
    mpr(vb, "fs", "rm", ":keep.txt")


def test_friendly_ctrl_d_runs_boot_and_main(vb):
    put(vb, "boot.py", "print('in boot')\n")
    put(vb, "main.py", "print('in main')\n")
    raw = Raw(vb)
    try:
        raw.send(b"\r\x03\x02")
        raw.until(b'Type "help()" for more information.\r\n>>> ')
        raw.send(b"\x04")
        out = raw.until(b"in main")
        assert out.index(SOFT_REBOOT) < out.index(b"in boot")
        raw.until(b">>> ")
        raw.send(b"\x01\x04")  # in the raw REPL a soft reset runs boot.py only, as on a board
        raw.until(SOFT_REBOOT)
        out = raw.until(b"raw REPL; CTRL-B to exit\r\n>")
        assert b"in boot" in out and b"in main" not in out
        raw.send(b"\x02")
    finally:
        raw.close()
    mpr(vb, "fs", "rm", ":boot.py", "+", "fs", "rm", ":main.py")


def test_ctrl_c_interrupts_running_code_not_the_prompt(vb):
    raw = Raw(vb)
    try:
        raw.send(b"\r\x03\r\x01")
        raw.until(b"raw REPL; CTRL-B to exit\r\n>")
        raw.send(b"n = 0\nwhile True:\n n += 1\n\x04")
        raw.until(b"OK")
        raw.send(b"\x03")
        assert b"KeyboardInterrupt" in raw.until(b"\x04>")
        raw.send(b"print(n > 0)\x04")
        assert b"True" in raw.until(b"\x04>")
        raw.send(b"\x02")
        raw.until(b">>> ")
        raw.send(b"\x03\x03\x03")  # at a prompt: bytes for the REPL, never a SIGINT that kills it
        raw.until(b">>> ")
    finally:
        raw.close()
    assert mpr(vb, "eval", "7") == "7\n"


def test_ctrl_c_stops_an_endless_main_py(vb):
    put(vb, "main.py", "n = 0\nwhile True:\n    n += 1\n")
    hard = vb.hard_reset_count
    mpr(vb, "reset")
    vb.wait(lambda b: b.hard_reset_count > hard and b.booted)
    assert HARD_RESET_LINE in vb.transcript()
    # `resume`: no soft reset, so main.py's variables are still there once it is interrupted
    assert mpr(vb, "resume", "exec", "print(n > 0)") == "True\n"
    mpr(vb, "fs", "rm", ":main.py")


def test_ampy_put_get_ls_run_mkdir_rm(vb, tmp_path):
    f = tmp_path / "small.txt"
    f.write_text("small file\n" * 8)
    script = tmp_path / "s.py"
    script.write_text("import os\nprint(sorted(os.listdir('/adir')))\n")
    ampy(vb, "mkdir", "/adir")
    ampy(vb, "put", str(f), "/adir/small.txt")
    assert ampy(vb, "get", "/adir/small.txt").replace("\r\n", "\n").rstrip("\n") == f.read_text().rstrip("\n")
    assert "/adir/small.txt" in ampy(vb, "ls", "/adir")
    assert "['small.txt']" in ampy(vb, "run", str(script))
    ampy(vb, "rm", "/adir/small.txt")
    ampy(vb, "rmdir", "/adir")
    assert "/adir" not in ampy(vb, "ls")


def test_writing_past_the_image_is_enospc_on_the_board(vb):
    out = mpr(
        vb,
        "exec",
        "import os\nf = open('fill.bin', 'wb')\nb = bytes(4096)\n"
        "try:\n while True:\n  f.write(b)\nexcept OSError as e:\n print('errno', e.errno)\n"
        "f.close()\nos.remove('fill.bin')\nprint(os.listdir('/').count('fill.bin'))",
        timeout=60,
    )
    assert out.splitlines() == ["errno 28", "0"]


def test_machine_stand_ins(vb):
    out = mpr(
        vb,
        "exec",
        "import machine, micropython\n"
        "p = machine.Pin(2, machine.Pin.OUT); p.on(); a = p.value(); p.off()\n"
        "q = machine.Pin(0, machine.Pin.IN, machine.Pin.PULL_UP)\n"
        "adc = machine.ADC(machine.Pin(34))\n"
        "vs = [adc.read_u16() for _ in range(200)]\n"
        "w = machine.WDT(timeout=60000)\n"
        "def hot(adc, w, p):\n"
        " t = micropython.mem_total()\n"
        " micropython.heap_lock()\n"
        " for i in range(50):\n"
        "  adc.read_u16(); w.feed(); p.value()\n"
        " micropython.heap_unlock()\n"
        " return micropython.mem_total() - t\n"
        "hot(adc, w, p)\n"
        "print(a, p.value(), q.value(), min(vs) >= 0, max(vs) <= 65535, len(set(vs)) > 10)\n"
        "print(type(machine.unique_id()), machine.freq() > 0, machine.reset_cause() in (1, 2, 3, 5))\n"
        "print(hot(adc, w, p))",
    )
    hard_reset(vb)  # stop the watchdog
    lines = out.splitlines()
    assert lines[0] == "1 0 1 True True True"
    assert lines[1] == "<class 'bytes'> True True"
    assert lines[2] == "0"  # read_u16, feed, value: no allocation (heap_lock and mem_total)


def test_watchdog_resets_an_unfed_board_but_not_a_fed_one(vb):
    n = vb.wdt_reset_count
    mpr(
        vb,
        "exec",
        # fed for 1.5 timeouts; a timeout of 2 s leaves room for a loaded host's stalls
        "import machine, time\nw = machine.WDT(timeout=2000)\n"
        "for i in range(150):\n w.feed(); time.sleep_ms(20)\nprint('fed')",
    )
    assert vb.wdt_reset_count == n
    # Now nobody feeds it: it resets the board 2 s after the last feed. (A hard
    # reset here would race that reset on a loaded host: wait for it instead.)
    vb.wait(lambda b: b.wdt_reset_count > n and b.booted, timeout=60)
    assert vb.wdt_reset_count == n + 1
    assert WDT_RESET_LINE + " (not fed for 2000 ms)" in vb.transcript()
    mpr(vb, "resume", "exec", "import machine\nmachine.WDT(timeout=300)\nprint('armed')")
    vb.wait(lambda b: b.wdt_reset_count > n + 1 and b.booted, timeout=60)
    assert vb.wdt_reset_count == n + 2
    assert WDT_RESET_LINE + " (not fed for 300 ms)" in vb.transcript()
    assert mpr(vb, "resume", "exec", "import machine; print(machine.reset_cause() == machine.WDT_RESET)") == "True\n"


def test_machine_reset_and_soft_reset(vb):
    hard = vb.hard_reset_count
    mpr(vb, "exec", "--no-follow", "import machine; machine.reset()")
    vb.wait(lambda b: b.hard_reset_count > hard and b.booted)
    assert vb.hard_reset_count == hard + 1
    assert mpr(vb, "resume", "exec", "import machine; print(machine.reset_cause())") == "2\n"
    soft = vb.soft_reset_count
    mpr(vb, "resume", "exec", "--no-follow", "import machine; machine.soft_reset()")
    vb.wait(lambda b: b.soft_reset_count > soft and b.booted)
    assert mpr(vb, "resume", "exec", "import machine; print(machine.reset_cause())") == "5\n"


def test_mpremote_mount(vb, tmp_path):
    (tmp_path / "hello_mount.py").write_text("print('hi from the host')\n")
    out = mpr(vb, "mount", str(tmp_path), "exec", "import hello_mount, os; print(os.getcwd())")
    assert "hi from the host\n/remote\n" in out


def test_socket(vb):
    assert vb.socket_url.startswith("socket://127.0.0.1:")
    assert mpr(vb.socket_url, "eval", "40 + 2") == "42\n"


def test_image_persists_across_runs_and_reads_back_with_littlefs(tmp_path):
    from littlefs import LittleFS, UserContext

    img = tmp_path / "board.lfs"
    fs_size = boards.load("esp32")["fs_size"]
    with VirtualBoard(board="esp32", image=img, timeout=15) as b1:
        mpr(b1, "exec", "import os; os.mkdir('d')")
        put(b1, "d/x.txt", "persist")
        assert mpr(b1, "exec", "import machine; print(machine.freq())") == "240000000\n"
    assert img.stat().st_size == fs_size
    fs = LittleFS(
        context=UserContext(buffer=bytearray(img.read_bytes())),
        block_size=4096,
        block_count=fs_size // 4096,
        mount=False,
    )
    fs.mount()
    with fs.open("d/x.txt", "r") as f:
        assert f.read() == "persist"
    with VirtualBoard(board="esp32", image=img, timeout=15) as b2:
        assert mpr(b2, "fs", "cat", ":d/x.txt") == "persist"
    with VirtualBoard(board="esp32", image=img, fresh=True, timeout=15) as b3:
        assert mpr(b3, "exec", "import os; print(os.listdir('/'))") == "[]\n"


def test_no_process_or_temp_image_left_behind():
    with VirtualBoard(timeout=15) as b:
        pid, image = b.pid, Path(b.image_path)
        assert image.exists()
    assert not image.exists()
    assert not Path(f"/proc/{pid}").exists()


def test_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown board"):
        VirtualBoard(board="nope")
    bad = tmp_path / "bad.lfs"
    bad.write_bytes(b"\xff" * 4096)
    with pytest.raises(UserError, match="--fresh"):
        VirtualBoard(image=bad).start()


def test_cli_vboard_foreground_then_sigterm(tmp_path):
    img = tmp_path / "cli.lfs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lowwater_tools.cli", "vboard", "--image", str(img)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + T
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "lowwater vboard ended early"
            if line.startswith("port: "):
                port = line.split()[1]
        assert port
        assert mpr(port, "eval", "6 * 7") == "42\n"
        children = [
            pid for task in Path(f"/proc/{proc.pid}/task").iterdir() for pid in (task / "children").read_text().split()
        ]
        assert children
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(T) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert img.exists()  # --image is kept
