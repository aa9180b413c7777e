"""Flash MicroPython firmware onto a board: ESP32 family through esptool, RP2040 through UF2.

Everything that can be checked without the board is checked before anything is
written: the image's chip (ESP image header) or UF2 family against the board
profile, the offset, the image's structure. docs/flash.md.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lowwater_tools.boardio import uf2
from lowwater_tools.errors import UserError
from lowwater_tools import args as targs, boards

# --- ESP32 family: the ESP image header --------------------------------------------
#
# Image header (esptool docs, "Firmware Image Format"):
#   0 u8 magic 0xE9   1 u8 segment count   2 u8 SPI mode   3 u8 size/freq   4 u32 entry
# Extended header (16 bytes, not on the ESP8266):
#   8 u8 WP pin   9..11 SPI drive   12 u16 chip ID   14 u8 min rev   15 u16 min rev full
#   17 u16 max rev full   19..22 reserved   23 u8 hash appended
# Then segments (u32 load address, u32 length, data), a checksum byte (0xEF xor every
# segment byte) as the last byte of the 16-byte-aligned end, and a SHA-256 if appended.

ESP_MAGIC = 0xE9
ESP_CHECKSUM_SEED = 0xEF
_HEADER = struct.Struct("<BBBBI")
_EXT = struct.Struct("<BBBBHBHH4sB")
_SEG = struct.Struct("<II")

# Chip ID field -> chip name as in board profiles and esptool (esptool's IMAGE_CHIP_ID).
ESP_CHIP_IDS = {
    0: "ESP32",
    2: "ESP32-S2",
    5: "ESP32-C3",
    9: "ESP32-S3",
    12: "ESP32-C2",
    13: "ESP32-C6",
    16: "ESP32-H2",
    18: "ESP32-P4",
    20: "ESP32-C61",
    23: "ESP32-C5",
}
DEFAULT_BAUD = 460800
ESPTOOL_TIMEOUT = 600.0  # a full erase plus 4 MB write at a slow baud stays well inside


@dataclass(frozen=True)
class EspImage:
    chip: str
    chip_id: int
    segments: int
    entry: int
    file_offset: int  # where the image starts in the file (0, or flash_offset for a full-flash dump)
    size: int  # bytes of the first image, checksum and digest included


def esp_chip_arg(chip: str) -> str:
    """Profile chip name -> esptool's --chip value ('ESP32-S3' -> 'esp32s3')."""
    return chip.lower().replace("-", "")


def parse_esp_image(data: bytes, offset: int = 0) -> EspImage:
    """Read and check the ESP image that starts at `offset` of `data`: magic, chip ID,
    every segment inside the file, checksum. Raises ValueError naming the problem."""
    if len(data) < offset + _HEADER.size + _EXT.size:
        raise ValueError(f"too short for an ESP image header ({len(data) - offset} bytes)")
    magic, nseg, _mode, _sizefreq, entry = _HEADER.unpack_from(data, offset)
    if magic != ESP_MAGIC:
        raise ValueError(f"bad magic 0x{magic:02X} at 0x{offset:X} (an ESP image starts with 0xE9)")
    ext = _EXT.unpack_from(data, offset + _HEADER.size)
    chip_id, hash_appended = ext[4], ext[9]
    if chip_id not in ESP_CHIP_IDS:
        raise ValueError(f"unknown chip ID {chip_id} in the image header")
    if not 0 < nseg <= 16:
        raise ValueError(f"implausible segment count {nseg}")
    pos = offset + _HEADER.size + _EXT.size
    csum = ESP_CHECKSUM_SEED
    for i in range(nseg):
        if pos + _SEG.size > len(data):
            raise ValueError(f"truncated: segment {i} header is past the end of the file")
        _addr, length = _SEG.unpack_from(data, pos)
        pos += _SEG.size
        if pos + length > len(data):
            raise ValueError(f"truncated: segment {i} ({length} bytes) runs past the end of the file")
        csum ^= xor_bytes(data[pos : pos + length])
        pos += length
    pos = (pos + 16) & ~15  # checksum is the last byte of the 16-aligned block after the data
    if pos > len(data):
        raise ValueError("truncated: no checksum byte")
    if data[pos - 1] != csum:
        raise ValueError(f"checksum mismatch (0x{data[pos - 1]:02X} in the file, 0x{csum:02X} computed): damaged image")
    if hash_appended == 1:
        pos += 32
        if pos > len(data):
            raise ValueError("truncated: the SHA-256 digest is missing")
    return EspImage(ESP_CHIP_IDS[chip_id], chip_id, nseg, entry, offset, pos - offset)


