"""`lowwater log pull` from a virtual board that ran the firmware (issue 13 §1).

The firmware appends each window summary to its flash log (/log) and prints the
same window as a `stat` telemetry record. The pull copies the log folder file by
file (mpremote 1.29's recursive copy into a new folder fails when the source
holds only files) and every pulled record matches the telemetry the board
printed, field by field.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from clients import cli
from lowwater_tools.paths import BOARDS, device_module, tool_exe
from lowwater_tools.reliability import soak
from lowwater_tools.telemetry.lw1 import Parser
from lowwater_tools.vboard import VirtualBoard

pytestmark = pytest.mark.timeout(240)

window = device_module("window")

T = 60
BOARD = "pico_w"  # a roomy shipped profile: this tests the pull, not the heap


def _wait(vb, pred, timeout=T):
    deadline = time.monotonic() + timeout
    while not pred(vb.transcript()):
        assert time.monotonic() < deadline, vb.transcript()[-2000:]
        time.sleep(0.05)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A virtual board running the deployed firmware (a shipped profile) until
    its log holds a few flushed windows; yields (board, telemetry text)."""
    d = tmp_path_factory.mktemp("pull")
    img = d / "unix.lfs"
    soak.prepare_image(img, BOARDS / f"{BOARD}.json")
    with VirtualBoard(board=BOARD, image=img, timeout=30) as vb:
        _wait(vb, lambda t: len(re.findall(r"LW1 log t=\d+ seq=(\d+)", t)) >= 3)
        # Stop the firmware (mpremote's Ctrl-C), so that the log no longer changes.
        subprocess.run(
            [tool_exe("mpremote"), "connect", vb.port, "exec", "print('stopped')"],
            capture_output=True,
            timeout=T,
            stdin=subprocess.DEVNULL,
        )
        yield vb, vb.transcript()


def _stats(text: str) -> dict[int, dict]:
    """The board's `stat` records, by chunks produced (unique: it only grows)."""
    out = {}
    for rec in Parser().feed(text.encode()):
        if rec.kind == "stat" and isinstance(rec.fields.get("chunks"), int):
            out[rec.fields["chunks"]] = rec.fields
    return out


def test_pull_copies_every_log_file_and_matches_the_telemetry(board, tmp_path):
    vb, text = board
    out = tmp_path / "pulled"  # does not exist yet: the case mpremote's cp -r gets wrong
    r = cli("log", "pull", "--port", vb.port, "-o", str(out), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files and all(re.fullmatch(r"\d{8}\.log", f) for f in files), files
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    recs = [x for x in recs if "seq" in x]
    assert recs, r.stderr
    stats = _stats(text)
    durable = max(int(s) for s in re.findall(r"LW1 log t=\d+ seq=(\d+)", text))
    seqs = [x["seq"] for x in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert set(range(1, durable + 1)) <= set(seqs)  # every acknowledged window was pulled
    matched = 0
    for x in recs:
        seq, *figures = window.unpack(bytes.fromhex(x["hex"]))
        assert seq == x["seq"]
        w = dict(zip(window.FIELDS, figures))
        st = stats.get(w["produced"])
        if st is None:  # its telemetry line fell out of the transcript window (64 KiB)
            continue
        assert (st["processed"], st["dropped"], st["errors"]) == (w["processed"], w["dropped"], w["errors"])
        assert (st["smin"], st["smax"], st["smean"]) == (w["min"], w["max"], w["mean"])
        matched += 1
    assert matched >= durable, (matched, durable)
    assert f"copied {len(files)} log file(s)" in r.stderr


def test_pull_into_an_existing_empty_folder_then_refuses_a_full_one(board, tmp_path):
    vb, _ = board
    out = tmp_path / "empty"
    out.mkdir()
    r = cli("log", "pull", "--port", vb.port, "-o", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert any(out.iterdir())
    r = cli("log", "pull", "--port", vb.port, "-o", str(out), "--quiet")
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"lowwater: {out}: exists and is not an empty folder")


def test_pull_refuses_a_file_or_a_symlink_as_output(board, tmp_path):
    vb, _ = board
    f = tmp_path / "afile"
    f.write_text("keep")
    r = cli("log", "pull", "--port", vb.port, "-o", str(f))
    assert r.returncode == 1 and r.stderr.startswith("lowwater: log pull: argument -o/--output:"), r.stderr
    assert f.read_text() == "keep"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    r = cli("log", "pull", "--port", vb.port, "-o", str(link))
    assert r.returncode == 1 and "not an empty folder" in r.stderr, r.stderr
    assert not any(elsewhere.iterdir())


def test_pull_of_a_missing_log_folder_is_one_line(board, tmp_path):
    vb, _ = board
    r = cli("log", "pull", "--port", vb.port, "-o", str(tmp_path / "x"), "--path", "/nolog")
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "no such folder on the board" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()


def test_a_symlink_already_in_the_folder_is_not_followed(board, tmp_path):
    vb, _ = board
    out = tmp_path / "out"
    out.mkdir()
    (out / "00000001.log").symlink_to(tmp_path / "outside.log")  # dangling: a write would create it
    r = cli("log", "pull", "--port", vb.port, "-o", str(out), "--quiet")
    assert r.returncode == 1 and "not an empty folder" in r.stderr, r.stderr
    assert not (tmp_path / "outside.log").exists()
