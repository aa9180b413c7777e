"""`lowwater vboard --board B`: a virtual board on a pty (and optionally a TCP socket).

With --deploy and --monitor it is also `make run`: start the board, deploy the
project with `lowwater deploy`, watch it with `lowwater monitor`, stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from lowwater_tools import args as targs, boards
from lowwater_tools.errors import UserError

HELP = "run a virtual board (MicroPython unix port + littlefs image) on a pty for mpremote/ampy"


def add_arguments(p):
    p.add_argument("--board", default=boards.DEFAULT_BOARD, help="profile: heap, flash filesystem size (default: unix)")
    p.add_argument(
        "--image", help="littlefs image file of the board's flash, kept across runs (default: a temporary one)"
    )
    p.add_argument("--fresh", action="store_true", help="erase the image first (the board formats it on boot)")
    p.add_argument(
        "--socket",
        type=targs.socket_address,
        metavar="HOST:PORT",
        help="also serve the board on TCP (mpremote connect socket://HOST:PORT)",
    )
    p.add_argument(
        "--timeout", type=targs.seconds, default=10.0, help="bound for start-up and resets in seconds (default 10)"
    )
    p.add_argument("--deploy", action="store_true", help="deploy lib/, firmware/ and the profile once it is up")
    p.add_argument("--mpy", action="store_true", help="with --deploy: compile lib/ to .mpy")
    p.add_argument("--monitor", action="store_true", help="run `lowwater monitor` on it; stop when the monitor stops")
    p.add_argument("--duration", type=targs.seconds, metavar="S", help="with --monitor: monitor for S seconds")
    p.add_argument(
        "--broker", metavar="HOST:PORT", help="a networked board: publish to this MQTT broker (docs/fleet.md)"
    )


def _monitor(port: str, board: str, duration: float | None) -> int:
    # --reset: the monitor soft-resets the board once it is attached, so it sees the
    # boot record (opening a port drops what came before); --unix-port: the figures
    # are the unix port's bytes, the profile's budget is scaled to them.
    cmd = [sys.executable, "-m", "lowwater_tools.cli", "monitor", "--port", port, "--board", board, "--reset"]
    cmd += ["--unix-port"]
    if duration is not None:
        cmd += ["--duration", str(duration)]
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            return 130


def run(args) -> int:
    from lowwater_tools.vboard import VirtualBoard

    if args.broker:  # a networked board on the unix port, no pty (docs/fleet.md)
        from lowwater_tools.fleet.vboards import run_vboard

        return run_vboard(args)

    if (args.mpy or args.duration is not None) and not (args.deploy or args.monitor):
        raise UserError("--mpy goes with --deploy, --duration with --monitor")
    stop = threading.Event()

    def on_term(signum, frame):
        stop.set()

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        with VirtualBoard(
            board=args.board, image=args.image, socket=args.socket, timeout=args.timeout, fresh=args.fresh
        ) as vb:
            print(f"port: {vb.port}")
            if vb.socket_url:
                print(f"socket: {vb.socket_url}")
            print(f"image: {vb.image_path}" + ("" if args.image else " (temporary)"))
            print(
                f"board: {vb.board}, unix-port heap {vb.heap} B (profile heap {vb.profile['heap']} B), "
                f"flash filesystem {vb.fs_size} B (littlefs2)",
                flush=True,
            )
            if args.deploy:
                from lowwater_tools.boardio import deploy

                # With --monitor, the monitor resets the board once attached (see _monitor).
                deploy.deploy(vb.port, board=args.board, mpy=args.mpy, reset=not args.monitor)
            if args.monitor:
                return _monitor(vb.port, args.board, args.duration)
            print(f"try: mpremote connect {vb.port} repl    (Ctrl-C here stops the board)", flush=True)
            while not stop.wait(0.5):
                if not vb.alive:
                    raise UserError(f"virtual board stopped: {vb.error or 'relay ended'}")
            return 0
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
