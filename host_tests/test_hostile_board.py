"""A board that lies about its filesystem (issue 13 §1).

The hostile virtual board's boot.py mounts a Python VFS object (os.mount takes
any object with ilistdir/stat/open) over /log and /lib/lowwater: its listing
returns the names of /hostile.txt, one hex-encoded name per line, e.g. `../x`,
`/etc/x`, names with NUL or newline, non-UTF-8 bytes, huge names. mpremote's
own `fs cp -r` would write such names outside the folder it was given; the host
tools must never do so, whatever the board says:

- `lowwater log pull` refuses with one `lowwater:` line, exit status 1, and
  writes nothing (not even inside -o);
- `lowwater deploy` refuses with one line (no ValueError traceback) and changes
  nothing on the board.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clients import cli
from lowwater_tools.paths import BOARDS, tool_exe
from lowwater_tools.reliability import soak
from lowwater_tools.vboard import VirtualBoard, image

pytestmark = pytest.mark.timeout(240)

T = 60

HOSTILE_BOOT = """\
import os, io
from binascii import unhexlify


def _names():
    try:
        f = open('/hostile.txt')
    except OSError:
        return []
    out = []
    for line in f.read().split('\\n'):
        if line:
            raw = unhexlify(line[2:])
            out.append(raw if line[0] == 'b' else raw.decode())
    f.close()
    return out


class Liar:
    # A filesystem that lists whatever /hostile.txt says; every file is 42 bytes.
    def mount(self, ro, mkfs):
        pass

    def umount(self):
        pass

    def ilistdir(self, path):
        for n in _names():
            yield (n, 0x8000, 0, 42)

    def stat(self, path):
        if path in ('', '/'):
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return (0x8000, 0, 0, 0, 0, 0, 42, 0, 0, 0)

    def open(self, path, mode):
        return io.BytesIO(b'\\x00' * 42)

    def chdir(self, path):
        pass

    def getcwd(self):
        return ''

    def statvfs(self, path):
        return (4096, 4096, 100, 50, 50, 0, 0, 0, 0, 255)


os.mount(Liar(), '/log')
os.mount(Liar(), '/lib/lowwater')
"""

# id -> the names the board lists (str: UTF-8 names; bytes: sent as bytes)
CASES = {
    "dotdot": ["00000001.log", "../escaped.log"],
    "deep-dotdot": ["../../../../../../tmp/lowwater-hostile.log"],
    "absolute": ["/etc/x"],
    "dot-dot-only": [".."],
    "dot": ["."],
    "slash-inside": ["sub/00000001.log"],
    "nul": ["0000\x000001.log"],
    "newline": ["00000001.log\n../escaped.log"],
    "carriage-return": ["00000001.log\r"],
    "backslash": ["..\\escaped.log"],
    "non-utf8": [b"\xff\xfe.log"],
    "huge": ["9" * 5000 + ".log"],
    "empty": [""],
}


def _hostile_txt(names) -> str:
    return "".join(
        ("b:" if isinstance(n, bytes) else "s:") + (n if isinstance(n, bytes) else n.encode()).hex() + "\n"
        for n in names
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    img = d / "hostile.lfs"
    # The deploy set (so that a deploy has something to compare), then the lying boot.py.
    soak.prepare_image(img, BOARDS / "unix.json", files={"/boot.py": HOSTILE_BOOT, "/main.py": "pass\n"}, mpy=False)
    with VirtualBoard(board="unix", image=img, timeout=30) as vb:
        yield vb


def _set_names(vb, tmp_path, names):
    f = tmp_path / "hostile.txt"
    f.write_text(_hostile_txt(names))
    r = subprocess.run(
        [tool_exe("mpremote"), "connect", vb.port, "fs", "cp", str(f), ":/hostile.txt"],
        capture_output=True,
        text=True,
        timeout=T,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_board_really_lies(hostile, tmp_path):
    # The premise: the board's own listing (what mpremote sees) holds the hostile names.
    _set_names(hostile, tmp_path, ["00000001.log", "../escaped.log"])
    r = subprocess.run(
        [tool_exe("mpremote"), "connect", hostile.port, "fs", "ls", ":/log"],
        capture_output=True,
        text=True,
        timeout=T,
        stdin=subprocess.DEVNULL,
    )
    assert "../escaped.log" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("case", list(CASES))
def test_log_pull_refuses_a_lying_listing_and_writes_nothing(hostile, tmp_path, case):
    _set_names(hostile, tmp_path, CASES[case])
    work = tmp_path / "work"
    work.mkdir()
    out = work / "pulled"
    before = _tree(tmp_path)
    r = cli("log", "pull", "--port", hostile.port, "-o", str(out))
    assert "Traceback" not in r.stdout + r.stderr
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowwater: "), r.stderr
    assert "unsafe name" in lines[0] and "refused" in lines[0], lines[0]
    assert _tree(tmp_path) == before  # nothing written, inside -o or beside it
    assert not Path("/tmp/lowwater-hostile.log").exists()


@pytest.mark.parametrize("case", ["dotdot", "absolute", "newline", "dot-dot-only", "huge"])
def test_deploy_refuses_a_lying_board_with_one_line(hostile, tmp_path, case):
    _set_names(hostile, tmp_path, CASES[case])
    before = image.listing(hostile.image_path)
    r = cli("deploy", "--port", hostile.port, "--no-reset")
    assert "Traceback" not in r.stdout + r.stderr
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowwater: the board listed "), r.stderr
    assert "refused" in lines[0]
    assert image.listing(hostile.image_path) == before  # nothing changed on the board


def test_foreign_but_plain_names_are_skipped_with_a_line(hostile, tmp_path):
    # Not hostile, just not log files: the pull copies the logs and says what it left.
    _set_names(hostile, tmp_path, ["00000001.log", "notes.txt", "00000002.LOG"])
    out = tmp_path / "pulled"
    r = cli("log", "pull", "--port", hostile.port, "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["00000001.log"]
    assert (out / "00000001.log").read_bytes() == b"\x00" * 42
    assert "not copied: :/log/notes.txt" in r.stderr and "not copied: :/log/00000002.LOG" in r.stderr
