"""The relay: a MicroPython unix-port process made to behave like a board on a pty.

    client (mpremote, ampy, monitor)          relay thread                 the board
    /dev/pts/N  or socket://host:port  <-->  pty master / TCP  <-->  pipes: micropython -i vboot.py

The unix port already has the boards' raw REPL and raw-paste (shared/runtime/pyexec.c).
The relay adds what it lacks (docs/vboard.md):
- Ctrl-C: the unix port only reacts to SIGINT. A \\x03 from the client becomes SIGINT
  when the child has its SIGINT handler installed (/proc/PID/status SigCgt: MicroPython
  installs it only while code runs, and kbd_intr(-1) removes it), else it is passed on
  as a byte (at a prompt the REPL reads it; a SIGINT there would kill the process).
- Soft reset: Ctrl-D at a prompt ends the unix port; the relay prints `MPY: soft reboot`
  and starts a new interpreter in the same REPL mode (raw: it sends \\x01 and drops the
  friendly banner).
- Hard reset, watchdog: machine.reset() / WDT are lines on a control pipe (fd passed to
  the child); the relay kills the process group and boots again. A started watchdog
  keeps running across a soft reset, as on esp32/rp2.
- Line endings: a board's REPL sends text with \r\n (mp_hal_stdout_tx_strn_cooked);
  the unix port on a pipe sends \n. The relay turns a lone \n into \r\n, except in
  the bytes the board sends through sys.stdout.buffer (raw on a board too: mpremote
  mount's protocol), which device/vb_sys.py frames with RAW_PREFIX.
Client input reaches the child only after the child reports "boot" (the littlefs image
is mounted as /), so no client code ever runs against the host filesystem.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import select
import shutil
import signal
import socket as _socket
import subprocess
import tempfile
import threading
import time
import tty
from pathlib import Path

from .. import boards, launch
from ..errors import UserError
from . import image as _image

DEVICE_DIR = Path(__file__).resolve().parent / "device"
VBOOT = DEVICE_DIR / "vboot.py"

SOFT_REBOOT = b"MPY: soft reboot\r\n"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_MARK = b'Type "help()" for more information.\r\n'
SENTINEL = b"\x1b]lowwater-vboard\x07"
# Before bytes sys.stdout.buffer wrote: RAW_PREFIX, 8 hex digits (their count), BEL.
RAW_PREFIX = b"\x1b]lowwater-raw;"
_RAW_HEADER = len(RAW_PREFIX) + 9
HARD_RESET_LINE = "vboard: hard reset"
WDT_RESET_LINE = "vboard: watchdog reset"  # followed by " (not fed for N ms)"

_PENDING_MAX = 256 * 1024  # stop reading a source while this much waits for a slow sink
_DROP_AFTER = 1.0  # s without progress on the pty: nobody reads, drop the output
_SIGINT_GAP = 0.25  # s: a second SIGINT this soon could kill the unix port (it exits on ^C^C)
# The heap the stand-ins (machine module, block device, littlefs) take on the unix
# port; on a board they live in flash. Added to the profile's heap so that user
# code sees the same free heap as on `micropython -X heapsize=<profile heap>`
# (test_vboard.py checks it to within 1.5 KiB).
BOOT_RESERVE = 16384
_INTR_WAIT = 0.5  # s: a Ctrl-C waits at most this long for code to start (or a prompt)
_HOLD_MAX = 0.02  # s: output that looks like the start of a raw frame header waits at most this long

_live: set = set()


def _close_all():
    for b in list(_live):
        b.close()


atexit.register(_close_all)


def _sigint_caught(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError):
        pass
    return False


# read(2)'s number, to see in /proc/PID/syscall that the interpreter waits on stdin
_READ_NR = {"x86_64": 0, "aarch64": 63, "riscv64": 63, "i686": 3, "i386": 3, "armv7l": 3}.get(os.uname().machine)


def _reads_stdin(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == str(_READ_NR) and int(fields[1], 16) == 0


def _die_with_parent():
    # In the child before exec: SIGKILL when the relay goes away, even by SIGKILL
    # (the child has its own session, so a terminal's signals never reach it).
    if _prctl is not None:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


try:
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _nonblock(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class _Child:
    """One interpreter process: a board between two resets."""

    def __init__(self, proc, stdin, stdout, ctl, mode, cause):
        self.proc = proc
        self.stdin = stdin
        self.stdout = stdout
        self.ctl = ctl
        self.ctl_buf = b""
        self.mode = mode
        self.cause = cause
        self.booted = False
        self.failed = False
        self.started = time.monotonic()
        # raw-mode restart: pass output until SENTINEL, then drop until RAW_BANNER
        self.filter = "sentinel" if mode == "raw" else None
        self.scan = b""
        # line endings (_cook): bytes left of a raw frame, a held partial frame
        # header, whether the last text byte was \r
        self.raw_left = 0
        self.hold = b""
        self.hold_since = 0.0
        self.cr = False


def _cook(c: _Child, data: bytes) -> bytes:
    """The board's output as a board's REPL sends it: text with \\r\\n line ends,
    sys.stdout.buffer frames (RAW_PREFIX + 8 hex digits + BEL, then that many bytes)
    unchanged and without their header. State between reads lives in `c`."""
    buf = c.hold + data if c.hold else data
    c.hold = b""
    out = bytearray()
    i, n = 0, len(buf)
    while i < n:
        if c.raw_left:
            k = min(c.raw_left, n - i)
            out += buf[i : i + k]
            c.raw_left -= k
            i += k
            c.cr = False
            continue
        j = buf.find(b"\x1b", i)
        out += _crlf(c, buf[i : n if j < 0 else j])
        if j < 0:
            break
        head = buf[j : j + _RAW_HEADER]
        if len(head) < _RAW_HEADER and RAW_PREFIX.startswith(head[: len(RAW_PREFIX)]):
            # Maybe a header cut by the read: wait for the rest (the board writes a
            # header with one write, so the rest is already in the pipe; text that
            # merely ends like one goes out after _HOLD_MAX).
            c.hold = bytes(head)
            c.hold_since = time.monotonic()
            break
        if head.startswith(RAW_PREFIX) and head[-1:] == b"\x07":
            try:
                c.raw_left = int(head[len(RAW_PREFIX) : -1], 16)
                i = j + _RAW_HEADER
                continue
            except ValueError:
                pass
        out += b"\x1b"
        c.cr = False
        i = j + 1
    return bytes(out)


def _crlf(c: _Child, text: bytes) -> bytes:
    # A lone \n becomes \r\n; a \r\n the port already sends (pyexec's own lines) stays.
    if not text:
        return b""
    lead = b""
    if c.cr and text[:1] == b"\n":
        lead, text = b"\n", text[1:]
    c.cr = text[-1:] == b"\r" if text else False
    return lead + text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _prefix_tail(buf: bytes, mark: bytes) -> int:
    """The length of the longest end of buf that is a start of mark (shorter than mark)."""
    for k in range(min(len(mark) - 1, len(buf)), 0, -1):
        if buf.endswith(mark[:k]):
            return k
    return 0


class VirtualBoard:
    """A board profile's MicroPython on a pty, its flash a littlefs image.

        with VirtualBoard(board="unix") as vb:
            subprocess.run(["mpremote", "connect", vb.port, "exec", "print(1)"], timeout=10)

    image: image file path (kept; created if missing) or None for a temporary one;
    socket: "HOST:PORT" to also serve the board over TCP (PORT 0 picks one);
    timeout: bound for every wait (start, reboot, shutdown)."""

    def __init__(
        self,
        board: str = boards.DEFAULT_BOARD,
        image=None,
        socket: str | None = None,
        timeout: float = 10.0,
        fresh: bool = False,
        watchdog: bool = True,
    ):
        # watchdog=False: machine.WDT is accepted and fed but never resets the board.
        # For tests of other things (deploying to a board whose firmware armed its
        # watchdog): a real board would reset mid-command, which those tests are not about.
        self.watchdog = watchdog
        self.profile = boards.load(board)
        self.board = self.profile["name"]
        self.heap = boards.unix_heap(self.profile)  # what user code gets (see BOOT_RESERVE)
        self.fs_size = self.profile["fs_size"]
        self.timeout = timeout
        self._socket_spec = socket
        self._tmpdir = None
        self.image_path = None if image is None else str(Path(image).resolve())
        self._fresh = fresh
        self.port: str | None = None
        self.socket_url: str | None = None
        self.soft_reset_count = 0
        self.hard_reset_count = 0
        self.wdt_reset_count = 0
        self.boot_count = 0
        self.error: str | None = None
        self._child: _Child | None = None
        self._master = self._slave = None
        self._listen = self._conn = None
        self._out_pty = bytearray()
        self._out_sock = bytearray()
        self._in_child = bytearray()
        self._held = bytearray()  # client bytes behind an undecided Ctrl-C
        self._held_since = None
        self._pty_stall = None
        self._tail = b""
        self._log = bytearray()  # the last 64 KiB the board printed (for errors and tests)
        self._last_sigint = 0.0
        self._wdt_ms = 0
        self._wdt_deadline = None
        self.rtc_offset = 0  # s: the RTC set by machine.RTC().datetime(t), kept across resets
        self._cond = threading.Condition()
        self._stop = False
        self._thread = None
        self._wake_r = self._wake_w = None
        self._closed = False

    # ---- life cycle -------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self) -> "VirtualBoard":
        _live.add(self)
        try:
            self._wake_r, self._wake_w = os.pipe()
            _nonblock(self._wake_r)
            _nonblock(self._wake_w)
            if self.image_path is None:
                self._tmpdir = tempfile.mkdtemp(prefix="lowwater-vboard-")
                self.image_path = str(Path(self._tmpdir) / f"{self.board}.lfs")
            _image.ensure(self.image_path, self.fs_size, fresh=self._fresh)
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)  # the board end stays open and raw before any client comes
            _nonblock(self._master)
            self.port = os.ttyname(self._slave)
            if self._socket_spec:
                self._open_socket(self._socket_spec)
            self._spawn("friendly", "power")
            self._thread = threading.Thread(target=self._loop, name="vboard-relay", daemon=True)
            self._thread.start()
            self.wait_booted(1)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the relay, kill the interpreter's process group, remove a temporary image."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.timeout)
        if self._child is not None:
            self._kill_child(self._child)
            self._child = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._wake_r = self._wake_w = None
        for s in (self._conn, self._listen):
            if s is not None:
                s.close()
        self._conn = self._listen = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        _live.discard(self)
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return not self._closed and self.error is None and self._thread is not None and self._thread.is_alive()

    @property
    def booted(self) -> bool:
        """The current interpreter has mounted the image (is past boot, not resetting)."""
        c = self._child
        return c is not None and c.booted

    def wait_booted(self, count: int, timeout: float | None = None) -> None:
        """Wait until the board has booted `count` times in all (its image mounted)."""
        self.wait(lambda b: b.boot_count >= count, timeout)

    def wait(self, predicate, timeout: float | None = None) -> None:
        """Wait until predicate(board) is true, e.g. lambda b: b.wdt_reset_count > 0 and b.booted.
        Re-checked at every boot and reset; UserError after `timeout` (default: the board's)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._cond:
            while not predicate(self):
                if self.error:
                    raise UserError(f"virtual board failed: {self.error}")
                if self._closed:
                    raise UserError("virtual board closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError(
                        f"virtual board: still waiting after {self.timeout if timeout is None else timeout:g} s; "
                        "it printed:\n" + self.transcript()[-2000:]
                    )
                self._cond.wait(left)

    def transcript(self) -> str:
        """The last 64 KiB the board printed."""
        return bytes(self._log).decode("utf-8", "replace")

    @property
    def pid(self) -> int | None:
        c = self._child
        return c.proc.pid if c else None

    # ---- the interpreter --------------------------------------------------

    def _spawn(self, mode: str, cause: str) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        argv = launch.command(
            [
                "-i",
                str(VBOOT),
                str(self.image_path),
                str(_image.block_count(self.fs_size)),
                mode,
                cause,
                str(ctl_w),
                self.board,
                str(self.profile.get("cpu_hz", 100_000_000)),
                str(self.rtc_offset),
            ],
            self.heap + BOOT_RESERVE,
        )
        env = launch.env(lib=None, base={})  # a board has no environment (no LOWWATER_BOARD, no HOME)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=in_r,
                stdout=out_w,
                stderr=out_w,
                pass_fds=(ctl_w,),
                start_new_session=True,
                env=env,
                cwd=str(DEVICE_DIR),
                preexec_fn=_die_with_parent,
            )
        finally:
            for fd in (in_r, out_w, ctl_w):
                os.close(fd)
        for fd in (in_w, out_r, ctl_r):
            _nonblock(fd)
        self._child = _Child(proc, in_w, out_r, ctl_r, mode, cause)
        if cause != "soft":  # a started watchdog survives a soft reset only
            self._wdt_ms = 0
            self._wdt_deadline = None
        if mode == "raw":
            self._in_child[:0] = b"\x01"  # friendly REPL -> raw REPL, before anything else

    def _kill_child(self, c: _Child) -> None:
        try:
            os.killpg(c.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            c.proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            pass
        for fd in (c.stdin, c.stdout, c.ctl):
            try:
                os.close(fd)
            except OSError:
                pass

    def _reset(self, cause: str, line: str | None = None) -> None:
        """The board resets: end this interpreter and boot a new one."""
        c = self._child
        self._drain(c)
        self._child = None
        self._kill_child(c)
        if self._stop:
            return
        if not c.booted and cause == "soft":
            # It ended by itself while booting: the boot is broken (a watchdog that
            # runs out while the board boots resets it, as a board's would: below).
            self._fail(f"the interpreter ended before it mounted the image (exit {c.proc.returncode})")
            return
        # Input the dead interpreter never read is lost, as on a board that resets.
        self._in_child.clear()
        if cause == "soft":
            self.soft_reset_count += 1
            if c.proc.returncode not in (0, -signal.SIGKILL):
                self._emit(f"vboard: interpreter exited with status {c.proc.returncode}\r\n".encode())
            self._emit(SOFT_REBOOT)
            mode = c.mode
        else:
            if cause == "wdt":
                self.wdt_reset_count += 1
            else:
                self.hard_reset_count += 1
            self._emit(b"\r\n" + (line or HARD_RESET_LINE).encode() + b"\r\n")
            mode = "friendly"
        self._spawn(mode, cause)
        with self._cond:
            self._cond.notify_all()

    def _drain(self, c: _Child) -> None:
        # What the interpreter printed before it reset still reaches the client.
        for _ in range(64):
            try:
                data = os.read(c.stdout, 65536)
            except OSError:
                break
            if not data:
                break
            self._from_board(c, data)
        if c.hold:  # an unfinished frame header: it was text after all
            self._release_hold(c)

    def _fail(self, msg: str) -> None:
        self.error = msg
        self._emit(f"\r\nvboard: {msg}\r\n".encode())
        self._stop = True
        with self._cond:
            self._cond.notify_all()

    # ---- the relay loop ---------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (OSError, TypeError):
            pass

    def _loop(self) -> None:
        try:
            while not self._stop:
                self._step()
        except Exception as e:  # a relay bug must not leave a silent, hung board
            self._fail(f"relay error: {e!r}")
        finally:
            with self._cond:
                self._cond.notify_all()

    def _step(self) -> None:
        c = self._child
        rl = [self._wake_r]
        wl = []
        if c is not None:
            rl.append(c.ctl)
            if len(self._out_pty) < _PENDING_MAX and len(self._out_sock) < _PENDING_MAX:
                rl.append(c.stdout)
            if self._in_child and c.booted:
                wl.append(c.stdin)
        if len(self._in_child) + len(self._held) < _PENDING_MAX:
            rl.append(self._master)
            if self._conn is not None:
                rl.append(self._conn)
        if self._listen is not None:
            rl.append(self._listen)
        if self._out_pty:
            wl.append(self._master)
        if self._out_sock and self._conn is not None:
            wl.append(self._conn)
        now = time.monotonic()
        wait = 0.5
        if self._wdt_deadline is not None:
            wait = min(wait, max(0.0, self._wdt_deadline - now))
        if self._out_pty:
            wait = min(wait, 0.1)
        if c is not None and not c.booted:
            wait = min(wait, 0.1)
        if c is not None and c.hold:
            wait = min(wait, _HOLD_MAX)
        if self._held:
            wait = min(wait, 0.005)
        r, w, _ = select.select(rl, wl, [], wait)
        if self._stop:
            return
        if self._wake_r in r:
            try:
                os.read(self._wake_r, 4096)
            except OSError:
                pass
        if c is not None and c is self._child and c.ctl in r:
            self._read_ctl(c)
        if c is not None and c is self._child and c.stdout in r:
            try:
                data = os.read(c.stdout, 65536)
            except OSError as e:
                data = b"" if e.errno != errno.EAGAIN else None
            if data:
                self._from_board(c, data)
            elif data == b"":
                # The interpreter ended by itself (Ctrl-D at a prompt, SystemExit, a crash):
                # a board would soft-reset.
                self._reset("soft")
                return
        if self._master in r:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                data = b""
            if data:
                self._from_client(data)
        if self._listen is not None and self._listen in r:
            self._accept()
        if self._conn is not None and self._conn in r:
            try:
                data = self._conn.recv(65536)
            except OSError:
                data = b""
            if data:
                self._from_client(data)
            else:
                self._drop_conn()
        if self._held:
            self._release()
        self._flush(w)
        self._check_timers()

    def _read_ctl(self, c: _Child) -> None:
        try:
            data = os.read(c.ctl, 4096)
        except OSError:
            return
        c.ctl_buf += data
        while b"\n" in c.ctl_buf:
            line, c.ctl_buf = c.ctl_buf.split(b"\n", 1)
            word, _, arg = line.decode("ascii", "replace").partition(" ")
            if word == "boot":
                c.booted = True
                if self._wdt_deadline is not None:
                    # The unix port's start (a new process, vboot.py compiled, the
                    # stand-ins imported) is no board time: a board restarts in a few
                    # ms. Under load it took seconds, and a firmware's watchdog then
                    # reset the board in the middle of the next mpremote/ampy command.
                    self._wdt_deadline += time.monotonic() - c.started
                with self._cond:
                    self.boot_count += 1
                    self._cond.notify_all()
            elif word == "fail":
                c.failed = True
            elif word == "wdt" and self.watchdog:
                self._wdt_ms = int(arg)
                self._wdt_deadline = time.monotonic() + self._wdt_ms / 1000
            elif word == "feed":
                if self._wdt_ms:
                    self._wdt_deadline = time.monotonic() + self._wdt_ms / 1000
            elif word == "rtc":
                self.rtc_offset = int(arg)
            elif word == "reset":
                cause = arg if arg in ("soft", "hard", "deepsleep") else "hard"
                self._reset(cause)
                return

    def _check_timers(self) -> None:
        now = time.monotonic()
        c = self._child
        if c is None:
            return
        if self._wdt_deadline is not None and c.booted and now >= self._wdt_deadline:
            self._reset("wdt", f"{WDT_RESET_LINE} (not fed for {self._wdt_ms} ms)")
            return
        if not c.booted and (c.failed or now - c.started > self.timeout):
            self._kill_child(c)
            self._child = None
            self._fail("boot failed" if c.failed else f"no boot within {self.timeout:g} s")
            return
        if c.hold and now - c.hold_since >= _HOLD_MAX:
            self._release_hold(c)  # not a frame header after all: text

    # ---- data paths -------------------------------------------------------

    def _from_board(self, c: _Child, data: bytes) -> None:
        self._to_client(c, _cook(c, data))

    def _release_hold(self, c: _Child) -> None:
        hold, c.hold = c.hold, b""
        self._to_client(c, _crlf(c, hold))

    def _to_client(self, c: _Child, data: bytes) -> None:
        # Cooked output, held text included, takes one path: the raw-restart filter
        # and the REPL-mode tracking see every byte the client gets, in order.
        if not data:
            return
        if c.filter is not None:
            data = self._filter(c, data)
            if not data:
                return
        self._track_mode(c, data)
        self._emit(data)

    def _filter(self, c: _Child, data: bytes) -> bytes:
        buf = c.scan + data
        if c.filter == "sentinel":
            i = buf.find(SENTINEL)
            if i < 0:
                # keep back only an end that may be the start of SENTINEL
                keep = _prefix_tail(buf, SENTINEL)
                c.scan = buf[len(buf) - keep :]
                return buf[: len(buf) - keep]
            out = buf[:i]
            c.filter = "banner"
            c.scan = b""
            return out + self._filter(c, buf[i + len(SENTINEL) :])
        i = buf.find(RAW_BANNER)
        if i < 0:
            c.scan = buf[-(len(RAW_BANNER) - 1) :]
            return b""
        c.filter = None
        c.scan = b""
        return buf[i:]

    def _track_mode(self, c: _Child, data: bytes) -> None:
        s = self._tail + data
        r = s.rfind(RAW_BANNER)
        f = s.rfind(FRIENDLY_MARK)
        if r > f:
            c.mode = "raw"
        elif f > r:
            c.mode = "friendly"
        self._tail = s[-64:]

    def _emit(self, data: bytes) -> None:
        """Board output to the client(s); also kept in the transcript."""
        self._out_pty += data
        if self._conn is not None:
            self._out_sock += data
        self._log += data
        if len(self._log) > 65536:
            del self._log[:-65536]

    def _from_client(self, data: bytes) -> None:
        self._held += data
        self._release()

    def _release(self) -> None:
        """Move client bytes on to the board; each Ctrl-C is decided when its turn comes."""
        while self._held:
            i = self._held.find(b"\x03")
            if i < 0:
                self._in_child += self._held
                self._held.clear()
                return
            self._in_child += self._held[:i]
            del self._held[:i]
            what = self._interrupt()
            if what == "wait":
                return  # later bytes wait behind this Ctrl-C
            if what == "byte":
                self._in_child += b"\x03"
            del self._held[0]
            self._held_since = None

    def _interrupt(self) -> str:
        """A Ctrl-C from the client: "signal" (sent SIGINT: code runs), "byte" (pass it on:
        the interpreter waits on stdin, at a prompt or in code that reads it) or "wait"
        (it is busy between the two, e.g. compiling what it received: ask again soon)."""
        c = self._child
        now = time.monotonic()
        if self._held_since is None:
            self._held_since = now
        late = now - self._held_since > _INTR_WAIT
        if c is None or not c.booted:
            return "byte" if late else "wait"
        pid = c.proc.pid
        if _sigint_caught(pid):
            if now - self._last_sigint >= _SIGINT_GAP:
                self._last_sigint = now
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
            return "signal"
        if late or _READ_NR is None or _reads_stdin(pid):
            return "byte"
        return "wait"

    def _flush(self, writable) -> None:
        c = self._child
        if c is not None and c.booted and c.stdin in writable and self._in_child:
            try:
                n = os.write(c.stdin, self._in_child)
                del self._in_child[:n]
            except BlockingIOError:
                pass
            except OSError:  # the interpreter is going away; its EOF restarts it
                pass
        if self._out_pty:
            if self._master in writable:
                try:
                    n = os.write(self._master, self._out_pty)
                    del self._out_pty[:n]
                    self._pty_stall = None
                except BlockingIOError:
                    pass
            if self._out_pty:
                now = time.monotonic()
                if self._pty_stall is None:
                    self._pty_stall = now
                elif now - self._pty_stall > _DROP_AFTER:
                    # Nobody reads the pty: drop, as a UART with nothing attached does.
                    self._out_pty.clear()
                    self._pty_stall = None
        if self._conn is not None and self._out_sock and self._conn in writable:
            try:
                n = self._conn.send(self._out_sock)
                del self._out_sock[:n]
            except BlockingIOError:
                pass
            except OSError:
                self._drop_conn()

    # ---- TCP --------------------------------------------------------------

    def _open_socket(self, spec: str) -> None:
        host, _, port = spec.rpartition(":")
        try:
            port = int(port)
        except ValueError:
            raise UserError(f"--socket wants HOST:PORT, got {spec!r}") from None
        host = host or "127.0.0.1"
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            s.close()
            raise UserError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        s.listen(1)
        s.setblocking(False)
        self._listen = s
        h, p = s.getsockname()[:2]
        self.socket_url = f"socket://{h}:{p}"

    def _accept(self) -> None:
        try:
            conn, _ = self._listen.accept()
        except OSError:
            return
        self._drop_conn()  # one client at a time, like a serial port: the newest wins
        conn.setblocking(False)
        conn.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._conn = conn

    def _drop_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._out_sock.clear()
