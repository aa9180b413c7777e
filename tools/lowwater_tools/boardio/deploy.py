"""Deploy lib/, firmware/ and a board profile to a board through mpremote or ampy.

The deploy set (and nothing else is ever written on the board):
    firmware/<file>       -> :/<file>          (boot.py, main.py: always .py)
    lib/<path>            -> :/lib/<path>      (.mpy instead of .py with mpy=True)
    boards/<board>.json   -> :/board.json
Only files whose sha256 differs from the board's copy are sent; files under
:/lib/lowwater that are not in the set are removed. The real tools run as
subprocesses (paths.tool_exe), every call bounded by a timeout. docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lowwater_tools import args as targs, boards
from lowwater_tools.boardio import mpybuild
from lowwater_tools.boardio.mpybuild import ARCHS, decode_mpy, mpy_cross_version  # noqa: F401 - re-exported for callers
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB, ROOT, tool_exe

TOOLS = ("mpremote", "ampy")
MPY_DIR = ROOT / "build" / "mpy"
STALE_ROOT = "/lib/lowwater"  # the only place files are ever removed
_SKIP_NAMES = ("__pycache__",)


@dataclass
class Item:
    """One file of the deploy set."""

    remote: str  # absolute path on the board
    local: Path  # the file sent (a compiled .mpy for mpy deploys)
    source: Path  # the file in the repo it comes from
    sha256: str = ""
    size: int = 0


@dataclass
class Plan:
    items: list[Item]
    dirs: list[str]  # every directory the set needs, parents first
    copy: list[Item] = field(default_factory=list)
    unchanged: list[Item] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)  # stale files, then stale dirs (deepest first)
    mkdir: list[str] = field(default_factory=list)
    board_mpy: int | None = None
    notes: list[str] = field(default_factory=list)  # entries of the tree left out, one line each
    remove_raw: list[bytes] = field(default_factory=list)  # stale non-UTF-8 paths (dirs end in /)


@dataclass
class Result:
    plan: Plan
    seconds: float = 0.0
    reset: bool = False

    @property
    def copied(self) -> list[str]:
        return [i.remote for i in self.plan.copy]


# ---- the deploy set -------------------------------------------------------


def _files(base: Path, notes: list[str] | None = None):
    """(path, relative path) of every file of `base` that goes on the board. Odd
    entries (mpybuild.odd_file: non-UTF-8 or control-character names, dangling
    symlinks, symlinks out of the tree, symlinked folders) are left out, each with
    a line in `notes`."""
    for p in sorted(base.rglob("*")):
        rel = p.relative_to(base)
        if any(part.startswith(".") or part in _SKIP_NAMES for part in rel.parts):
            continue
        if p.is_dir() and not p.is_symlink():
            continue
        why = mpybuild.odd_file(p, base)
        if why:
            if notes is not None:  # shown with \xNN escapes: the name may not be UTF-8
                note = f"skipped {_rel(p)}: {why}"
                notes.append(note.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
            continue
        if p.is_file() and p.suffix not in (".pyc", ".mpy"):
            yield p, rel


def deploy_set(board: str, mpy_args: list[str] | None = None, notes: list[str] | None = None) -> list[Item]:
    """The files to put on the board. mpy_args: compile lib/ with these mpy-cross options.
    notes: gets a line for every entry of the tree left out (see _files)."""
    profile_file = boards.profile_path(board)
    boards.load(board)  # refuse an invalid profile before touching the board
    items = []
    if FIRMWARE.is_dir():
        for p, rel in _files(FIRMWARE, notes):
            if len(rel.parts) == 1:
                items.append(Item("/" + p.name, p, p))
    lib = list(_files(LIB, notes))
    compiled = {}
    if mpy_args is not None:
        # The same build as `make mpy` / `lowwater mpy` (mpybuild), for the board's arch.
        arch = next((a.split("=", 1)[1] for a in mpy_args if a.startswith("-march=")), None)
        for out in mpybuild.build(MPY_DIR, arch=arch, base=LIB):
            compiled[LIB / out.relative_to(MPY_DIR).with_suffix(".py")] = out
    for p, rel in lib:
        remote = "/lib/" + rel.as_posix()
        if p in compiled:
            items.append(Item(remote[:-3] + ".mpy", compiled[p], p))
        else:
            items.append(Item(remote, p, p))
    items.append(Item("/board.json", profile_file, profile_file))
    for it in items:
        try:
            data = it.local.read_bytes()
        except OSError as e:
            raise UserError(f"cannot read {_rel(it.local)}: {e.strerror or e}") from None
        it.sha256 = hashlib.sha256(data).hexdigest()
        it.size = len(data)
    return items


def _dirs(items: list[Item]) -> list[str]:
    out = set()
    for it in items:
        parts = it.remote.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            out.add("/" + "/".join(parts[:i]))
    return sorted(out, key=lambda d: (d.count("/"), d))


# ---- mpy-cross --------------------------------------------------------------


def mpy_args_for(board_mpy: int | None) -> list[str]:
    """mpy-cross options for a board's _mpy value; UserError when it cannot load our .mpy."""
    if not board_mpy:
        raise UserError(
            "the board does not report sys.implementation._mpy: it cannot load .mpy files; deploy without --mpy"
        )
    ver, sub, arch = decode_mpy(board_mpy)
    have = mpy_cross_version()
    if (ver, sub) != have:
        raise UserError(
            f"the board loads .mpy v{ver}.{sub} but mpy-cross emits v{have[0]}.{have[1]}: "
            "install the mpy-cross release matching the board's MicroPython, or deploy without --mpy"
        )
    return [f"-march={arch}"] if arch else []


