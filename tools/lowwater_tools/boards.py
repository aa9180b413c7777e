"""Board profiles on the host: find, load and validate (with the device's own code)."""

from __future__ import annotations

from pathlib import Path

from lowwater_tools.errors import UserError
from lowwater_tools.paths import BOARDS, device_module

DEFAULT_BOARD = "unix"


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def profile_path(board: str) -> Path:
    p = Path(board)
    if p.suffix == ".json" and p.exists():
        return p
    path = BOARDS / f"{board}.json"
    if not path.exists():
        raise UserError(f"unknown board {board!r}; known boards: {', '.join(names())}")
    return path


def load(board: str) -> dict:
    """Load and validate a profile by name or path; UserError naming the field."""
    config = device_module("config")
    try:
        return config.load(str(profile_path(board)))
    except config.ProfileError as e:
        raise UserError(str(e)) from None


def unix_heap(profile: dict) -> int:
    """The MicroPython unix-port heap that stands in for the board's heap."""
    return device_module("config").scaled(profile, 64)[0]
