"""`lowwater flash`: image and UF2 checks, esptool command lines and error translation,
the UF2 copy onto a stand-in RPI-RP2 drive. Everything short of real hardware."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lowwater_tools import boards, cli
from lowwater_tools.boardio import flash, uf2
from lowwater_tools.errors import UserError
from lowwater_tools.paths import tool_exe

ESPTOOL = [sys.executable, "-m", "esptool"]


# --- building real images offline --------------------------------------------------


def make_elf(sections, entry):
    """A minimal ELF32 little-endian Xtensa executable: section headers only, which
    is all `esptool elf2image` reads. sections: [(name, load address, bytes)]."""
    shstr = b"\0" + b"".join(n.encode() + b"\0" for n, _, _ in sections) + b".shstrtab\0"
    body, offs = b"", []
    for _, _, data in sections:
        offs.append(52 + len(body))
        body += data + b"\0" * (-len(data) % 4)
    shstr_off = 52 + len(body)
    body += shstr + b"\0" * (-len(shstr) % 4)
    nsec = len(sections) + 2
    head = (
        b"\x7fELF\x01\x01\x01"
        + b"\0" * 9
        + struct.pack("<HHIIIIIHHHHHH", 2, 94, 1, entry, 0, 52 + len(body), 0, 52, 0, 0, 40, nsec, nsec - 1)
    )
    sh, name = b"\0" * 40, 1
    for (n, addr, data), off in zip(sections, offs):
        sh += struct.pack("<10I", name, 1, 6, addr, off, len(data), 0, 0, 4, 0)  # PROGBITS, ALLOC|EXEC
        name += len(n) + 1
    sh += struct.pack("<10I", name, 3, 0, 0, shstr_off, len(shstr), 0, 0, 1, 0)  # STRTAB
    return head + body + sh


def esptool(*args, timeout=60):
    p = subprocess.run([*ESPTOOL, *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Images built by esptool itself: {'esp32': path, 'esp32s3': path, 'merged0': ..., 'merged1000': ...}."""
    d = tmp_path_factory.mktemp("esp")
    elf = d / "app.elf"
    elf.write_bytes(
        make_elf(
            [(".iram0.text", 0x40080000, bytes(range(256)) * 8), (".dram0.data", 0x3FFB0000, b"lowwater" * 9)],
            0x40080000,
        )
    )
    out = {}
    for chip in ("esp32", "esp32s3"):
        out[chip] = d / f"{chip}.bin"
        esptool("--chip", chip, "elf2image", str(elf), "-o", str(out[chip]))
    # a MicroPython-style download: bootloader at 0x1000, app at 0x10000
    out["merged1000"] = d / "merged1000.bin"
    esptool(
        "--chip",
        "esp32",
        "merge-bin",
        "--target-offset",
        "0x1000",
        "-o",
        str(out["merged1000"]),
        "0x1000",
        str(out["esp32"]),
        "0x10000",
        str(out["esp32"]),
    )
    out["merged0"] = d / "merged0.bin"  # a full-flash dump from 0x0
    esptool(
        "--chip",
        "esp32",
        "merge-bin",
        "-o",
        str(out["merged0"]),
        "0x1000",
        str(out["esp32"]),
        "0x10000",
        str(out["esp32"]),
    )
    return out


