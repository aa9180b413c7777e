"""The virtual board: the MicroPython unix port on a pty, its flash a littlefs2 image.

    from lowwater_tools.vboard import VirtualBoard
    with VirtualBoard(board="unix") as vb:
        print(vb.port)  # /dev/pts/N, for mpremote or ampy

See docs/vboard.md.
"""

from .relay import HARD_RESET_LINE, SOFT_REBOOT, WDT_RESET_LINE, VirtualBoard
from .image import BLOCK_SIZE, block_count

__all__ = ["VirtualBoard", "BLOCK_SIZE", "block_count", "SOFT_REBOOT", "HARD_RESET_LINE", "WDT_RESET_LINE"]
