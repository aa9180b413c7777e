"""A Mosquitto broker on a free loopback port, for `lowwater fleet --demo`, the
tests and the fleet bench. Bounded and cleaned up: stop() kills it and removes
its temp dir.

    with Mosquitto() as b:
        print(b.host, b.port)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import UserError

# Mosquitto's default is 1000 messages queued per client: past that a subscriber
# that falls behind loses QoS 0 AND QoS 1 messages (docs/fleet.md). The local
# broker keeps Mosquitto's default unless asked, so what it shows is what a
# default production broker does.
DEFAULT_MAX_QUEUED = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_exe() -> str:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and os.path.exists(cand):
            return cand
    raise UserError("mosquitto not found: run `make sysdeps` (Debian package mosquitto)")


def wait_port(host: str, port: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Mosquitto:
    """mosquitto -c <temp config>: `listener PORT 127.0.0.1`, anonymous, no persistence."""

    def __init__(self, port: int | None = None, max_queued: int | None = DEFAULT_MAX_QUEUED, sys_interval: int = 1):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.max_queued = max_queued
        self.sys_interval = sys_interval
        self.dir = Path(tempfile.mkdtemp(prefix="lw-mosquitto-"))
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 5.0) -> Mosquitto:
        conf = self.dir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            f"sys_interval {self.sys_interval}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if self.max_queued is not None:
            lines.append(f"max_queued_messages {int(self.max_queued)}")
        conf.write_text("\n".join(lines) + "\n")
        log = open(self.dir / "mosquitto.log", "wb")
        self.proc = subprocess.Popen(
            [mosquitto_exe(), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if not wait_port(self.host, self.port, timeout):
            out = (self.dir / "mosquitto.log").read_text(errors="replace")[-500:]
            self.stop()
            raise UserError(f"mosquitto did not start on {self.address}: {out.strip()}")
        return self

    def stop(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=3)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self, timeout: float = 5.0) -> None:
        """Stop and start again on the same port (tests: boards must reconnect)."""
        self.stop()
        self.start(timeout)

    def cpu_seconds(self) -> float | None:
        """user+system CPU of the broker process so far (Linux /proc), or None."""
        if self.proc is None:
            return None
        return proc_cpu(self.proc.pid)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
