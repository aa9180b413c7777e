"""`lowwater devices`: the serial ports attached, with USB VID:PID and the board family
they suggest (as mpflash does), and `--port auto` for the commands that take --port.

    lowwater devices            # one line per port
    lowwater devices --json
    resolve_port("auto")        # the one board attached, or a UserError saying why not

Ports come from pyserial (serial.tools.list_ports.comports()). The family is a
guess from the USB IDs of the chip that carries the serial line: a CP210x or
CH340 bridge sits on most ESP32 boards; 2e8a:0005 is MicroPython's own USB on an
RP2040. A port with USB IDs not in the table is listed as `?` and not chosen by
`auto`: only ports that look like a board count.
"""

from __future__ import annotations

import json
import sys

from lowwater_tools.errors import UserError

HELP = "list the serial ports attached: USB VID:PID and the board family they suggest (for --port auto)"

AUTO = "auto"

# (vid, pid or None for any) -> (family, what the chip is)
USB_IDS = {
    (0x10C4, 0xEA60): ("esp32", "Silicon Labs CP210x USB-serial bridge"),
    (0x1A86, 0x7523): ("esp32", "WCH CH340 USB-serial bridge"),
    (0x1A86, 0x55D4): ("esp32", "WCH CH9102 USB-serial bridge"),
    (0x0403, 0x6001): ("esp32", "FTDI FT232R USB-serial bridge"),
    (0x303A, None): ("esp32", "Espressif native USB (ESP32-S2/S3/C3/C6)"),
    (0x2E8A, 0x0005): ("rp2040", "Raspberry Pi RP2040, MicroPython USB serial"),
}


def identify(vid: int | None, pid: int | None) -> tuple[str, str] | None:
    """(family, chip description) for a USB VID:PID, or None when not known."""
    if vid is None:
        return None
    return USB_IDS.get((vid, pid)) or USB_IDS.get((vid, None))


def _comports():
    """pyserial's list (a function of its own so tests can fake it)."""
    from serial.tools import list_ports

    return list_ports.comports()


def list_devices(comports=None) -> list[dict]:
    """One dict per serial port: port, vid, pid (ints or None), usb ("10c4:ea60" or
    ""), family ("esp32", "rp2040" or "?"), chip, description, serial_number."""
    out = []
    for p in (comports or _comports)():
        vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
        known = identify(vid, pid)
        out.append(
            {
                "port": p.device,
                "vid": vid,
                "pid": pid,
                "usb": f"{vid:04x}:{pid:04x}" if vid is not None and pid is not None else "",
                "family": known[0] if known else "?",
                "chip": known[1] if known else "",
                "description": (getattr(p, "description", "") or "") if getattr(p, "description", "") != "n/a" else "",
                "serial_number": getattr(p, "serial_number", None) or "",
            }
        )
    return sorted(out, key=lambda d: d["port"])


def boards_attached(comports=None) -> list[dict]:
    """The ports that look like a board (known USB IDs)."""
    return [d for d in list_devices(comports) if d["family"] != "?"]


def resolve_port(port: str | None, comports=None) -> str | None:
    """`auto` -> the device of the one board attached; any other value unchanged.
    UserError with one clear line when none or several are attached."""
    if port is None or port.strip().lower() != AUTO:
        return port
    found = boards_attached(comports)
    if not found:
        others = list_devices(comports)
        hint = (
            f" ({len(others)} other serial port(s): {', '.join(d['port'] for d in others)}; name one with --port)"
            if others
            else " (is it plugged in with a data cable? `lowwater devices` lists the ports)"
        )
        raise UserError("--port auto: no board attached" + hint)
    if len(found) > 1:
        listed = ", ".join(f"{d['port']} ({d['family']}, {d['usb']})" for d in found)
        raise UserError(f"--port auto: {len(found)} boards attached, name one with --port: {listed}")
    return found[0]["port"]


# ---- the command ----------------------------------------------------------------


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print a JSON list (for machines)")
    p.add_argument("--all", action="store_true", help="also list ports whose USB IDs suggest no board")


def run(args) -> int:
    devs = list_devices()
    shown = devs if args.all else [d for d in devs if d["family"] != "?"]
    if args.json:
        json.dump(shown, sys.stdout, indent=2)
        print()
        return 0
    if not shown:
        hidden = len(devs) - len(shown)
        print(
            "no board attached"
            + (f" ({hidden} other serial port(s): lowwater devices --all)" if hidden else "")
            + "; a board needs a USB data cable (some cables only charge)"
        )
        return 0
    width = max(len(d["port"]) for d in shown)
    for d in shown:
        usb = d["usb"] or "-"
        what = d["chip"] or d["description"] or "-"
        print(f"{d['port']:<{width}}  {usb:<9}  {d['family']:<6}  {what}")
    if len(shown) == 1 and shown[0]["family"] != "?":
        print("--port auto uses it")
    return 0
