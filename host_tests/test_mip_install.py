"""`mpremote mip install` of each lowwater package into a virtual board.

The same files a user installs with `mpremote mip install github:OWNER/REPO`
(the base, package.json) and `.../package-X.json` (an opt-in package): mip reads
the package file from the local checkout here (relative URLs resolve against
its folder, as they do against the GitHub repo). The base goes on alone first,
then each opt-in package, and the board's /lib is listed after each: every
install adds exactly its own files. package-firmware.json goes onto a second,
empty board and runs alone. Every call is bounded.
"""

from __future__ import annotations

import hashlib
import json

import pytest

import clients
from lowwater_tools import boards
from lowwater_tools.boardio import packages
from lowwater_tools.reliability import soak
from lowwater_tools.paths import BOARDS, LIB, ROOT

try:
    from lowwater_tools.vboard import VirtualBoard
except ImportError:  # the virtual board is another issue's work
    VirtualBoard = None

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(VirtualBoard is None, reason="lowwater_tools.vboard is not there"),
]

T = 60  # s: bound for one mpremote call
PACKAGES = packages.packages()
BASE, OPT_IN = PACKAGES[0], PACKAGES[1:]


def mpr(port: str, *args: str) -> str:
    return clients.mpr(port, *args, timeout=T)


def board_lines(out: str, tag: str) -> list[str]:
    return [line[len(tag) + 1 :] for line in out.splitlines() if line.startswith(tag + " ")]


_HASHES = """\
import os, hashlib, binascii
def lw(d):
    try:
        es = list(os.ilistdir(d))
    except OSError:
        return
    for e in es:
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


def on_board(port: str) -> dict[str, str]:
    """{path: sha256} of every file under the board's /lib."""
    return dict(line.split(" ", 1) for line in board_lines(mpr(port, "exec", _HASHES), "LW:F"))


def want(pkg: packages.Package) -> dict[str, str]:
    return {"/lib/" + p.relative_to(LIB).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in pkg.files}


@pytest.fixture(scope="module")
def board():
    with VirtualBoard(board="unix", timeout=30) as vb:
        yield vb


@pytest.fixture(scope="module")
def base(board):
    """The base package installed alone, with mip's default target (/lib)."""
    assert on_board(board.port) == {}
    out = mpr(board.port, "mip", "install", str(ROOT / "package.json"))
    assert "Done" in out
    return on_board(board.port)


def test_base_installs_exactly_its_files(base):
    assert base == want(BASE)
    assert not any("/prof/" in p or p.endswith(("/flashlog.py", "/faults.py")) for p in base)


def test_base_alone_imports_and_names_the_package_of_a_missing_module(board, base):
    out = mpr(
        board.port,
        "exec",
        "import lowwater\n"
        "from lowwater import ring\n"  # app: test_firmware_package_... runs it
        "r = ring.ChunkRing(16, 4)\n"
        "print('LW:ok', lowwater.__version__, lowwater.__file__, len(r), hasattr(lowwater, 'nope'))\n"
        "for m in %r:\n"
        "    try:\n"
        "        getattr(lowwater, m)\n"
        "        print('LW:missing', m, 'imported')\n"
        "    except ImportError as e:\n"
        "        print('LW:missing', m, e)\n" % [p.modules[0] for p in OPT_IN],
    )
    (line,) = board_lines(out, "LW:ok")
    version, path, n, has_nope = line.split()
    assert version == json.loads((ROOT / "package.json").read_text())["version"]
    assert path.startswith("/lib/lowwater/")
    assert int(n) == 0 and has_nope == "False"
    missing = board_lines(out, "LW:missing")
    assert len(missing) == len(OPT_IN)
    for pkg, line in zip(OPT_IN, missing):
        assert line.startswith(pkg.modules[0] + " ") and pkg.name in line, line


@pytest.mark.parametrize("pkg", OPT_IN, ids=[p.name for p in OPT_IN])
def test_each_opt_in_package_adds_exactly_its_files_and_imports(board, base, pkg):
    before = on_board(board.port)
    out = mpr(board.port, "mip", "install", str(pkg.json_path))
    assert "Done" in out
    after = on_board(board.port)
    added = {p: h for p, h in after.items() if p not in before}
    assert added == want(pkg)
    assert {p: after[p] for p in before} == before  # nothing else touched
    imports = "".join(f"import lowwater.{m}\nprint('LW:imp', lowwater.{m}.__name__)\n" for m in pkg.modules)
    out = mpr(board.port, "exec", imports)
    assert board_lines(out, "LW:imp") == [f"lowwater.{m}" for m in pkg.modules]


def test_prof_on_the_board_loads_one_concept(board, base):
    prof = next(p for p in OPT_IN if p.name == "lowwater-prof")
    if not any(p.endswith("/prof/__init__.py") for p in on_board(board.port)):
        mpr(board.port, "mip", "install", str(prof.json_path))
    out = mpr(
        board.port,
        "exec",
        "import sys\n"
        "from lowwater import prof\n"
        "s = prof.snapshot()\n"
        "print('LW:snap', s.free > 0, s.largest > 0)\n"
        "print('LW:mods', ' '.join(sorted(k for k in sys.modules if k.startswith('lowwater.prof'))))\n",
    )
    assert board_lines(out, "LW:snap") == ["True True"]
    # snapshot() compiled heap.py and the shared meter.py only
    assert board_lines(out, "LW:mods") == ["lowwater.prof lowwater.prof.heap lowwater.prof.meter"]


def test_firmware_package_alone_brings_what_the_firmware_imports_and_runs(tmp_path):
    # mip installs .py sources: compiling app.py on the board needs more
    # transient heap than the unix profile's 128 KiB leaves (a board should get
    # .mpy files or frozen ones, docs/distribution.md), so this board has twice
    # the heap; the firmware still runs with the unix profile's settings.
    roomy = soak.derived_profile("unix", tmp_path, heap=2 * boards.load("unix")["heap"])
    with VirtualBoard(board=str(roomy), timeout=30) as vb:
        out = mpr(vb.port, "mip", "install", "--target", "/", str(ROOT / "package-firmware.json"))
        # mip joins target + "/" + name: "//main.py" is the root's main.py
        assert "/main.py" in out and "/boot.py" in out and "Done" in out
        need = {}
        for pkg in packages.firmware_packages():
            need.update(want(pkg))
        assert on_board(vb.port) == need
        assert not any("/prof/" in p for p in need)
        mpr(vb.port, "cp", str(BOARDS / "unix.json"), ":/board.json")
        # main.py runs forever on a board; run its entry point for a bounded number of chunks.
        out = mpr(
            vb.port,
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
