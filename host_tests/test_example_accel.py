"""The example app of examples/accel (docs/pipeline.md) on the virtual board:
`lowwater deploy --mpy` (as a board runs it: from .py sources the flash log
cannot compile in the 128 KiB heap beside the stages, and the loop runs on
without it) with the example's profile (a custom sensor driver and two
stages named by module and class), the example's modules copied to /lib with
mpremote, then `lowwater monitor --reset` watches the telemetry: the tap
detector's `evt` records match the taps the driver made in the chunks
processed, and the accounting holds in every `stat` record."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lowwater_tools.paths import ROOT, tool_exe
from lowwater_tools.telemetry import parse_bytes
from lowwater_tools.vboard import VirtualBoard

pytestmark = pytest.mark.timeout(240)

ACCEL = ROOT / "examples" / "accel"
PROFILE = ACCEL / "board.json"
T = 60  # s: bound of each tool run
TAP_EVERY = 500  # the profile's sensor.tap_every (samples per axis)
TRIPLES = 240 // 6  # x, y, z samples per 240-byte chunk


def run(*argv, timeout=T):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert r.returncode == 0, f"{argv[:4]}: {r.stdout}{r.stderr}"
    return r


def test_example_app_on_the_virtual_board(tmp_path):
    lw = [sys.executable, "-m", "lowwater_tools.cli"]
    with VirtualBoard(board=str(PROFILE), image=tmp_path / "accel.lfs", timeout=20) as vb:
        run(*lw, "deploy", "--port", vb.port, "--board", str(PROFILE), "--mpy", "--no-reset", timeout=120)
        for name in ("accel.py", "myfilter.py"):
            run(tool_exe("mpremote"), "connect", vb.port, "cp", str(ACCEL / "lib" / name), ":/lib/" + name)
        cap = tmp_path / "capture.txt"
        run(
            *lw,
            "monitor",
            "--port",
            vb.port,
            "--reset",
            "--duration",
            "6",
            "--capture",
            str(cap),
            "--quiet",
            "--unix-port",
            "--no-reconnect",
            timeout=T,
        )
    recs, _ = parse_bytes(cap.read_bytes())
    kinds = [r.kind for r in recs]
    boots = [r for r in recs if r.kind == "boot"]
    assert boots and boots[0].get("board") == "accel" and boots[0].get("chunk") == 240, kinds[:5]
    after = recs[recs.index(boots[-1]) :]
    stats = [r for r in after if r.kind == "stat"]
    assert len(stats) >= 3, kinds[-20:]
    assert "logopen" in [r.kind for r in after]  # the flash log opened beside the stages
    assert not [r for r in after if r.kind == "err"], [r.fields for r in after if r.kind == "err"]
    for s in stats:
        c, p, d = s.get("chunks"), s.get("processed"), s.get("dropped")
        assert c >= p + d and c - (p + d) <= 16, s.fields  # at most a ring's worth in flight
        assert s.get("errors") == 0
        # the high-pass stage took gravity off z: the statistics are centred on 0 g
        assert abs(s.get("smean") - 32768) < 400, s.fields
    # One `evt` per tap, from the detector stage named "tap", before each window's stat.
    last = stats[-1]
    evts = [r for r in after[: after.index(last)] if r.kind == "evt"]
    assert evts and {r.get("stage") for r in evts} == {"tap"} and {r.get("what") for r in evts} == {"over"}
    assert min(r.get("v") for r in evts) >= 6000
    if last.get("dropped") == 0:
        assert len(evts) == (last.get("processed") * TRIPLES + 2) // TAP_EVERY, (len(evts), last.fields)
    else:  # taps in dropped chunks are not seen
        assert len(evts) <= (last.get("chunks") * TRIPLES + 2) // TAP_EVERY
