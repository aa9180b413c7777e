"""`lowwater flash --board B --firmware FILE`: write MicroPython onto a board (esptool or UF2)."""

from __future__ import annotations

from . import boards, flash

HELP = "flash MicroPython firmware onto a board (ESP32: esptool over --port; RP2040: UF2 onto the RPI-RP2 drive)"


def add_arguments(p):
    p.add_argument("--board", required=True, help="profile name (boards/NAME.json) or a .json path")
    p.add_argument(
        "--firmware",
        required=True,
        metavar="FILE",
        help="ESP32: the .bin image (checked against the board's chip); RP2040: the .uf2 file",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--port", help="serial port of an ESP32 board (or of a running RP2040 to reboot it into BOOTSEL)"
    )
    where.add_argument("--drive", metavar="DIR", help="mounted RPI-RP2 drive (default: search the usual mount points)")
    p.add_argument("--erase", action="store_true", help="ESP32: erase the whole flash first (esptool erase-flash)")
    p.add_argument(
        "--baud", type=int, default=flash.DEFAULT_BAUD, help=f"ESP32 baud rate (default {flash.DEFAULT_BAUD})"
    )
    p.add_argument("--dry-run", action="store_true", help="check the image and print what would be run, touch nothing")


def run(args) -> int:
    prof = boards.load(args.board)
    return flash.flash(
        prof, args.firmware, port=args.port, drive=args.drive, erase=args.erase, baud=args.baud, dry_run=args.dry_run
    )
