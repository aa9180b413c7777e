"""Watchdog on the virtual board (issue 6 §4): the firmware feeds machine.WDT
(timeout = profile wdt_ms) once per chunk; when its loop hangs (a sensor that
never answers: faults.HangSensor, host_tests/portable/faults.py put in /lib),
the WDT stand-in resets the board and the firmware comes back, says why (`LW1 reset cause=wdt`) and runs on."""

from __future__ import annotations

import time
from pathlib import Path

from lowwater_tools.reliability import soak
from lowwater_tools.vboard import WDT_RESET_LINE, VirtualBoard

FAULTS = Path(__file__).resolve().parent / "portable" / "faults.py"

WDT_MS = 400

# The flag file makes the hang happen once: the sensor removes it before hanging.
HANG_ONCE = """\
import faults
from lowwater import app, sensor

app.main(sensor=faults.HangSensor(sensor.SimSensor(1), after=600, flag="hang"))
"""


def test_hung_loop_is_reset_by_the_watchdog_and_the_firmware_comes_back(tmp_path):
    prof = soak.derived_profile("unix", tmp_path, wdt_ms=WDT_MS)
    img = tmp_path / "flash.lfs"
    soak.prepare_image(img, prof, main_py=HANG_ONCE, files={"/hang": "", "/lib/faults.py": FAULTS.read_bytes()})
    with VirtualBoard(board=str(prof), image=img, timeout=20) as vb:
        reader = soak.PortReader(vb.port)
        try:
            vb.wait(lambda b: b.wdt_reset_count >= 1 and b.booted, timeout=20)

            def back(recs):
                ls = soak.lives(recs)
                return len(ls) >= 2 and len([r for r in recs[recs.index(_boots(recs)[1]) :] if r.kind == "stat"]) >= 5

            recs = reader.wait_for(back, 20, "stat records after the watchdog reset")
            ls = soak.lives(recs)
            assert ls[0].reset_cause == "power"
            assert ls[1].reset_cause == "wdt"
            first = recs[: recs.index(_boots(recs)[1])]
            # The first life ran (600 chunks: 2 windows of 256), then hung.
            assert [r.get("chunks") for r in first if r.kind == "stat"] == [256, 512]
            assert WDT_RESET_LINE + f" (not fed for {WDT_MS} ms)" in vb.transcript()
            # Fed again: no further reset over several watchdog periods.
            time.sleep(3 * WDT_MS / 1000)
            assert vb.wdt_reset_count == 1
            assert len(_boots(reader.snapshot())) == 2
        finally:
            reader.close()


def _boots(recs):
    return [r for r in recs if r.kind == "boot"]