# ---- talking to the board -----------------------------------------------------

_QUERY = """\
import os, sys
try:
    import hashlib
except ImportError:
    hashlib = None
from binascii import hexlify
print('LW:mpy', getattr(sys.implementation, '_mpy', 0))
def lw_h(p):
    try:
        f = open(p, 'rb')
    except OSError:
        return
    if hashlib is None:
        f.close()
        print('LW:F', lw_x(p), '-')
        return
    h = hashlib.sha256()
    b = bytearray(512)
    m = memoryview(b)
    while True:
        n = f.readinto(b)
        if not n:
            break
        h.update(m[:n])
    f.close()
    print('LW:F', lw_x(p), hexlify(h.digest()).decode())
def lw_x(p):
    return hexlify(p if isinstance(p, bytes) else p.encode()).decode()
def lw_w(d, depth):
    # bytes paths: a name that is not UTF-8 cannot raise UnicodeError here
    try:
        es = list(os.ilistdir(d))
    except OSError:
        return
    print('LW:D', lw_x(d))
    for e in es:
        n = e[0]
        p = d + b'/' + (n if isinstance(n, bytes) else n.encode())
        if e[1] & 0x4000:
            if depth < 16:
                lw_w(p, depth + 1)
        else:
            lw_h(p)
for d in %(dirs)r:
    try:
        if os.stat(d)[0] & 0x4000:
            print('LW:D', lw_x(d))
    except OSError:
        pass
for p in %(files)r:
    lw_h(p)
lw_w(%(stale)r.encode(), 0)
print('LW:end')
"""


_REMOVE_RAW = """\
import os
from binascii import unhexlify
for h in %(paths)r:
    p = unhexlify(h)
    if p.endswith(b'/'):
        os.rmdir(p[:-1])
    else:
        os.remove(p)
"""

OUTPUT_LIMIT = 4 << 20  # bytes a board tool may print before it is stopped (a board can talk forever)


def _die_with_parent():  # pragma: no cover - runs in the child before exec
    # SIGTERM the tool when lowwater goes away, even by SIGKILL: no mpremote is
    # left talking to the board (Linux; elsewhere the finally blocks still kill it).
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


try:
    import ctypes

    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def tool_popen(cmd: list[str], **kw) -> subprocess.Popen:
    """Start a board tool (mpremote, ampy, esptool): output piped, no stdin, dies with us."""
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
        **kw,
    )


