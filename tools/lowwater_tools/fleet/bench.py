"""Fleet bench (`make bench-fleet`, docs/fleet.md): N networked virtual boards
(unix-port firmware processes, each paced to `--rate` records/s) publish
through one local Mosquitto to one fleet subscriber (paho-mqtt + the LW1
parser + the fleet state, in this process).

For each N: offered and delivered records/s over a measurement window, loss (gaps in the
mem `n` sequences seen by the subscriber, and Mosquitto's dropped counter),
host CPU per message of the subscriber (this process) and of the broker, and
the board heap per published record (micropython.mem_total over 2,000 records
published to the same broker by a unix-port process).

    python -m lowwater_tools.fleet.bench [--boards 10,50,200] [--rate 20] [--seconds 5] [--json]

Boards are paced: 200 busy board processes on a 2-core machine starve the
subscriber, which then falls behind and the broker drops (docs/fleet.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .. import launch
from .broker import Mosquitto
from .fleet import Subscriber
from .state import Fleet
from .vboards import NetBoards, mpy_lib

# A board process measuring its own heap per published record against the broker.
HEAP_PROBE = """
import gc, micropython
from lowwater.telemetry import Telemetry
gc.collect(); m0 = gc.mem_alloc()
from lowwater.mqtt import Publisher
gc.collect(); m1 = gc.mem_alloc()
pub = Publisher({"host": "127.0.0.1", "port": %d, "keepalive": 30}, "heap-probe", "bench", None)
assert pub.start(), "no broker"
gc.collect(); m2 = gc.mem_alloc()
print("KEEP", m1 - m0, m2 - m1)
tel = Telemetry(pub)
def rec(i):
    tel.mem(i, 98304, 32768, 90112, "ok", 41)
for i in range(50):
    rec(i)
a = micropython.mem_total()
for i in range(2000):
    rec(i)
b = micropython.mem_total()
sent, lost = pub.sent, pub.lost
pub.close()
print("HEAP", b - a, sent, lost)
"""


def heap_per_record(port: int) -> dict:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="lw-heap-") as d:
        script = Path(d) / "probe.py"
        script.write_text(HEAP_PROBE % port)
        # lib/ as .mpy for x64, as a board gets it (build/fleet-mpy)
        r = launch.run([str(script)], 256 * 1024, lib=mpy_lib(), timeout=60)
    out: dict = {}
    for line in r.out.splitlines():
        if line.startswith("KEEP "):
            _, imp, pub = line.split()
            out.update(import_bytes=int(imp), publisher_bytes=int(pub))
        if line.startswith("HEAP "):
            # includes the probe loop's own range iterator (a few bytes in all)
            _, delta, sent, lost = line.split()
            out.update(records=2000, bytes=int(delta), per_record=int(delta) / 2000, sent=int(sent), lost=int(lost))
    if "records" not in out:
        raise RuntimeError(f"heap probe failed: {r.out[-400:]}")
    return out


def run_one(n: int, seconds: float, settle: float, rate: float) -> dict:
    with Mosquitto() as broker:
        fleet = Fleet(max_boards=n + 10)
        sub = Subscriber(fleet, broker.host, broker.port, "lowwater")
        sub.start()
        nb = NetBoards(broker.host, broker.port, n, chunk_rate=rate * 8, check_every=16, keepalive=30)
        try:
            t0 = time.monotonic()
            nb.start()
            end = time.monotonic() + 60 + n * 0.5
            while time.monotonic() < end:
                with fleet.lock:
                    live = sum(1 for b in fleet.boards.values() if b.records > 0)
                if live >= n:
                    break
                time.sleep(0.2)
            startup = time.monotonic() - t0
            time.sleep(settle)
            with fleet.lock:
                r0, lost0 = fleet.counters.records, sum(b.lost for b in fleet.boards.values())
            c0, b0, w0 = time.process_time(), broker.cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            with fleet.lock:
                r1, lost1 = fleet.counters.records, sum(b.lost for b in fleet.boards.values())
            c1, b1, w1 = time.process_time(), broker.cpu_seconds(), time.monotonic()
            dropped = fleet.counters.broker_dropped
            alive = nb.alive()
        finally:
            nb.cleanup()
            sub.stop()
        msgs = r1 - r0
        lost = lost1 - lost0
        return {
            "boards": n,
            "boards_alive": alive,
            "startup_s": round(startup, 1),
            "window_s": round(w1 - w0, 2),
            "offered_per_s": round(n * rate),
            "delivered": msgs,
            "msg_per_s": round(msgs / (w1 - w0)),
            "lost": lost,
            "loss_pct": round(100 * lost / (msgs + lost), 3) if msgs + lost else 0.0,
            "broker_dropped": dropped,
            "host_cpu_us_per_msg": round(1e6 * (c1 - c0) / msgs, 1) if msgs else None,
            "broker_cpu_us_per_msg": round(1e6 * (b1 - b0) / msgs, 1) if msgs and b0 is not None else None,
        }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lowwater_tools.fleet.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default="10,50,200", help="comma-separated board counts (default 10,50,200)")
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per N (default 5)")
    ap.add_argument(
        "--rate", type=float, default=20.0, help="records/s per board: mem + stat every 16 chunks (default 20)"
    )
    ap.add_argument("--settle", type=float, default=2.0, help="seconds after every board published (default 2)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.boards.split(",") if x.strip()]
    results = []
    with Mosquitto() as broker:
        heap = heap_per_record(broker.port)
    for n in counts:
        print(f"fleet bench: {n} boards ...", file=sys.stderr, flush=True)
        results.append(run_one(n, args.seconds, args.settle, args.rate))
    out = {"cpus": os.cpu_count(), "heap_per_record": heap, "runs": results}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"board heap per published record: {heap['per_record']:g} B "
        f"({heap['bytes']} B over {heap['records']} records, mem_total, unix port; {heap['lost']} lost); "
        f"kept: import of lowwater.mqtt(+mqttlink) {heap['import_bytes']} B, a connected Publisher "
        f"{heap['publisher_bytes']} B (64-bit unix port, .mpy)"
    )
    print(
        "| boards | nominal msg/s | delivered msg/s | lost (n gaps) | broker dropped | host CPU us/msg | broker CPU us/msg | start s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['boards']} | {r['offered_per_s']:,} | {r['msg_per_s']:,} | {r['lost']} ({r['loss_pct']}%) | {r['broker_dropped']} | "
            f"{r['host_cpu_us_per_msg']} | {r['broker_cpu_us_per_msg']} | {r['startup_s']} |"
        )
    print(f"({os.cpu_count()} CPUs; window {args.seconds:g} s per row; {args.rate:g} records/s per board)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