def xor_bytes(b: bytes) -> int:
    """xor of all bytes of `b`: fold the bytes as one integer, halving (byte-aligned)."""
    n = int.from_bytes(b, "little")
    nbytes = len(b)
    while nbytes > 1:
        half = (nbytes + 1) // 2
        n = (n >> (8 * half)) ^ (n & ((1 << (8 * half)) - 1))
        nbytes = half
    return n


def check_esp_image(data: bytes, profile: dict) -> tuple[EspImage, int]:
    """Validate an ESP image for this board; return it and the flash address to write at.

    A file that starts with the image is written at the board's flash_offset. A
    full-flash dump (0xFF up to flash_offset, then the image, as `esptool merge-bin`
    writes without --target-offset) is written at 0x0. Raises UserError."""
    off = profile["flash_offset"]
    start = 0
    if (
        data[:1] != bytes([ESP_MAGIC])
        and off
        and len(data) > off
        and data[off] == ESP_MAGIC
        and data[:off] == b"\xff" * off
    ):
        start = off
    if data[:4] == uf2.MAGIC_START0.to_bytes(4, "little"):
        raise UserError(f"this is a UF2 file: {profile['name']} ({profile['chip']}) takes an ESP .bin image")
    try:
        img = parse_esp_image(data, start)
    except ValueError as e:
        raise UserError(f"not a valid ESP firmware image: {e}") from None
    if img.chip != profile["chip"]:
        raise UserError(
            f"image is for {img.chip}, board {profile['name']} is {profile['chip']}: "
            f"wrong firmware file (download the {profile['chip']} build)"
        )
    address = 0 if start else off
    if address + len(data) > profile["flash_size"]:
        raise UserError(
            f"image of {len(data)} bytes at 0x{address:X} does not fit the board's "
            f"{profile['flash_size']} bytes of flash"
        )
    return img, address


def esptool_base(profile: dict, port: str, baud: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "esptool",
        "--chip",
        esp_chip_arg(profile["chip"]),
        "--port",
        port,
        "--baud",
        str(baud),
    ]


def esptool_commands(profile: dict, firmware: Path, port: str, baud: int, erase: bool, address: int) -> list[list[str]]:
    """The esptool command lines that flash `firmware` (erase-flash first with erase)."""
    base = esptool_base(profile, port, baud)
    cmds = []
    if erase:
        cmds.append(base + ["erase-flash"])
    cmds.append(base + ["write-flash", f"0x{address:x}", str(firmware)])
    return cmds


def serial_ports() -> list[str]:
    try:
        from serial.tools import list_ports
    except ImportError:  # pyserial is a dependency; be graceful anyway
        return []
    return sorted(p.device for p in list_ports.comports() if p.vid is not None)


def _is_url(port: str) -> bool:
    return "://" in port  # rfc2217://host:port, socket://host:port


def check_port(port: str | None) -> str:
    """The serial port to use; UserError (one line) when missing."""
    if not port:
        found = serial_ports()
        hint = (
            f" (USB serial ports here: {', '.join(found)})"
            if found
            else " (no USB serial port found: is the board plugged in?)"
        )
        raise UserError("--port is required for esp32 boards, e.g. --port /dev/ttyUSB0" + hint)
    if not _is_url(port) and not os.path.exists(port):
        raise UserError(f"port {port} not found: is the board plugged in? (check the cable and `ls /dev/tty*`)")
    return port


