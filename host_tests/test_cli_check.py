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
