"""Bad input (issue 6 §5).

- A bad board profile fails at start with a message naming the field: in
  `lowwater check` and `lowwater run` on the host, in the firmware on the unix
  port (exit status 2) and on the virtual board (it prints the message and
  stops at the REPL: no reset loop).
- Every `lowwater` subcommand, given bad input (missing or busy ports, unknown
  boards, wrong firmware files, unreadable or malformed logs and images), exits
  with status 1 and one `lowwater: ` line on stderr, without a traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lowwater_tools import cli
from lowwater_tools.reliability import soak
from lowwater_tools.boardio.run import firmware_command, firmware_env
from lowwater_tools.paths import BOARDS, FIRMWARE
from lowwater_tools.vboard import VirtualBoard

CLI_TIMEOUT = 90
BASE = json.loads((BOARDS / "unix.json").read_text())


def _without(key):
    def f(p):
        del p[key]

    return f


def _set(key, value):
    def f(p):
        p[key] = value

    return f


# id -> (mutation of the unix profile, the field the message must name)
PROFILES = {
    "missing-field": (_without("chunk_size"), "chunk_size"),
    "wrong-type": (_set("heap", "128k"), "heap"),
    "budget-above-heap": (_set("warn_free", 10**7), "warn_free"),
    "no-ring": (_set("chunk_count", 0), "chunk_count"),
    "chunk-larger-than-ring-room": (_set("chunk_count", 10**4), "chunk_count"),
    "sensor-width": (lambda p: p["sensor"].update(width=3), "sensor.width"),
}


def _profile_text(case):
    p = json.loads(json.dumps(BASE))
    PROFILES[case][0](p)
    return json.dumps(p)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    rnd = bytes((i * 7919 + 13) % 251 for i in range(10_000))
    (d / "garbage.bin").write_bytes(rnd)
    (d / "garbage.uf2").write_bytes(rnd)
    (d / "garbage8k.img").write_bytes(rnd[:8192])
    (d / "wrongsize.img").write_bytes(b"\xff" * 12345)
    (d / "notjson.json").write_text("{not json")
    for case in PROFILES:
        (d / f"{case}.json").write_text(_profile_text(case))
    return d


@pytest.fixture(scope="module")
def busy_port():
    """A pty that another program holds with an exclusive lock (as mpremote does)."""
    m, s = os.openpty()
    name = os.ttyname(s)
    fd = os.open(name, os.O_RDWR | os.O_NOCTTY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    yield name
    for f in (fd, s, m):
        os.close(f)


NOPORT = "/dev/lowwater-no-such-port"

# (id, argv with {d} = the bad-input folder and {busy} = a busy port, text the message contains)
CASES = [
    ("run-unknown-board", ["run", "--board", "nosuch"], "unknown board"),
    ("run-notjson-profile", ["run", "--board", "{d}/notjson.json", "--chunks", "5"], "not valid JSON"),
    ("run-negative-chunks", ["run", "--chunks", "-1"], "--chunks"),
    ("check-unknown-board", ["check", "--board", "nosuch"], "unknown board"),
    ("vboard-unknown-board", ["vboard", "--board", "nosuch"], "unknown board"),
    ("vboard-wrong-image", ["vboard", "--image", "{d}/wrongsize.img"], "12345 bytes"),
    ("deploy-missing-port", ["deploy", "--port", NOPORT], "not found"),
    ("deploy-busy-port", ["deploy", "--port", "{busy}", "--timeout", "10"], "busy"),
    ("deploy-unknown-board", ["deploy", "--board", "nosuch", "--dry-run"], "unknown board"),
    (
        "flash-missing-firmware",
        ["flash", "--board", "esp32", "--firmware", "{d}/none.bin", "--port", NOPORT],
        "not found",
    ),
    (
        "flash-wrong-esp-image",
        ["flash", "--board", "esp32", "--firmware", "{d}/garbage.bin", "--port", NOPORT, "--dry-run"],
        "not a valid ESP firmware image",
    ),
    (
        "flash-wrong-uf2",
        ["flash", "--board", "rp2040", "--firmware", "{d}/garbage.uf2", "--drive", "{d}"],
        "not a valid UF2",
    ),
    (
        "flash-unknown-board",
        ["flash", "--board", "nosuch", "--firmware", "{d}/garbage.bin", "--port", NOPORT],
        "unknown board",
    ),
    ("monitor-missing-port", ["monitor", "--port", NOPORT, "--no-reconnect", "--duration", "2"], "no such port"),
    ("monitor-busy-port", ["monitor", "--port", "{busy}", "--no-reconnect", "--duration", "2"], "busy"),
    ("fit-unknown-board", ["fit", "--board", "nosuch"], "unknown board"),
    ("bench-bad-reps", ["bench", "--reps", "0"], "reps"),
    ("fit-bad-range", ["fit", "--lo", "-5", "--chunks", "10"], "--lo"),
    ("plot-missing-log", ["plot", "{d}/none.log"], "cannot read"),
    ("plot-malformed-log", ["plot", "{d}/garbage.bin", "-o", "{d}/x.png"], "no telemetry records"),
    ("report-missing-log", ["report", "{d}/none.log"], "cannot read"),
    ("report-unreadable-log", ["report", "{d}"], "cannot read"),  # a folder (chmod 0 means nothing to root)
    ("report-malformed-log", ["report", "{d}/garbage.bin"], "no telemetry records"),
    ("log-read-missing", ["log", "read", "{d}/none"], "no such file"),
    ("log-read-malformed-image", ["log", "read", "{d}/garbage8k.img", "--fs-size", "8192"], "not a littlefs2 image"),
    ("log-read-not-a-log", ["log", "read", "{d}/garbage.bin"], "no intact records"),
    ("log-pull-missing-port", ["log", "pull", "--port", NOPORT, "-o", "{d}/pulled"], "failed"),
    ("log-pull-busy-port", ["log", "pull", "--port", "{busy}", "-o", "{d}/pulled2"], "in use"),
    ("soak-unknown-board", ["soak", "--board", "nosuch"], "unknown board"),
    ("soak-nothing-to-do", ["soak", "--chunks", "0", "--kills", "0"], "nothing to do"),
    ("mpy-unknown-board", ["mpy", "--board", "nosuch", "--out", "{d}/mpy"], "unknown board"),
] + [
    (
        f"{cmd}-profile-{case}",
        [cmd, "--board", "{d}/" + case + ".json"] + (["--chunks", "5"] if cmd == "run" else []),
        "board profile: " + PROFILES[case][1],
    )
    for case in PROFILES
    for cmd in ("check", "run")
]

# Commands that take no user input that could be bad (they read only the repository).
NO_INPUT = {"size": "reads lib/ only"}

# Known deviations, reported to the command's owner (a strict xfail turns into a
# failure once fixed, so the mark gets removed).
KNOWN: dict[str, str] = {}


@pytest.fixture(scope="module")
def results(bad, busy_port):
    """Run every case at once (each in its own `lowwater` process)."""

    def one(case):
        cid, argv, _ = case
        argv = [a.format(d=bad, busy=busy_port) for a in argv]
        return cid, subprocess.run(
            [sys.executable, "-m", "lowwater_tools.cli", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )

    with ThreadPoolExecutor(max_workers=8) as ex:
        return dict(ex.map(one, CASES))


@pytest.mark.parametrize(
    "cid, argv, expect",
    [
        pytest.param(*c, id=c[0], marks=[pytest.mark.xfail(strict=True, reason=KNOWN[c[0]])] if c[0] in KNOWN else [])
        for c in CASES
    ],
)
def test_bad_input_is_one_clear_line_and_exit_1(results, cid, argv, expect):
    r = results[cid]
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode == 1, (r.returncode, out)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lowwater: "), r.stderr
    assert expect in lines[0], lines[0]


def test_every_subcommand_is_covered():
    # The table names every command; build_parser() must offer each one.
    present = list(cli.COMMANDS)
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(present)
    covered = {argv[0] for _, argv, _ in CASES}
    missing = [c for c in present if c not in covered and c not in NO_INPUT]
    assert not missing, missing


# ---- the firmware itself -----------------------------------------------------------


@pytest.mark.parametrize("case", list(PROFILES))
def test_firmware_on_the_unix_port_stops_naming_the_field(bad, case):
    env = firmware_env(bad / f"{case}.json", 5)
    r = subprocess.run(
        firmware_command(FIRMWARE / "main.py", 200_000),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.strip().splitlines() == [r.stdout.strip()]  # one line, no traceback
    assert r.stdout.startswith("lowwater: board profile: " + PROFILES[case][1]), r.stdout


def test_firmware_validates_its_log_keys(tmp_path):
    p = dict(BASE, log_every="often")
    (tmp_path / "p.json").write_text(json.dumps(p))
    r = subprocess.run(
        firmware_command(FIRMWARE / "main.py", 200_000),
        env=firmware_env(tmp_path / "p.json", 5),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and r.stdout.startswith("lowwater: board profile: log_every"), r.stdout


def _wait_text(vb, text, timeout=15.0):
    deadline = time.monotonic() + timeout
    while text not in vb.transcript():
        assert time.monotonic() < deadline, vb.transcript()[-2000:]
        time.sleep(0.02)


@pytest.mark.parametrize("case", ["missing-field", "budget-above-heap"])
def test_firmware_on_the_virtual_board_prints_and_stops(tmp_path, case):
    good = tmp_path / "unix.json"
    good.write_text(json.dumps(BASE))
    img = tmp_path / "flash.lfs"
    soak.prepare_image(img, good, files={"/board.json": _profile_text(case)})
    with VirtualBoard(board=str(good), image=img, timeout=20) as vb:
        msg = "lowwater: board profile: " + PROFILES[case][1]
        _wait_text(vb, msg)
        _wait_text(vb, ">>> ")  # main.py returned: the REPL, as on a board
        time.sleep(0.5)
        # A SystemExit would have soft-reset the board into the same error, forever.
        assert vb.soft_reset_count == 0 and vb.boot_count == 1
        assert vb.transcript().count(msg) == 1
        assert "Traceback" not in vb.transcript() and "LW1 boot" not in vb.transcript()