def explain_esptool_error(stderr: str, port: str, rc: int) -> str:
    """One line for the user from esptool's error output."""
    low = stderr.lower()
    if "permission denied" in low:
        return f"no permission to open {port}: add yourself to the dialout (or uucp) group and log in again"
    if "could not open" in low or "busy or doesn't exist" in low:
        if _is_url(port) or os.path.exists(port):
            return f"port {port} is busy or not a serial port: is another program (monitor, mpremote, screen) using it?"
        return f"port {port} not found: is the board plugged in?"
    if "wrong --chip" in low or ("this chip is" in low and " not " in low):
        for line in stderr.splitlines():
            if "this chip is" in line.lower():
                return f"the board on {port} does not match the profile: {line.strip().removeprefix('A fatal error occurred: ')}"
        return f"the chip on {port} does not match the board profile"
    if "failed to connect" in low or "no serial data received" in low or "timed out waiting for packet" in low:
        return (
            f"no answer from an ESP bootloader on {port}: hold BOOT, press RESET, release BOOT, "
            "then retry (or try a lower --baud)"
        )
    last = ""
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith(("ERROR", "A fatal error")):
            last = line
        elif line and not last:
            last = line
    last = last.removeprefix("ERROR: ").removeprefix("A fatal error occurred: ")
    return f"esptool failed (exit {rc}): {last or 'no error message'}"


def run_esptool(cmd: list[str], port: str, timeout: float = ESPTOOL_TIMEOUT) -> None:
    """Run one esptool command, its progress shown as it goes; errors become one UserError line."""
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"esptool did not finish within {timeout:.0f} s on {port}") from None
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode:
        raise UserError(explain_esptool_error(err, port, p.returncode))
    if err.strip():
        print(err.rstrip(), file=sys.stderr)


def flash_esp32(
    profile: dict, firmware: Path, port: str | None, baud: int, erase: bool, dry_run: bool, out=print
) -> int:
    data = firmware.read_bytes()
    img, address = check_esp_image(data, profile)
    where = "" if address == profile["flash_offset"] else " (full-flash image)"
    out(f"{firmware.name}: {img.chip} image, {img.segments} segments, {len(data)} bytes -> 0x{address:x}{where}")
    if dry_run:
        for cmd in esptool_commands(profile, firmware, port or "PORT", baud, erase, address):
            out(" ".join(_quote(c) for c in cmd))
        return 0
    port = check_port(port)
    for cmd in esptool_commands(profile, firmware, port, baud, erase, address):
        run_esptool(cmd, port)
    out(f"flashed {profile['name']} on {port}")
    return 0


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


# --- RP2040: UF2 onto the RPI-RP2 drive --------------------------------------------

INFO_FILE = "INFO_UF2.TXT"
DRIVE_LABEL = "RPI-RP2"
# Where desktops and fstab entries mount the bootrom's USB drive.
DRIVE_GLOBS = (
    "/media/*/RPI-RP2",
    "/media/RPI-RP2",
    "/run/media/*/RPI-RP2",
    "/mnt/*",
    "/mnt/*/RPI-RP2",
    "/Volumes/RPI-RP2",
)
GONE_TIMEOUT = 15.0  # the RP2040 reboots within a second or two of the last block
APPEAR_TIMEOUT = 10.0


def drive_info(path: Path) -> dict[str, str] | None:
    """INFO_UF2.TXT of a UF2 bootloader drive as a dict, or None if `path` is not one."""
    try:
        text = (Path(path) / INFO_FILE).read_text(errors="replace")
    except OSError:
        return None
    info = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            info[k.strip()] = v.strip()
    return info


def find_drives(globs=DRIVE_GLOBS) -> list[Path]:
    """Mounted UF2 bootloader drives (folders holding INFO_UF2.TXT)."""
    import glob

    seen = []
    for pattern in globs:
        for p in sorted(glob.glob(pattern)):
            path = Path(p)
            if path not in seen and drive_info(path) is not None:
                seen.append(path)
    return seen


