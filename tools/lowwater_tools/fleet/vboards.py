"""Networked virtual boards: N MicroPython unix-port processes, each running the
firmware with a profile that has MQTT settings, publishing as a board would.

    with NetBoards("127.0.0.1", 1883, n=20) as boards:
        ...                      # boards.names, boards.procs
    # leaving: SIGINT to each (they publish `done` and disconnect), then SIGKILL

Each board gets a profile derived from boards/<name>.json (cycling through the
profiles), name `<profile>-<NNN>` (its board id), sensor seed NNN, a simulated
sensor paced at `chunk_rate` chunks per second (0: unpaced, as fast as the
process runs), `check_every` chunks per budget
check (so 2 records per check: mem and stat). lib/ is compiled to .mpy for x64
first, as a board gets it (source compile needs more heap than the profile has).
One process costs about 25 MB and 0.1 s CPU to start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .. import boards as boardsmod
from .. import launch
from ..boardio import mpybuild

PROFILES = ("esp32", "esp32s3", "pico_w", "rp2040", "unix")
# Extra unix-port heap for the MQTT client: importing lowwater.mqtt and
# lowwater.mqttlink (.mpy) plus a Publisher takes 16.5 KB on the 64-bit unix port
# (docs/fleet.md); the `unix` profile has no room for that on top of its budget.
MQTT_HEAP = 24 * 1024
NETBOARD = Path(__file__).resolve().parent / "device" / "netboard.py"


def mpy_lib() -> Path:
    """lib/ compiled for x64 (build/mpy-x64), rebuilt only when a source changed."""
    return mpybuild.host_lib("x64")


def board_profile(
    base: str, index: int, host: str, port: int, *, chunk_rate: float, check_every: int, keepalive: int, prefix: str
) -> dict:
    p = dict(boardsmod.load(base))
    p["name"] = f"{p['name']}-{index:03d}"
    s = dict(p["sensor"])
    samples = p["chunk_size"] // s["width"]
    rate = int(round(chunk_rate * samples)) if chunk_rate else s["rate_hz"]
    s.update(kind="sim", seed=index + 1, rate_hz=min(1000000, max(1, rate)))
    p["sensor"] = s
    p["check_every"] = check_every
    p["log_every"] = 0  # no flash log on the host
    p["mqtt"] = {"host": host, "port": port, "keepalive": keepalive, "prefix": prefix, "client_id": p["name"]}
    return p


class NetBoards:
    def __init__(
        self,
        host: str,
        port: int,
        n: int,
        *,
        profiles=PROFILES,
        chunk_rate: float = 100.0,
        check_every: int = 32,
        keepalive: int = 10,
        prefix: str = "lowwater",
        chunks: int = 0,
        first: int = 0,
    ):
        self.host, self.port, self.n = host, port, n
        self.profiles = tuple(profiles)
        self.chunk_rate = chunk_rate
        self.check_every = check_every
        self.keepalive = keepalive
        self.prefix = prefix
        self.chunks = chunks
        self.first = first
        self.dir = Path(tempfile.mkdtemp(prefix="lw-fleet-"))
        self.names: list[str] = []
        self.paths: list[Path] = []
        self.heaps: list[int] = []
        self.procs: list[subprocess.Popen] = []
        self.mpy: Path | None = None  # set by prepare()

    def prepare(self) -> None:
        self.mpy = mpy_lib()
        for i in range(self.first, self.first + self.n):
            base = self.profiles[i % len(self.profiles)]
            p = board_profile(
                base,
                i,
                self.host,
                self.port,
                chunk_rate=self.chunk_rate,
                check_every=self.check_every,
                keepalive=self.keepalive,
                prefix=self.prefix,
            )
            path = self.dir / f"{p['name']}.json"
            path.write_text(json.dumps(p))
            self.names.append(p["name"])
            self.paths.append(path)
            self.heaps.append(boardsmod.unix_heap(p) + MQTT_HEAP)

    def start(self, stdout=subprocess.DEVNULL) -> NetBoards:
        if not self.names:
            self.prepare()
        for i in range(len(self.names)):
            self.procs.append(self.spawn(i, stdout=stdout))
        return self

    def spawn(self, i: int, stdout=subprocess.DEVNULL) -> subprocess.Popen:
        """Start board i (again: a restart after a kill)."""
        return launch.popen(
            [str(NETBOARD)],
            self.heaps[i],
            lib=self.mpy,
            extra_env={
                "LOWWATER_BOARD": str(self.paths[i]),
                "LOWWATER_CHUNKS": str(self.chunks),
                "LOWWATER_PACED": "1" if self.chunk_rate else "0",
            },
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def stop(self, grace: float = 3.0) -> None:
        """SIGINT each board (it finishes: `end`, status `done`), then SIGKILL stragglers."""
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.05, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    p.kill()
                p.wait(timeout=5)
            for f in (p.stdout,):
                if f is not None:
                    f.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def run_vboard(args) -> int:
    """`lowwater vboard --board B --broker HOST:PORT`: one networked virtual board,
    its board id the profile's name, its records on stdout too; until Ctrl-C (or
    --duration), then it finishes cleanly (`end`, status `done`)."""
    from ..errors import UserError
    from ..telemetry.live import StopSignals
    from .fleet import parse_broker

    if args.deploy or args.monitor or args.socket or args.image:
        raise UserError("--broker runs the firmware on the unix port directly: no --deploy/--monitor/--socket/--image")
    host, port = parse_broker(args.broker)
    nb = NetBoards(host, port, 1, profiles=(args.board,))
    try:
        nb.prepare()
        p = json.loads(nb.paths[0].read_text())
        p["name"] = p["mqtt"]["client_id"] = boardsmod.load(args.board)["name"]
        nb.paths[0].write_text(json.dumps(p))
        nb.names[0] = p["name"]
        print(
            f"virtual board {p['name']} publishing to {host}:{port} as {p['mqtt']['prefix']}/{p['name']}/...",
            flush=True,
        )
        with StopSignals() as stop:
            proc = nb.spawn(0, stdout=None)
            nb.procs.append(proc)
            end = time.monotonic() + args.duration if args.duration else None
            while proc.poll() is None and not stop.count and (end is None or time.monotonic() < end):
                time.sleep(0.1)
    finally:
        nb.cleanup()
    rc = nb.procs[0].returncode if nb.procs else 1
    return 0 if rc in (0, -signal.SIGINT) else 1
