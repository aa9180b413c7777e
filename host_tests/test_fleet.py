"""Fleet telemetry over MQTT end to end (docs/fleet.md): a real Mosquitto on a
free loopback port, networked virtual boards (unix-port firmware processes), the
fleet state fed by paho-mqtt, the Prometheus exporter scraped by a real
Prometheus server, hostile publishers. Every process is bounded and cleaned up."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from lowwater_tools import cli
from lowwater_tools.fleet.broker import Mosquitto, free_port, wait_port
from lowwater_tools.fleet.exporter import serve
from lowwater_tools.fleet.fleet import Subscriber, capture_path, safe_name
from lowwater_tools.fleet.state import Fleet
from lowwater_tools.fleet.vboards import NetBoards

pytestmark = pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="mosquitto not installed (make sysdeps)",
)


def wait_for(cond, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


@pytest.fixture
def broker():
    b = Mosquitto().start()
    try:
        yield b
    finally:
        b.cleanup()


class Raw:
    """Every tel payload per board, in arrival order (a plain paho subscriber)."""

    def __init__(self, broker, prefix="lowwater"):
        self.by_board: dict[str, list[bytes]] = {}
        self.status: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.sub = Subscriber(Fleet(prefix), broker.host, broker.port, prefix)
        self.sub.client.on_message = self._on
        self.fleet = self.sub.fleet

    def _on(self, client, userdata, msg):
        parts = msg.topic.split("/")
        with self.lock:
            if parts[-1] == "tel":
                self.by_board.setdefault(parts[1], []).append(bytes(msg.payload))
            elif parts[-1] == "status":
                self.status.setdefault(parts[1], []).append(bytes(msg.payload))
        self.fleet.message(msg.topic, msg.payload)

    def __enter__(self):
        self.sub.start()
        return self

    def __exit__(self, *exc):
        self.sub.stop()


def board_lines(out: bytes) -> list[bytes]:
    return [line for line in out.splitlines() if line.startswith(b"LW1 ")]


def test_three_boards_every_record_arrives_in_order(broker):
    with Raw(broker) as raw:
        nb = NetBoards(broker.host, broker.port, 3, chunks=400, chunk_rate=2000, check_every=16)
        try:
            nb.start(stdout=subprocess.PIPE)
            outs = [p.communicate(timeout=60)[0] for p in nb.procs]
        finally:
            nb.cleanup()
        assert [p.returncode for p in nb.procs] == [0, 0, 0], outs
        assert wait_for(lambda: all(raw.status.get(n, [b""])[-1] == b"done" for n in nb.names), 10)
        for name, out in zip(nb.names, outs):
            printed = board_lines(out)
            assert len(printed) > 30  # boot, mem/stat every 16 chunks, end
            assert raw.by_board[name] == printed  # every record, byte for byte, in order
        rows, totals = raw.fleet.snapshot()
        assert totals["boards"] == 3 and totals["lost"] == 0 and totals["bad"] == 0
        for r in rows:
            assert r["ended"] and r["heap"] and r["lw"] is not None and r["lw"] <= r["heap"]


def test_a_killed_board_shows_offline_within_one_and_a_half_keepalives(broker):
    keepalive = 4
    with Raw(broker) as raw:
        nb = NetBoards(broker.host, broker.port, 2, chunk_rate=200, check_every=16, keepalive=keepalive)
        try:
            nb.start()
            assert wait_for(lambda: all(raw.fleet.boards.get(n) and raw.fleet.boards[n].online for n in nb.names), 20)
            victim = nb.names[0]
            nb.procs[0].send_signal(signal.SIGKILL)
            nb.procs[0].wait(timeout=5)
            assert wait_for(lambda: raw.fleet.boards[victim].offline, keepalive * 1.5)
            assert raw.status[victim][-1] == b"offline"  # the last will, retained
            assert raw.fleet.boards[nb.names[1]].online  # the other one is unaffected
        finally:
            nb.cleanup()


def test_boards_reconnect_after_a_broker_restart_and_the_gap_is_counted(broker):
    nb = NetBoards(broker.host, broker.port, 2, chunk_rate=400, check_every=16, keepalive=5)
    raw = Raw(broker)
    try:
        with raw:
            nb.start(stdout=subprocess.PIPE)
            names = nb.names
            assert wait_for(lambda: all(raw.fleet.boards.get(n) and raw.fleet.boards[n].records > 5 for n in names), 20)
            broker.stop()
            time.sleep(1.0)  # records published now are lost
            broker.start()
            # each board reconnects (backoff 1-2 s) and goes on; the fleet sees the gap in n
            assert wait_for(lambda: all(raw.fleet.boards[n].lost > 0 for n in names), 20)
            before = {n: raw.fleet.boards[n].records for n in names}
            assert wait_for(lambda: all(raw.fleet.boards[n].records > before[n] + 3 for n in names), 10)
            for p in nb.procs:
                p.send_signal(signal.SIGINT)
            outs = [p.communicate(timeout=20)[0] for p in nb.procs]
            # a clean end: status `done` (retained), not the will
            assert wait_for(lambda: all(raw.fleet.boards[n].ended for n in names), 10)
        for n, out in zip(names, outs):
            # the board counted what it dropped and reported it after reconnecting
            reports = [line for line in board_lines(out) if line.startswith(b"LW1 mqtt ")]
            assert reports and b" connects=2" in reports[-1], out[-500:]
            lost = int(reports[-1].split(b" lost=")[1].split()[0])
            # and the fleet counted the gap in `n` (its own reconnect may take longer
            # than the board's, so its count can be larger)
            assert lost > 0 and raw.fleet.boards[n].lost > 0
    finally:
        nb.cleanup()


def _query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)["data"]["result"]
    except OSError:  # 503 while Prometheus starts up
        return []


def test_prometheus_scrapes_the_exporter_and_the_low_water_series_reads_back(broker, tmp_path):
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip("prometheus not installed (make sysdeps)")
    with Raw(broker) as raw:
        nb = NetBoards(broker.host, broker.port, 2, chunks=300, chunk_rate=2000, check_every=16)
        try:
            nb.start()
            for p in nb.procs:
                p.wait(timeout=60)
        finally:
            nb.cleanup()
        assert wait_for(lambda: all(raw.fleet.boards.get(n) and raw.fleet.boards[n].ended for n in nb.names), 10)
        server = serve(raw.fleet, "127.0.0.1:0")
        port = server.server_address[1]
        pport = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n"
            f"scrape_configs:\n  - job_name: lowwater\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        )
        proc = subprocess.Popen(
            [
                prom,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{pport}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert wait_port("127.0.0.1", pport, 15)
            board = nb.names[1]
            expr = f'lowwater_low_water_bytes{{board="{board}"}}'
            got = []
            assert wait_for(lambda: got.extend(_query(pport, expr)) or got, 20, step=0.5)
            assert float(got[0]["value"][1]) == raw.fleet.boards[board].lw
            assert got[0]["metric"]["job"] == "lowwater"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            server.shutdown()


def test_hostile_publishers_cannot_crash_the_fleet_or_the_exporter(broker):
    fleet = Fleet(max_boards=50)
    sub = Subscriber(fleet, broker.host, broker.port, "lowwater")
    sub.start()
    server = serve(fleet, "127.0.0.1:0")
    evil = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="evil")
    try:
        evil.connect(broker.host, broker.port)
        evil.loop_start()
        assert wait_for(evil.is_connected, 10)  # paho drops QoS 0 sent before CONNACK
        junk = [
            b"",
            b"\xff\xfe\x00garbage",
            b"LW1 mem t=1 n=x" + b"9" * 100000,  # overlong
            b"LW1 mem t=1 n=1\nLW1 mem t=2 n=2",  # two lines in one message
            b"noise LW1 mem t=1 n=1",  # not byte for byte
            b"LW1 mem t=1 n=1 n=2",  # repeated key
            b"LW1 boot t=0 heap=-5 warn=zz",
        ]
        for p in junk:
            evil.publish("lowwater/evil/tel", p, qos=1).wait_for_publish(5)
        evil.publish("lowwater/evil/status", b"\xff" * 10000)
        evil.publish("lowwater/evil/boot", b"LW1 boot t=0 heap=notanint")
        for i in range(400):  # topic fan-out past the board cap
            evil.publish(f"lowwater/fan{i}/tel", b"LW1 mem t=1 n=1 free=5 lw=5")
        evil.publish("lowwater/a/b/tel", b"LW1 mem t=1 n=1")  # an id with "/": another depth
        evil.publish('lowwater/q"uo\\te/tel', b"LW1 mem t=1 n=1 free=7 lw=7 lvl=ok")  # escaping in labels
        evil.publish("lowwater/done/tel", b"LW1 end t=9 lw=3")
        # a board id with "+" is not a valid topic: paho refuses to send it
        with pytest.raises(ValueError):
            evil.publish("lowwater/a+b/tel", b"LW1 mem t=1 n=1")
        assert wait_for(lambda: fleet.boards.get("done") is not None or len(fleet.boards) >= 50, 10)
        assert wait_for(lambda: fleet.counters.bad >= len(junk) - 1, 10)
        rows, totals = fleet.snapshot()
        assert totals["boards"] <= 50 and totals["rejected"] > 0
        # only the one well-formed record counts (a boot with a nonsense budget)
        assert fleet.boards["evil"].records == 1 and fleet.boards["evil"].heap == -5
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert "lowwater_fleet_boards" in text
        assert 'board="q\\"uo\\\\te"' in text or len(fleet.boards) >= 50
        # the fleet still works for a good board afterwards
        evil.publish("lowwater/good/tel", b"LW1 mem t=1 n=1 free=9 alloc=1 lw=9 lvl=ok gc_us=1").wait_for_publish(5)
        assert wait_for(lambda: "good" in fleet.boards or len(fleet.boards) >= 50, 5)
    finally:
        evil.loop_stop()
        evil.disconnect()
        sub.stop()
        server.shutdown()


# ---------------------------------------------------------------- state, no broker


def test_state_counts_gaps_in_n_and_restarts_at_boot():
    f = Fleet()
    for n in (1, 2, 5, 6):
        f.message("lowwater/b/tel", b"LW1 mem t=1 n=%d free=100 alloc=1 lw=90 lvl=ok gc_us=3" % n, 1.0)
    assert f.boards["b"].lost == 2
    f.message("lowwater/b/tel", b"LW1 boot t=0 board=b heap=1000 warn=300 min=100 chunk=1 count=1 ver=1", 2.0)
    f.message("lowwater/b/tel", b"LW1 mem t=1 n=1 free=100 alloc=1 lw=80 lvl=warn gc_us=3", 2.0)
    b = f.boards["b"]
    assert (b.lost, b.heap, b.lw, b.level, b.boots) == (2, 1000, 80, "warn", 1)
    f.message("lowwater/b/status", b"offline", 3.0)
    assert b.offline and not b.ended
    f.message("lowwater/b/status", b"online 0.1.0", 4.0)
    assert b.online
    f.message("lowwater/b/status", b"done", 5.0)
    assert b.offline and b.ended
    f.message("$SYS/broker/publish/messages/dropped", b"17", 5.0)
    assert f.snapshot()[1]["broker_dropped"] == 17


def test_shards_split_a_fleet_by_board():
    shards = [Fleet(shard=(k, 3)) for k in range(3)]
    for i in range(60):
        for f in shards:
            f.message(f"lowwater/b{i}/tel", b"LW1 mem t=1 n=1 free=9 alloc=1 lw=9 lvl=ok gc_us=1", 1.0)
    ids = [set(f.boards) for f in shards]
    assert sum(len(x) for x in ids) == 60 and len(set().union(*ids)) == 60
    assert all(ids) and all(f.skipped == 60 - len(f.boards) for f in shards)


def test_capture_names_stay_in_the_named_folder():
    assert safe_name("esp32-001") == "esp32-001"
    for evil in ("../../etc", "..", "a/b", "x\x00y", 'q"u'):
        name = safe_name(evil)
        assert "/" not in name and name not in (".", "..") and "\x00" not in name
    assert capture_path("/tmp/x/cap.log", "../a").parent == Path("/tmp/x")
    assert capture_path("/tmp/x/{board}.txt", "b1") == Path("/tmp/x/b1.txt")
    assert safe_name("a/b") != safe_name("a_b")


def test_cli_mistakes_are_one_line_errors(capsys):
    assert cli.main(["fleet"]) == 1
    assert cli.main(["fleet", "--broker", "localhost:notaport"]) == 1
    assert cli.main(["fleet", "--broker", f"127.0.0.1:{free_port()}", "--duration", "0"]) == 1
    assert cli.main(["fleet", "--broker", "127.0.0.1:1", "--shard", "3/3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("lowwater: ") for line in err), err


def test_cli_captures_per_board_that_report_reads(broker, tmp_path, capsys):
    nb = NetBoards(broker.host, broker.port, 2, chunk_rate=1000, check_every=16)
    done = threading.Event()

    def boards():
        time.sleep(1.0)  # the fleet command has subscribed by then
        nb.start()
        for p in nb.procs:
            p.wait(timeout=60)
        done.set()

    nb.chunks = 300
    nb.prepare()
    t = threading.Thread(target=boards)
    t.start()
    try:
        rc = cli.main(
            [
                "fleet",
                "--broker",
                broker.address,
                "--duration",
                "4",
                "--quiet",
                "--capture",
                str(tmp_path / "cap.log"),
                "--csv",
                str(tmp_path / "fleet.csv"),
            ]
        )
    finally:
        t.join(timeout=60)
        nb.cleanup()
    assert rc == 0 and done.is_set()
    out = capsys.readouterr().out
    assert "2 boards" in out
    for name in nb.names:
        cap = tmp_path / f"cap.{name}.log"
        assert cap.exists()
        assert cli.main(["report", str(cap), "--json"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["ended"] if "ended" in rep else True
    rows = (tmp_path / "fleet.csv").read_text().splitlines()
    assert rows[0].startswith("host_time,board,online") and len(rows) > 2


def test_the_alert_rules_and_dashboard_in_the_docs_are_valid(tmp_path):
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "fleet.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    dash = [json.loads(body) for lang, body in blocks if lang == "json"]
    assert dash and dash[0]["panels"]
    exprs = [t["expr"] for p in dash[0]["panels"] for t in p["targets"]]
    assert all("lowwater_" in e for e in exprs)
    rules = [body for lang, body in blocks if lang == "yaml" and "groups:" in body]
    assert rules
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian prometheus)")
    (tmp_path / "rules.yml").write_text(rules[0])
    r = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_shared_subscription_delivers_each_message_to_one_fleet_process(broker):
    fleets = [Fleet() for _ in range(2)]
    subs = [Subscriber(f, broker.host, broker.port, "lowwater", share="g") for f in fleets]
    pub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    try:
        for s in subs:
            s.start()
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        assert wait_for(pub.is_connected, 10)
        for n in range(1, 41):
            line = b"LW1 mem t=%d n=%d free=9 alloc=1 lw=9 lvl=ok gc_us=1" % (n, n)
            pub.publish("lowwater/b1/tel", line, qos=1).wait_for_publish(5)
        # every message goes to exactly one member of the group (which one is the
        # broker's choice: Mosquitto 2.0.11 gave all of one publisher's to one member)
        assert wait_for(lambda: sum(f.counters.records for f in fleets) == 40, 10)
        time.sleep(0.3)
        assert sum(f.counters.records for f in fleets) == 40
    finally:
        pub.loop_stop()
        pub.disconnect()
        for s in subs:
            s.stop()