def lowwater(*args, timeout=60):
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [tool_exe("lowwater"), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def assert_user_error(p, *needles):
    """Exit 1, exactly one line `lowwater: ...` on stderr, no traceback."""
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowwater: "), p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


# --- ESP image header ---------------------------------------------------------------


def test_reads_the_chip_of_images_esptool_built(images):
    for chip, name in (("esp32", "ESP32"), ("esp32s3", "ESP32-S3")):
        data = images[chip].read_bytes()
        img = flash.parse_esp_image(data)
        assert img.chip == name and img.segments == 2 and img.entry == 0x40080000
        assert img.size == len(data)  # checksum and SHA-256 digest accounted for
        assert f"Chip ID: {img.chip_id} ({name})" in esptool("image-info", str(images[chip]))


def test_bad_magic_truncation_and_damage_are_refused(images):
    good = images["esp32"].read_bytes()
    with pytest.raises(ValueError, match="bad magic"):
        flash.parse_esp_image(b"\x00" + good[1:])
    for cut in (10, 30, 100, len(good) - 40, len(good) - 1):
        with pytest.raises(ValueError, match="short|truncated"):
            flash.parse_esp_image(good[:cut])
    damaged = bytearray(good)
    damaged[100] ^= 0x01  # inside a segment: the checksum catches it
    with pytest.raises(ValueError, match="checksum"):
        flash.parse_esp_image(bytes(damaged))
    unknown = bytearray(good)
    unknown[12] = 99  # chip ID field of the extended header
    with pytest.raises(ValueError, match="chip ID 99"):
        flash.parse_esp_image(bytes(unknown))


def test_chip_must_match_the_board(images):
    with pytest.raises(UserError, match="image is for ESP32-S3, board esp32 is ESP32"):
        flash.check_esp_image(images["esp32s3"].read_bytes(), boards.load("esp32"))
    with pytest.raises(UserError, match="image is for ESP32, board esp32s3 is ESP32-S3"):
        flash.check_esp_image(images["esp32"].read_bytes(), boards.load("esp32s3"))


def test_offset_comes_from_the_board_or_a_full_flash_dump(images):
    esp32, s3 = boards.load("esp32"), boards.load("esp32s3")
    assert flash.check_esp_image(images["esp32"].read_bytes(), esp32)[1] == 0x1000
    assert flash.check_esp_image(images["esp32s3"].read_bytes(), s3)[1] == 0x0
    assert flash.check_esp_image(images["merged1000"].read_bytes(), esp32)[1] == 0x1000
    img, addr = flash.check_esp_image(images["merged0"].read_bytes(), esp32)
    assert (addr, img.file_offset) == (0x0, 0x1000)


def test_uf2_given_to_an_esp32_board_is_named(tmp_path):
    f = tmp_path / "fw.uf2"
    f.write_bytes(uf2.build_uf2(b"x" * 600, uf2.RP2040_FLASH, uf2.RP2040))
    with pytest.raises(UserError, match="this is a UF2 file"):
        flash.flash(boards.load("esp32"), str(f), port="/dev/null", dry_run=True, out=lambda s: None)


# --- esptool command lines and errors --------------------------------------------


def test_dry_run_prints_the_esptool_commands(images, capsys):
    assert (
        cli.main(
            [
                "flash",
                "--board",
                "esp32",
                "--firmware",
                str(images["esp32"]),
                "--dry-run",
                "--port",
                "/dev/ttyUSB7",
                "--baud",
                "115200",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith(
        f"-m esptool --chip esp32 --port /dev/ttyUSB7 --baud 115200 write-flash 0x1000 {images['esp32']}"
    )
    assert not any("erase-flash" in line for line in out)

    assert cli.main(["flash", "--board", "esp32s3", "--firmware", str(images["esp32s3"]), "--dry-run", "--erase"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].endswith("-m esptool --chip esp32s3 --port PORT --baud 460800 erase-flash")
    assert out[-1].endswith(f"--chip esp32s3 --port PORT --baud 460800 write-flash 0x0 {images['esp32s3']}")


def test_wrong_chip_is_one_line_exit_1(images):
    p = lowwater("flash", "--board", "esp32s3", "--firmware", str(images["esp32"]), "--port", "/dev/null")
    assert_user_error(p, "image is for ESP32", "ESP32-S3")


def test_missing_port_errors_are_one_line(images):
    fw = str(images["esp32"])
    assert_user_error(lowwater("flash", "--board", "esp32", "--firmware", fw), "--port is required")
    assert_user_error(
        lowwater("flash", "--board", "esp32", "--firmware", fw, "--port", "/dev/ttyNOPE42"),
        "port /dev/ttyNOPE42 not found",
    )


def test_esptool_failure_is_translated(images):
    """esptool really runs (and fails within a second: /dev/null is no serial port)."""
    t0 = time.monotonic()
    p = lowwater("flash", "--board", "esp32", "--firmware", str(images["esp32"]), "--port", "/dev/null")
    assert_user_error(p, "port /dev/null is busy or not a serial port")
    assert time.monotonic() - t0 < 30


def test_explain_esptool_error_lines():
    e = flash.explain_esptool_error
    assert "dialout" in e("could not open port /dev/ttyUSB0: [Errno 13] Permission denied", "/dev/ttyUSB0", 2)
    assert "hold BOOT" in e("A fatal error occurred: Failed to connect to ESP32: No serial data received.", "/dev/x", 2)
    msg = e("A fatal error occurred: This chip is ESP32-S3, not ESP32. Wrong --chip argument?", "/dev/x", 2)
    assert "does not match" in msg and "ESP32-S3" in msg
    assert e("ERROR: A fatal error occurred: something odd\n", "/dev/x", 3) == "esptool failed (exit 3): something odd"
    for m in (msg, e("", "/dev/x", 1)):
        assert "\n" not in m


# --- UF2 -----------------------------------------------------------------------------


def rp2040_uf2(n_bytes=1000, **kw):
    data = bytes((i * 7) & 0xFF for i in range(n_bytes))
    return uf2.build_uf2(data, kw.get("base", uf2.RP2040_FLASH), kw.get("family", uf2.RP2040), kw.get("payload", 256))


def test_uf2_writer_output_validates():
    img = rp2040_uf2(1000)
    info = uf2.validate(img, uf2.RP2040)
    assert (info.blocks, info.family, info.start, info.end, info.payload) == (
        4,
        uf2.RP2040,
        0x10000000,
        0x10000400,
        1024,
    )
    assert len(img) == 4 * 512
    uf2.check_rp2040(img, 2 * 1024 * 1024)
    for i in range(4):
        m0, m1, flags, addr, size, no, count, fam = struct.unpack_from("<8I", img, i * 512)
        assert (m0, m1, flags, addr, size, no, count, fam) == (
            0x0A324655,
            0x9E5D5157,
            0x2000,
            0x10000000 + 256 * i,
            256,
            i,
            4,
            0xE48BFF56,
        )
        assert struct.unpack_from("<I", img, i * 512 + 508)[0] == 0x0AB16F30


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 476), st.integers(0, 2**31))
def test_uf2_roundtrip_property(data, payload, base):
    img = uf2.build_uf2(data, base, 0x12345678, payload)
    info = uf2.validate(img, 0x12345678)
    assert info.blocks == max(1, -(-len(data) // payload)) and info.start == base
    assert info.payload == info.blocks * payload
    out = b"".join(img[i * 512 + 32 : i * 512 + 32 + payload] for i in range(info.blocks))
    assert out[: len(data)] == data


def patched(img, block, offset, value):
    b = bytearray(img)
    struct.pack_into("<I", b, block * 512 + offset, value)
    return bytes(b)


@pytest.mark.parametrize("offset,what", [(0, "magic"), (4, "magic"), (508, "magic")])
def test_uf2_bad_magic(offset, what):
    with pytest.raises(uf2.UF2Error, match=what):
        uf2.validate(patched(rp2040_uf2(), 2, offset, 0xDEADBEEF), uf2.RP2040)


def test_uf2_structural_errors():
    good = rp2040_uf2(1000)
    cases = {
        "truncated": good[:-100],
        "out of order": good[512:1024] + good[:512] + good[1024:],
        "says 5 blocks": patched(good, 1, 24, 5),
        "payload size 477": patched(good, 0, 16, 477),
        "empty": b"",
        "no family": patched(good, 3, 8, 0),
        "differs": patched(good, 3, 28, 0xE48BFF59),
    }
    for needle, data in cases.items():
        with pytest.raises(uf2.UF2Error, match=needle):
            uf2.validate(data, uf2.RP2040)


def test_uf2_wrong_family_is_refused_by_name():
    with pytest.raises(uf2.UF2Error, match=r"RP2350_ARM_S \(0xE48BFF59\), the board needs RP2040"):
        uf2.validate(rp2040_uf2(family=0xE48BFF59), uf2.RP2040)
    with pytest.raises(UserError, match="not a valid UF2 image for rp2040: family is ESP32S3"):
        flash.check_uf2(rp2040_uf2(family=0xC47E5767), boards.load("rp2040"))


def test_rp2040_bootrom_constraints():
    with pytest.raises(uf2.UF2Error, match="256-byte payloads"):
        uf2.check_rp2040(rp2040_uf2(payload=128), 2 * 1024 * 1024)
    with pytest.raises(uf2.UF2Error, match="outside the board's flash"):
        uf2.check_rp2040(rp2040_uf2(base=0x20000000), 2 * 1024 * 1024)
    with pytest.raises(uf2.UF2Error, match="outside"):
        uf2.check_rp2040(rp2040_uf2(base=0x10000000 + 2 * 1024 * 1024 - 256, n_bytes=512), 2 * 1024 * 1024)


# --- the RPI-RP2 drive ---------------------------------------------------------------

INFO = "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n"


def make_drive(path: Path, info=INFO) -> Path:
    path.mkdir(parents=True)
    (path / "INDEX.HTM").write_text("<html></html>")
    (path / flash.INFO_FILE).write_text(info)
    return path


def test_find_drives_in_mount_points(tmp_path):
    media = tmp_path / "media"
    drive = make_drive(media / "alice" / "RPI-RP2")
    (media / "alice" / "USBSTICK").mkdir()
    globs = (str(media / "*" / "RPI-RP2"), str(media / "*" / "*"), str(tmp_path / "mnt" / "*"))
    assert flash.find_drives(globs) == [drive]
    assert flash.pick_drive(None, globs) == drive
    with pytest.raises(UserError, match="no RPI-RP2 drive found"):
        flash.pick_drive(None, (str(tmp_path / "mnt" / "*"),))
    make_drive(tmp_path / "mnt" / "pico2")
    with pytest.raises(UserError, match="several UF2 drives"):
        flash.pick_drive(None, globs)
    with pytest.raises(UserError, match="not a UF2 bootloader drive"):
        flash.pick_drive(str(media / "alice" / "USBSTICK"))


class Bootrom(threading.Thread):
    """Stand-in for the RP2040 bootrom: once a .uf2 lands on the drive, keep a copy
    and make the drive go away (the board reboots)."""

    def __init__(self, drive: Path, timeout=10.0):
        super().__init__(daemon=True)
        self.drive, self.timeout, self.got = drive, timeout, None

    def run(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            files = list(self.drive.glob("*.uf2"))
            if files:
                time.sleep(0.05)  # let the writer finish and sync
                self.got = files[0].read_bytes()
                import shutil

                shutil.rmtree(self.drive)
                return
            time.sleep(0.01)


def test_copy_to_a_stand_in_drive_waits_for_it_to_go(tmp_path, capsys):
    drive = make_drive(tmp_path / "RPI-RP2")
    fw = tmp_path / "firmware.uf2"
    fw.write_bytes(rp2040_uf2(5000))
    boot = Bootrom(drive)
    boot.start()
    try:
        assert cli.main(["flash", "--board", "rp2040", "--firmware", str(fw), "--drive", str(drive)]) == 0
    finally:
        boot.join(15)
    assert not boot.is_alive()
    assert boot.got == fw.read_bytes()
    assert not drive.exists()
    assert "the board rebooted" in capsys.readouterr().out


def test_drive_that_stays_is_an_error(tmp_path):
    drive = make_drive(tmp_path / "RPI-RP2")
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(rp2040_uf2())
    t0 = time.monotonic()
    with pytest.raises(UserError, match="still there"):
        flash.flash_rp2040(boards.load("rp2040"), fw, str(drive), None, False, out=lambda s: None, timeout=0.3)
    assert time.monotonic() - t0 < 10
    assert (drive / "fw.uf2").read_bytes() == fw.read_bytes()


def test_rp2040_refusals(tmp_path, images):
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(rp2040_uf2())
    other = make_drive(tmp_path / "RP2350", "UF2 Bootloader v1.0\nModel: Raspberry Pi RP2350\nBoard-ID: RP2350\n")
    p = lowwater("flash", "--board", "rp2040", "--firmware", str(fw), "--drive", str(other))
    assert_user_error(p, "RP2350 bootloader")
    assert not (other / "fw.uf2").exists()
    wrong = tmp_path / "wrong.uf2"
    wrong.write_bytes(rp2040_uf2(family=0xE48BFF59))
    assert_user_error(
        lowwater("flash", "--board", "pico_w", "--firmware", str(wrong), "--drive", str(other)),
        "family is RP2350_ARM_S",
    )
    assert_user_error(lowwater("flash", "--board", "rp2040", "--firmware", str(images["esp32"])), "not a valid UF2")
    assert_user_error(lowwater("flash", "--board", "rp2040", "--firmware", str(fw), "--erase"), "--erase is for esp32")
    assert_user_error(
        lowwater("flash", "--board", "rp2040", "--firmware", str(fw), "--drive", str(tmp_path / "nope")), "not found"
    )
    assert_user_error(
        lowwater("flash", "--board", "esp32", "--firmware", str(fw), "--drive", str(other)), "--drive is for RP2040"
    )
    assert_user_error(lowwater("flash", "--board", "unix", "--firmware", str(fw)), "virtual board")
    assert_user_error(
        lowwater("flash", "--board", "esp32", "--firmware", str(tmp_path / "none.bin")), "firmware file", "not found"
    )


def test_rp2040_dry_run_copies_nothing(tmp_path, capsys, monkeypatch):
    drive = make_drive(tmp_path / "RPI-RP2")
    fw = tmp_path / "fw.uf2"
    fw.write_bytes(rp2040_uf2())
    assert cli.main(["flash", "--board", "rp2040", "--firmware", str(fw), "--drive", str(drive), "--dry-run"]) == 0
    assert f"would copy {fw} to {drive}" in capsys.readouterr().out
    assert not (drive / "fw.uf2").exists()
    # With picotool installed (and no --drive) it is used instead; not installed here.
    monkeypatch.setattr(flash.shutil, "which", lambda name: "/usr/local/bin/picotool" if name == "picotool" else None)
    assert cli.main(["flash", "--board", "rp2040", "--firmware", str(fw), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"/usr/local/bin/picotool load -v -x {fw} -t uf2"
