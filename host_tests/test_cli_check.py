"""`lowwater check` and the CLI's error contract: one line, exit 1, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lowwater_tools import boards, cli


def lowwater(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "lowwater_tools.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("board", boards.names())
def test_check_accepts_every_shipped_board(board, capsys):
    assert cli.main(["check", "--board", board]) == 0
    assert capsys.readouterr().out.startswith(f"{board}: ok")


def test_unknown_board_is_one_line_exit_1():
    res = lowwater("check", "--board", "nosuchboard")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert res.stderr.startswith("lowwater: unknown board 'nosuchboard'")
    assert "Traceback" not in res.stderr


def test_bad_profile_names_the_field(tmp_path):
    p = json.loads((boards.BOARDS / "esp32.json").read_text())
    p["min_free"] = p["warn_free"] * 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(p))
    res = lowwater("check", "--board", str(bad))
    assert res.returncode == 1
    assert "min_free" in res.stderr and "Traceback" not in res.stderr


# ---- check --no-alloc: the user's stage, driver or function on MicroPython --------

ROOT = boards.BOARDS.parent
ACCEL = ROOT / "examples" / "accel"

BAD_STAGES = """\
class Lists:
    def __init__(self, spec, ctx):
        self.k = 0

    def process(self, src, n, dst):
        vals = [src[0], src[1]]
        self.k += len(vals)
        return n


class BigFrame:
    def __init__(self, spec, ctx):
        pass

    def process(self, src, n, dst):
        a = 1; b = 2; c = 3; d = 4; e = 5; f = 6; g = 7; h = 8; i = 9
        return n + a + b + c + d + e + f + g + h + i - 45


def copy(src, n, dst):
    i = 0
    while i < n:
        dst[i] = src[i]
        i += 1
    return n


VALUE = 3
"""


@pytest.fixture
def bad_dir(tmp_path):
    (tmp_path / "badstage.py").write_text(BAD_STAGES)
    return tmp_path


@pytest.mark.parametrize("spec", ["myfilter:HighPass", "myfilter:Threshold", "accel:Accel3"])
def test_no_alloc_passes_the_example_stages_and_driver(spec):
    res = lowwater(
        "check", "--board", str(ACCEL / "board.json"), "--no-alloc", spec, "--path", str(ACCEL / "lib"), timeout=300
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "unix    " in res.stdout and "allocates nothing: 0 B per call" in res.stdout
    assert "ALLOCATES" not in res.stdout


def test_no_alloc_names_the_line_that_allocates(bad_dir):
    res = lowwater("check", "--no-alloc", "badstage:Lists", "--path", str(bad_dir), "--runtime", "unix")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "ALLOCATES" in res.stdout and "heap_lock: MemoryError" in res.stdout
    assert 'badstage.py", line 6, in process' in res.stdout


def test_no_alloc_sees_a_heap_frame_heap_lock_misses(bad_dir):
    res = lowwater("check", "--no-alloc", "badstage:BigFrame", "--path", str(bad_dir), "--runtime", "unix")
    assert res.returncode == 3, res.stdout + res.stderr
    assert "heap_lock: no MemoryError" in res.stdout and "heap-allocated frame" in res.stdout


def test_no_alloc_takes_a_plain_function(bad_dir):
    res = lowwater("check", "--no-alloc", "badstage:copy", "--path", str(bad_dir), "--runtime", "unix")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "function: allocates nothing" in res.stdout


@pytest.mark.parametrize(
    "spec, msg",
    [
        ("badstage:VALUE", "is not a stage"),
        ("badstage:Nope", "module badstage has no Nope"),
        ("nomod:X", "cannot import module nomod"),
        ("foo", "expects MODULE:NAME"),
        ("a b:C", "expects MODULE:NAME"),
    ],
)
def test_no_alloc_bad_spec_is_one_line_exit_1(bad_dir, spec, msg):
    res = lowwater("check", "--no-alloc", spec, "--path", str(bad_dir), "--runtime", "unix")
    assert res.returncode == 1, res.stdout + res.stderr
    assert res.stderr.startswith("lowwater: ") and msg in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_no_alloc_path_must_be_a_folder(tmp_path):
    res = lowwater("check", "--no-alloc", "x:Y", "--path", str(tmp_path / "nope"))
    assert res.returncode == 1 and "is not a folder" in res.stderr and "Traceback" not in res.stderr