def pick_drive(drive: str | None, globs=DRIVE_GLOBS) -> Path:
    if drive:
        path = Path(drive)
        if not path.is_dir():
            raise UserError(f"drive {drive} not found: is the board in BOOTSEL mode and the drive mounted?")
        if drive_info(path) is None:
            raise UserError(f"{drive} is not a UF2 bootloader drive (no {INFO_FILE})")
        return path
    found = find_drives(globs)
    if not found:
        raise UserError(
            f"no {DRIVE_LABEL} drive found: hold BOOTSEL while plugging the board in "
            "(or give --drive DIR where it is mounted)"
        )
    if len(found) > 1:
        raise UserError(f"several UF2 drives found ({', '.join(map(str, found))}): choose one with --drive")
    return found[0]


def check_drive_board(path: Path, profile: dict) -> None:
    """Refuse a drive whose INFO_UF2.TXT names another chip (e.g. an RP2350 drive)."""
    board_id = (drive_info(path) or {}).get("Board-ID", "")
    if profile["chip"] == "RP2040" and board_id and not board_id.startswith(DRIVE_LABEL):
        raise UserError(f"drive {path} is a {board_id} bootloader, board {profile['name']} is an RP2040")


def wait_gone(path: Path, timeout: float = GONE_TIMEOUT, poll: float = 0.05) -> bool:
    """Wait (bounded) until the drive at `path` goes away; True if it did."""
    deadline = time.monotonic() + timeout
    marker = Path(path) / INFO_FILE
    while True:
        if not marker.exists():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def copy_uf2(firmware: Path, drive: Path, timeout: float = GONE_TIMEOUT) -> None:
    """Copy the UF2 file onto the drive, synced, then wait for the board to reboot."""
    target = Path(drive) / firmware.name
    data = firmware.read_bytes()
    try:
        with open(target, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        # The bootrom may reboot (and the drive vanish) as the last block lands.
        if (Path(drive) / INFO_FILE).exists():
            raise UserError(f"cannot write to {drive}: {e.strerror or e}") from None
    if not wait_gone(drive, timeout):
        raise UserError(
            f"the {DRIVE_LABEL} drive is still there {timeout:.0f} s after the copy: "
            "the board did not take the file (wrong family or damaged file?)"
        )


def check_uf2(data: bytes, profile: dict, name: str = "firmware") -> uf2.UF2Info:
    family = uf2.RP2040 if profile["chip"] == "RP2040" else None
    if family is None:
        raise UserError(f"no UF2 family known for chip {profile['chip']}")
    try:
        info = uf2.validate(data, family)
        uf2.check_rp2040(data, profile["flash_size"])
    except uf2.UF2Error as e:
        raise UserError(f"{name}: not a valid UF2 image for {profile['name']}: {e}") from None
    return info


def picotool_cmd(firmware: Path) -> list[str] | None:
    """picotool's load-and-run command when picotool is installed, else None."""
    exe = shutil.which("picotool")
    if not exe:
        return None
    return [exe, "load", "-v", "-x", str(firmware), "-t", "uf2"]


def reboot_to_bootloader(port: str) -> None:
    """Ask the running MicroPython on `port` to reboot into BOOTSEL (mpremote bootloader)."""
    from lowwater_tools.paths import tool_exe

    try:
        subprocess.run(
            [tool_exe("mpremote"), "connect", port, "bootloader"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"no answer from MicroPython on {port} (mpremote bootloader timed out)") from None


def wait_drive(globs=DRIVE_GLOBS, timeout: float = APPEAR_TIMEOUT, poll: float = 0.2) -> Path | None:
    deadline = time.monotonic() + timeout
    while True:
        found = find_drives(globs)
        if len(found) == 1:
            return found[0]
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll)


def flash_rp2040(
    profile: dict,
    firmware: Path,
    drive: str | None,
    port: str | None,
    dry_run: bool,
    out=print,
    globs=DRIVE_GLOBS,
    timeout: float = GONE_TIMEOUT,
) -> int:
    data = firmware.read_bytes()
    info = check_uf2(data, profile, firmware.name)
    out(
        f"{firmware.name}: UF2 for {uf2.family_name(info.family)}, {info.blocks} blocks, "
        f"{info.payload} bytes at 0x{info.start:08x}..0x{info.end:08x}"
    )
    pico = None if drive else picotool_cmd(firmware)
    if pico:  # untested here: picotool is not installed in CI
        if dry_run:
            out(" ".join(_quote(c) for c in pico))
            return 0
        p = subprocess.run(pico, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=ESPTOOL_TIMEOUT)
        if p.returncode:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UserError(
                f"picotool failed: {err[-1] if err else 'exit %d' % p.returncode} "
                "(hold BOOTSEL while plugging in, or use --drive)"
            )
        out(f"flashed {profile['name']} with picotool")
        return 0
    if dry_run:
        found = [Path(drive)] if drive else find_drives(globs)
        target = found[0] if len(found) == 1 else f"the {DRIVE_LABEL} drive (none or several mounted now)"
        out(f"would copy {firmware} to {target} and wait for the board to reboot")
        return 0
    if not drive and port and not find_drives(globs):  # untested: needs a running board
        out(f"rebooting the board on {port} into its bootloader")
        reboot_to_bootloader(port)
        if wait_drive(globs) is None:
            raise UserError(f"no {DRIVE_LABEL} drive appeared within {APPEAR_TIMEOUT:.0f} s after the reboot")
    path = pick_drive(drive, globs)
    check_drive_board(path, profile)
    out(f"copying to {path} ...")
    copy_uf2(firmware, path, timeout)
    out(f"flashed {profile['name']}: the board rebooted")
    return 0


def flash(
    profile: dict,
    firmware: str,
    port: str | None = None,
    drive: str | None = None,
    erase: bool = False,
    baud: int = DEFAULT_BAUD,
    dry_run: bool = False,
    out=print,
) -> int:
    """Flash `firmware` onto the board of `profile`; UserError on anything the user can fix."""
    path = Path(firmware)
    if not path.is_file():
        raise UserError(f"firmware file {firmware} not found")
    fam = profile["family"]
    if fam == "esp32":
        if drive:
            raise UserError("--drive is for RP2040 boards; esp32 boards flash over --port")
        return flash_esp32(profile, path, port, baud, erase, dry_run, out)
    if fam == "rp2040":
        if erase:
            raise UserError(
                "--erase is for esp32 boards (an RP2040 UF2 overwrites what it covers; flash_nuke.uf2 erases all)"
            )
        return flash_rp2040(profile, path, drive, port, dry_run, out)
    raise UserError(f"board {profile['name']} ({fam}) is not flashed: it is a virtual board (use `lowwater run`)")


# The command: `lowwater flash --board B --firmware FILE`: write MicroPython onto a board (esptool or UF2).
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
        "--port", help="serial port of an ESP32 board (or of a running RP2040 to reboot it into BOOTSEL), or auto"
    )
    where.add_argument("--drive", metavar="DIR", help="mounted RPI-RP2 drive (default: search the usual mount points)")
    p.add_argument("--erase", action="store_true", help="ESP32: erase the whole flash first (esptool erase-flash)")
    p.add_argument("--baud", type=targs.baud, default=DEFAULT_BAUD, help=f"ESP32 baud rate (default {DEFAULT_BAUD})")
    p.add_argument("--dry-run", action="store_true", help="check the image and print what would be run, touch nothing")


def run(args) -> int:
    prof = boards.load(args.board)
    return flash(
        prof, args.firmware, port=args.port, drive=args.drive, erase=args.erase, baud=args.baud, dry_run=args.dry_run
    )
