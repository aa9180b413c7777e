"""`mpremote mip install` of package.json (and package-firmware.json) into a virtual board.

The same files a user installs with `mpremote mip install github:OWNER/REPO`:
mip reads the package file from the local checkout here (relative URLs resolve
against its folder, as they do against the GitHub repo). Every call is bounded.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from lowwater_tools.paths import BOARDS, LIB, ROOT, tool_exe

try:
    from lowwater_tools.vboard import VirtualBoard
except ImportError:  # the virtual board is another issue's work
    VirtualBoard = None

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(VirtualBoard is None, reason="lowwater_tools.vboard is not there"),
]

T = 60  # s: bound for one mpremote call


def mpr(port: str, *args: str) -> str:
    r = subprocess.run(
        [tool_exe("mpremote"), "connect", port, *args],
        capture_output=True,
        text=True,
        timeout=T,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def board_lines(out: str, tag: str) -> list[str]:
    return [line[len(tag) + 1 :] for line in out.splitlines() if line.startswith(tag + " ")]


_HASHES = """\
import os, hashlib, binascii
def lw(d):
    for e in os.ilistdir(d):
        p = d + '/' + e[0]
        if e[1] == 0x4000:
            lw(p)
        else:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                h.update(f.read())
            print('LW:F', p, binascii.hexlify(h.digest()).decode())
lw('/lib')
"""


@pytest.fixture(scope="module")
def board():
    with VirtualBoard(board="unix", timeout=30) as vb:
        yield vb


@pytest.fixture(scope="module")
def installed(board):
    """package.json installed with mip's default target (the board's /lib)."""
    out = mpr(board.port, "mip", "install", str(ROOT / "package.json"))
    return out


def test_mip_installs_every_library_file_unchanged(board, installed):
    assert "Done" in installed
    on_board = dict(line.split(" ", 1) for line in board_lines(mpr(board.port, "exec", _HASHES), "LW:F"))
    want = {
        "/lib/" + p.relative_to(LIB).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in LIB.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert on_board == want


def test_installed_library_imports_and_runs(board, installed):
    out = mpr(
        board.port,
        "exec",
        "import lowwater\n"
        "from lowwater import app, ring\n"
        "r = ring.ChunkRing(16, 4)\n"
        "print('LW:ok', lowwater.__version__, lowwater.__file__, len(r))\n",
    )
    (line,) = board_lines(out, "LW:ok")
    version, path, n = line.split()
    assert version == json.loads((ROOT / "package.json").read_text())["version"]
    assert path.startswith("/lib/lowwater/")
    assert int(n) == 0


def test_firmware_package_installs_boot_and_main_and_they_run(board, installed):
    out = mpr(board.port, "mip", "install", "--target", "/", str(ROOT / "package-firmware.json"))
    # mip joins target + "/" + name: "//main.py" is the root's main.py
    assert "/main.py" in out and "/boot.py" in out and "Done" in out
    mpr(board.port, "cp", str(BOARDS / "unix.json"), ":/board.json")
    # main.py runs forever on a board; run its entry point for a bounded number of chunks.
    out = mpr(
        board.port,
        "exec",
        "import os\n"
        "print('LW:files', sorted(f for f in os.listdir('/') if f.endswith(('.py', '.json'))))\n"
        "from lowwater import app\n"
        "fw = app.main('/board.json', 20)\n"
        "print('LW:ran', fw.produced, fw.errors)\n",
    )
    (files,) = board_lines(out, "LW:files")
    assert files == "['board.json', 'boot.py', 'main.py']"
    (ran,) = board_lines(out, "LW:ran")
    produced, errors = (int(x) for x in ran.split())
    assert produced == 20 and errors == 0