def run_tool(cmd: list[str], timeout: float, what: str | None = None, limit: int = OUTPUT_LIMIT) -> tuple[int, bytes]:
    """Run a board tool to the end: (exit status, its output). Bounded by `timeout`
    and by `limit` bytes of output; the tool is killed on any way out (a timeout,
    Ctrl-C, SIGTERM through cli.Terminated)."""
    what = what or Path(cmd[0]).name
    import select

    proc = tool_popen(cmd)
    deadline = time.monotonic() + timeout
    buf = bytearray()
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UserError(f"{what} did not finish within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            if len(buf) > limit:
                raise UserError(f"{what} printed more than {limit} bytes: stopped (is the board flooding its output?)")
        try:
            rc = proc.wait(max(0.5, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise UserError(f"{what} did not finish within {timeout:g} s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    return rc, bytes(buf)


def _run(cmd: list[str], timeout: float, what: str | None = None) -> subprocess.CompletedProcess:
    rc, out = run_tool(cmd, timeout, what)
    return subprocess.CompletedProcess(cmd, rc, out.decode("utf-8", "replace"))


def _tool_error(tool: str, port: str, out: str) -> UserError:
    low = out.lower()
    if "failed to access" in low or "could not exclusively lock" in low or "resource busy" in low:
        return UserError(
            f"port {port} is busy or unavailable: is another program (mpremote, a monitor, a serial console) using it?"
        )
    if "could not enter raw repl" in low:
        return UserError(
            f"no MicroPython REPL answers on {port}: is it a MicroPython board, and is nothing else using it?"
        )
    last = [line for line in out.strip().splitlines() if line.strip()]
    return UserError(f"{tool} failed on {port}: {last[-1] if last else 'no output'}")


def check_port(port: str) -> None:
    if "://" not in port and not os.path.exists(port):
        raise UserError(f"port {port} not found: is the board plugged in (or the virtual board running)?")


class _Mpremote:
    def __init__(self, port: str, timeout: float):
        self.port = port
        self.timeout = timeout
        self.exe = tool_exe("mpremote")

    def exec(self, code: str, reset: bool) -> str:
        # The first call soft-resets (a clean heap, main.py stopped); later ones resume.
        cmd = [self.exe, "connect", self.port] + ([] if reset else ["resume"]) + ["exec", code]
        r = _run(cmd, self.timeout, "mpremote")
        if r.returncode != 0:
            raise _tool_error("mpremote", self.port, r.stdout)
        return r.stdout

    def apply(self, plan: Plan, progress) -> None:
        """All changes in one mpremote run (`+`-chained), progress from its `cp` lines."""
        cmd = [self.exe, "connect", self.port, "resume"]
        steps = []
        for d in plan.mkdir:
            steps.append(["fs", "mkdir", ":" + d])
        for it in plan.copy:
            steps.append(["fs", "cp", "-f", str(it.local), ":" + it.remote])
        for p in plan.remove:
            steps.append(["fs", "rmdir" if p.endswith("/") else "rm", ":" + p.rstrip("/")])
        if not steps:
            return
        for i, s in enumerate(steps):
            cmd += (["+"] if i else []) + s
        byline = {f"cp {it.local} :{it.remote}": it for it in plan.copy}
        timeout = self.timeout + sum(it.size for it in plan.copy) / 2000
        lines = _stream(cmd, timeout, "mpremote")
        out: list[str] = []
        try:
            for line in lines:
                if len(out) < 10_000:
                    out.append(line)
                it = byline.get(line.rstrip())
                if it:
                    progress(it)
        finally:
            lines.stop()
        if lines.returncode != 0:
            raise _tool_error("mpremote", self.port, "\n".join(out))


class _Ampy:
    def __init__(self, port: str, timeout: float):
        self.port = port
        self.timeout = timeout
        self.exe = tool_exe("ampy")

    def _ampy(self, *args, timeout=None) -> str:
        r = _run([self.exe, "--port", self.port, *args], timeout or self.timeout, "ampy")
        if r.returncode != 0:
            raise _tool_error("ampy", self.port, r.stdout)
        return r.stdout

    def exec(self, code: str, reset: bool) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(code)
        try:
            return self._ampy("run", f.name)
        finally:
            os.unlink(f.name)

    def apply(self, plan: Plan, progress) -> None:
        for d in plan.mkdir:
            self._ampy("mkdir", "--exists-okay", d)
        for it in plan.copy:
            progress(it)
            self._ampy("put", str(it.local), it.remote, timeout=self.timeout + it.size / 500)
        for p in plan.remove:
            if p.endswith("/"):
                self._ampy("rmdir", "--missing-okay", p.rstrip("/"))
            else:
                self._ampy("rm", p)


class _Lines:
    """A subprocess's output lines as they come, every wait bounded by a deadline."""

    def __init__(self, cmd, timeout, what):
        self.what = what
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.proc = tool_popen(cmd, text=True, errors="replace")
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.returncode = None

    def _pump(self):
        for line in self.proc.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def __iter__(self):
        try:
            while True:
                left = self.deadline - time.monotonic()
                try:
                    line = self.q.get(timeout=max(0.0, left))
                except queue.Empty:
                    raise UserError(f"{self.what} did not finish within {self.timeout:g} s") from None
                if line is None:
                    break
                yield line
            self.returncode = self.proc.wait(max(1.0, self.deadline - time.monotonic()))
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the tool if it still runs (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _stream(cmd, timeout, what) -> _Lines:
    return _Lines(cmd, timeout, what)


def soft_reset(port: str, timeout: float = 10.0) -> None:
    """Soft-reset in the friendly REPL, so boot.py and then main.py run (a raw-REPL soft
    reset, as `mpremote soft-reset` does, skips main.py). Plain REPL control bytes."""
    import serial

    try:
        s = serial.serial_for_url(port, baudrate=115200, timeout=0.05)
    except (serial.SerialException, OSError) as e:
        raise UserError(f"port {port} is busy or unavailable ({e})") from None
    try:
        s.reset_input_buffer()
        s.write(b"\r\x03\x03")
        time.sleep(0.05)
        s.write(b"\r\x02")  # to the friendly REPL
        _read_until(s, b">>> ", timeout, port)
        s.write(b"\x04")
        _read_until(s, b"soft reboot", timeout, port)
    finally:
        s.close()


def _read_until(s, ending: bytes, timeout: float, port: str) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while ending not in buf:
        if time.monotonic() > deadline:
            raise UserError(f"no answer from {port} within {timeout:g} s (waited for {ending!r})")
        buf += s.read(max(1, s.in_waiting))
    return buf


# ---- the whole deploy ---------------------------------------------------------


def _parse(out: str) -> tuple[int, dict[str, str], set[str], set[bytes]]:
    """The deploy query's answer: (sys.implementation._mpy, {path: sha256}, {dir}).
    Names come hex-encoded (spaces and any byte survive); whatever the board says
    is checked: a name that is not a plain absolute path is refused (_board_path)."""
    mpy, hashes, dirs, ended = None, {}, set(), False
    raw: set[bytes] = set()  # non-UTF-8 paths (files, and dirs with a trailing /)
    for line in out.splitlines():
        parts = line.strip().split(" ")
        if parts[0] == "LW:mpy" and len(parts) == 2:
            try:
                mpy = int(parts[1])
            except ValueError:
                raise UserError(
                    f"the board answered the deploy query with a bad .mpy version {parts[1][:40]!r}"
                ) from None
            if not 0 <= mpy < 2**16:
                raise UserError(f"the board answered the deploy query with a bad .mpy version {mpy}")
        elif parts[0] in ("LW:F", "LW:D") and len(parts) == 3 - (parts[0] == "LW:D"):
            path = _board_path(parts[1])
            if isinstance(path, bytes):
                raw.add(path + b"/" if parts[0] == "LW:D" else path)
            elif parts[0] == "LW:F":
                hashes[path] = parts[2]
            else:
                dirs.add(path)
        elif parts[0] == "LW:end":
            ended = True
    if mpy is None or not ended:
        raise UserError("the board did not answer the deploy query (no MicroPython?)")
    return mpy, hashes, dirs, raw


def _board_path(hexname: str) -> str | bytes:
    """A path the board listed, hex-decoded: a str, or the bytes when the name is not
    UTF-8 (a file a board can hold; deploy removes it by its bytes when stale).
    UserError unless it is a plain absolute path (no control characters, no empty,
    `.` or `..` parts): a board that lists such a name is lying about its files."""
    try:
        raw = bytes.fromhex(hexname)
    except ValueError:
        raise UserError(f"the board answered the deploy query with a malformed name {hexname[:60]!r}") from None
    parts = raw.split(b"/")
    if (
        len(raw) > 1024
        or not raw.startswith(b"/")
        or any(b < 32 or b == 127 for b in raw)
        or any(p in (b"", b".", b"..") for p in parts[1:])
    ):
        raise UserError(f"the board listed an unsafe name {raw[:80]!r}: refused, nothing changed")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def plan(
    port: str | None,
    board: str = boards.DEFAULT_BOARD,
    mpy: bool = False,
    tool: str = "mpremote",
    timeout: float = 60.0,
    reset_first: bool = True,
) -> tuple[Plan, object]:
    """Compare the deploy set with the board: what to copy, make and remove."""
    if tool not in TOOLS:
        raise UserError(f"unknown --tool {tool!r}; use one of {', '.join(TOOLS)}")
    if port is None:
        if mpy:
            raise UserError("--mpy needs --port: the board's .mpy version decides how to compile")
        left: list[str] = []
        items = deploy_set(board, notes=left)
        p = Plan(items, _dirs(items), notes=left)
        p.copy, p.mkdir = list(items), list(p.dirs)
        return p, None
    check_port(port)
    drv = (_Mpremote if tool == "mpremote" else _Ampy)(port, timeout)
    boards.load(board)
    base_files = [it.remote for it in deploy_set(board)]  # names only; .mpy names added below
    dirs = _dirs([Item(r, Path(), Path()) for r in base_files])
    names = sorted({r for r in base_files} | {r[:-3] + ".mpy" for r in base_files if r.endswith(".py")})
    out = drv.exec(
        _QUERY % {"dirs": dirs, "files": [n for n in names if not n.startswith(STALE_ROOT + "/")], "stale": STALE_ROOT},
        reset_first,
    )
    board_mpy, hashes, have_dirs, raw = _parse(out)
    notes: list[str] = []
    items = deploy_set(board, mpy_args_for(board_mpy) if mpy else None, notes)
    p = Plan(items, _dirs(items), board_mpy=board_mpy, notes=notes)
    wanted = {it.remote for it in items}
    for it in items:
        (p.unchanged if hashes.get(it.remote) == it.sha256 else p.copy).append(it)
    p.mkdir = [d for d in p.dirs if d not in have_dirs]
    stale_files = sorted(f for f in hashes if f.startswith(STALE_ROOT + "/") and f not in wanted)
    stale_dirs = sorted(
        (d for d in have_dirs if d.startswith(STALE_ROOT + "/") and d not in p.dirs), key=lambda d: -d.count("/")
    )
    p.remove = stale_files + [d + "/" for d in stale_dirs]
    # Names that are not UTF-8 (no tool can pass them on a command line): removed
    # by their bytes when stale, files first, then folders deepest first.
    stale = STALE_ROOT.encode() + b"/"
    p.remove_raw = sorted((r for r in raw if r.startswith(stale)), key=lambda r: (r.endswith(b"/"), -r.count(b"/"), r))
    return p, drv


def deploy(
    port: str | None,
    board: str = boards.DEFAULT_BOARD,
    mpy: bool = False,
    tool: str = "mpremote",
    dry_run: bool = False,
    reset: bool = True,
    timeout: float = 60.0,
    out=None,
) -> Result:
    """Bring the board up to date with the repo; returns what was (or would be) done."""
    say = out or _Reporter(dry_run)
    t0 = time.monotonic()
    if port is None and not dry_run:
        raise UserError(
            "no --port given: the board's serial port (e.g. /dev/ttyUSB0), or the path `lowwater vboard` prints"
        )
    p, drv = plan(port, board, mpy, tool, timeout, reset_first=not dry_run)
    res = Result(p)
    for note in p.notes:
        print(f"lowwater: {note}", file=sys.stderr, flush=True)
    if dry_run:
        say.dry(p)
        res.seconds = time.monotonic() - t0
        return res
    say.start(p)
    drv.apply(p, say.file)
    if p.remove_raw:
        drv.exec(_REMOVE_RAW % {"paths": [r.hex() for r in p.remove_raw]}, False)
    if reset:
        soft_reset(port, timeout=min(timeout, 15.0))
        res.reset = True
    res.seconds = time.monotonic() - t0
    say.done(res)
    return res


class _Reporter:
    """Rich progress when stdout is a terminal, plain lines otherwise."""

    def __init__(self, dry_run: bool, stream=None):
        self.stream = stream or sys.stdout
        self.rich = self.stream.isatty()
        self.bar = None

    def _p(self, msg):
        print(msg, file=self.stream, flush=True)

    def dry(self, p: Plan) -> None:
        for d in p.mkdir:
            self._p(f"would mkdir :{d}")
        for it in p.copy:
            self._p(f"would copy {_rel(it.source)} -> :{it.remote} ({it.size} B)")
        for r in p.remove:
            self._p(f"would remove :{r.rstrip('/')}")
        for b in p.remove_raw:
            self._p(f"would remove :{b.rstrip(b'/').decode('utf-8', 'backslashreplace')}")
        n = len(p.remove) + len(p.remove_raw)
        self._p(f"dry run: {len(p.copy)} to copy, {len(p.unchanged)} unchanged, {n} to remove")

    def start(self, p: Plan) -> None:
        self.total = len(p.copy)
        self.n = 0
        if self.rich and self.total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("deploy"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                transient=True,
            )
            self.task = self.bar.add_task("", total=self.total)
            self.bar.start()

    def file(self, it: Item) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.n - 1, description=it.remote)
        else:
            self._p(f"[{self.n}/{self.total}] {_rel(it.source)} -> :{it.remote} ({it.size} B)")

    def done(self, res: Result) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=self.total)
            self.bar.stop()
        p = res.plan
        self._p(
            f"deployed {len(p.copy)} files ({sum(i.size for i in p.copy)} B), {len(p.unchanged)} unchanged, "
            f"{len(p.remove) + len(p.remove_raw)} removed in {res.seconds:.1f} s"
            + ("; soft reset" if res.reset else "")
        )


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


# The command: `lowwater deploy --port P`: copy lib/, firmware/ and the board profile to a board.
HELP = "copy lib/, firmware/ and the board profile to a board (only what changed), then soft-reset"


def add_arguments(p):
    p.add_argument(
        "--port",
        help="serial port or URL of the board (e.g. /dev/ttyUSB0, the /dev/pts/N "
        "`lowwater vboard` prints, socket://HOST:PORT), or auto: the one board attached",
    )
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile copied as :/board.json (default: unix)")
    p.add_argument("--mpy", action="store_true", help="compile lib/ with mpy-cross for the board's .mpy version")
    p.add_argument("--tool", choices=TOOLS, default="mpremote", help="what talks to the board (default: mpremote)")
    p.add_argument("--dry-run", action="store_true", help="list what would be copied and removed; change nothing")
    p.add_argument("--no-reset", dest="reset", action="store_false", help="do not soft-reset at the end")
    p.add_argument(
        "--timeout", type=targs.seconds, default=60.0, help="bound for each tool call in seconds (default 60)"
    )


def run(args) -> int:
    deploy(
        args.port,
        board=args.board,
        mpy=args.mpy,
        tool=args.tool,
        dry_run=args.dry_run,
        reset=args.reset,
        timeout=args.timeout,
    )
    return 0
