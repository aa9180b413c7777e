"""`lowwater devices` and `--port auto`, with faked pyserial port lists."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from lowwater_tools import cli
from lowwater_tools.boardio import devices
from lowwater_tools.errors import UserError


def port(device, vid=None, pid=None, description="n/a", serial_number=None):
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description, serial_number=serial_number)


CP2102 = port("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART Bridge Controller", "0001")
CH340 = port("/dev/ttyUSB1", 0x1A86, 0x7523, "USB2.0-Serial")
CH9102 = port("/dev/ttyACM2", 0x1A86, 0x55D4, "USB Single Serial")
FTDI = port("/dev/ttyUSB3", 0x0403, 0x6001, "FT232R USB UART")
S3 = port("/dev/ttyACM0", 0x303A, 0x1001, "USB JTAG/serial debug unit")
PICO = port("/dev/ttyACM1", 0x2E8A, 0x0005, "Board in FS mode")
BUILTIN = port("/dev/ttyS0")  # a motherboard UART: no USB IDs
OTHER_USB = port("/dev/ttyACM9", 0x2341, 0x0043, "Arduino Uno")


def fake(*ports):
    return lambda: list(ports)


@pytest.mark.parametrize(
    "p, family, usb",
    [
        (CP2102, "esp32", "10c4:ea60"),
        (CH340, "esp32", "1a86:7523"),
        (CH9102, "esp32", "1a86:55d4"),
        (FTDI, "esp32", "0403:6001"),
        (S3, "esp32", "303a:1001"),
        (PICO, "rp2040", "2e8a:0005"),
        (BUILTIN, "?", ""),
        (OTHER_USB, "?", "2341:0043"),
    ],
)
def test_families_from_usb_ids(p, family, usb):
    (d,) = devices.list_devices(fake(p))
    assert (d["port"], d["family"], d["usb"]) == (p.device, family, usb)
    assert d["description"] != "n/a"


def test_auto_picks_the_one_board_and_ignores_other_ports():
    assert devices.resolve_port("auto", fake(BUILTIN, PICO, OTHER_USB)) == "/dev/ttyACM1"
    assert devices.resolve_port("AUTO", fake(CP2102)) == "/dev/ttyUSB0"
    assert devices.resolve_port("/dev/ttyXYZ", fake()) == "/dev/ttyXYZ"  # anything else: unchanged
    assert devices.resolve_port(None, fake()) is None


def test_auto_with_none_or_several_says_so_in_one_line():
    with pytest.raises(UserError, match=r"^--port auto: no board attached \(is it plugged in"):
        devices.resolve_port("auto", fake())
    with pytest.raises(UserError, match=r"no board attached \(1 other serial port\(s\): /dev/ttyS0"):
        devices.resolve_port("auto", fake(BUILTIN))
    with pytest.raises(UserError) as e:
        devices.resolve_port("auto", fake(CP2102, PICO))
    msg = str(e.value)
    assert msg.startswith("--port auto: 2 boards attached, name one with --port:")
    assert "/dev/ttyUSB0 (esp32, 10c4:ea60)" in msg and "/dev/ttyACM1 (rp2040, 2e8a:0005)" in msg
    assert "\n" not in msg


def test_devices_command_text_and_json(monkeypatch, capsys):
    monkeypatch.setattr(devices, "_comports", fake(PICO, BUILTIN, CP2102))
    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["/dev/ttyACM1", "2e8a:0005", "rp2040"]
    assert out[1].split()[:3] == ["/dev/ttyUSB0", "10c4:ea60", "esp32"]
    assert "CP210x" in out[1] and len(out) == 2  # ttyS0 only with --all
    assert cli.main(["devices", "--all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["port"] for r in rows] == ["/dev/ttyACM1", "/dev/ttyS0", "/dev/ttyUSB0"]
    assert rows[1]["family"] == "?" and rows[1]["vid"] is None


def test_devices_command_with_nothing_attached(monkeypatch, capsys):
    monkeypatch.setattr(devices, "_comports", fake(BUILTIN))
    assert cli.main(["devices"]) == 0
    assert capsys.readouterr().out.startswith("no board attached (1 other serial port(s)")


def test_monitor_port_auto_uses_the_resolver(monkeypatch, capsys):
    monkeypatch.setattr(devices, "_comports", fake(CP2102, CH340))
    assert cli.main(["monitor", "--port", "auto", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lowwater: --port auto: 2 boards attached") and err.count("\n") == 1
