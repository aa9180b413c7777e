"""Board profiles on the host: find, load and validate (with the device's own code)."""

from __future__ import annotations

from pathlib import Path

from lowwater_tools.errors import UserError
from lowwater_tools.paths import BOARDS, device_module

DEFAULT_BOARD = "unix"


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def profile_path(board: str) -> Path:
    """The profile file of a board name (boards/NAME.json) or a .json path.
    UserError for anything else, whatever the text (NUL, a huge or non-UTF-8 name)."""
    shown = repr(board if len(board) <= 60 else board[:57] + "...")
    try:
        p = Path(board)
        if p.suffix == ".json" and p.exists():
            return p
        path = BOARDS / f"{board}.json"
        if not board or "/" in board or not path.exists():
            raise UserError(f"unknown board {shown}; known boards: {', '.join(names())}")
    except (OSError, ValueError) as e:  # ENAMETOOLONG, embedded NUL, ...
        raise UserError(
            f"unknown board {shown}; known boards: {', '.join(names())} ({getattr(e, 'strerror', None) or e})"
        ) from None
    return path


def load(board: str) -> dict:
    """Load and validate a profile by name or path; UserError naming the field."""
    config = device_module("config")
    try:
        return config.load(str(profile_path(board)))
    except config.ProfileError as e:
        raise UserError(str(e)) from None
    except (RecursionError, UnicodeError, MemoryError) as e:  # config.load should catch these: a last guard
        raise UserError(f"board profile: {board} cannot be read ({type(e).__name__})") from None


def unix_heap(profile: dict) -> int:
    """The MicroPython unix-port heap that stands in for the board's heap."""
    return device_module("config").scaled(profile, 64)[0]
